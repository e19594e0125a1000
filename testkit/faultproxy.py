"""A fault-injecting reverse proxy in front of the real kube-apiserver.

A real API server will not fail one chosen request on demand, answer late, or drop a connection. This
proxy sits between a component under test and the control plane's kube-apiserver and does exactly that,
with the same ``fault_hook`` protocol as the emulator, so ``testkit.faults.FaultPlan`` and
``FaultInjector`` read the same in both kinds of test. Every request the hook lets through is forwarded
unchanged (method, path, query, headers including ``Authorization``, body) and the answer is streamed back
as it arrives, so watches stay open and deliver their events one by one.

It terminates TLS with a serving certificate issued by the control plane's own CA, so a kubeconfig for the
proxy carries the same CA. Authentication is by bearer token only: the proxy forwards the component's own
ServiceAccount token, and kube-apiserver authenticates and authorizes it (RBAC stays real). Client
certificates end at the proxy and cannot be forwarded, so the admin (a client certificate) talks to the
server directly, which also keeps the test's own set-up and reads out of reach of the faults. Upgraded
connections (exec, port-forward) are not proxied; nothing under test uses them.

The proxy runs on its own event loop in a background thread, like the emulator.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
import threading
from collections.abc import Coroutine, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import aiohttp.web
from multidict import CIMultiDict, CIMultiDictProxy

from testkit.controlplane.cluster import ControlPlane, kubeconfig_text, service_account_token
from testkit.controlplane.pki import CertificateAuthority
from testkit.emulator import FaultHook
from testkit.faults import ConnectionReset, LostAnswer, status_body
from testkit.ports import free_port
from testkit.rbac import RequestAttributes, request_attributes

T = TypeVar("T")

# Headers that describe one hop, not the message (RFC 9110 7.6.1), and the ones aiohttp sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)


class Action(enum.Enum):
    """The emulator's (kmock's) names for what a request does, so fault rules read the same on both."""

    LIST = "LIST"
    WATCH = "WATCH"
    FETCH = "FETCH"
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


_ACTIONS = {
    "list": Action.LIST,
    "watch": Action.WATCH,
    "get": Action.FETCH,
    "create": Action.CREATE,
    "update": Action.UPDATE,
    "patch": Action.UPDATE,
    "delete": Action.DELETE,
    "deletecollection": Action.DELETE,
}


@dataclass(frozen=True)
class Resource:
    group: str
    plural: str


@dataclass(frozen=True)
class ProxiedRequest:
    """One request as the fault hook sees it: the emulator request's ``resource.plural``, ``action``,
    ``subresource`` and ``headers``, plus the RBAC attributes of the request."""

    method: str
    path: str
    params: Mapping[str, str]
    headers: CIMultiDictProxy[str]
    attributes: RequestAttributes

    @property
    def resource(self) -> Resource | None:
        if not self.attributes.is_resource_request:
            return None
        return Resource(self.attributes.group, self.attributes.resource)

    @property
    def action(self) -> Action | None:
        return _ACTIONS.get(self.attributes.verb) if self.attributes.is_resource_request else None

    @property
    def subresource(self) -> str | None:
        return self.attributes.subresource or None

    @property
    def namespace(self) -> str:
        return self.attributes.namespace

    @property
    def name(self) -> str:
        return self.attributes.name


@dataclass
class Exchange:
    """One request the proxy saw and what became of it: the upstream status, or the injected one (None for
    a reset connection)."""

    request: ProxiedRequest
    status: int | None = None
    injected: bool = False
    served: int | None = None  # the server's status for a request whose answer was lost on the way back


@dataclass
class FaultProxy:
    """A TLS reverse proxy to ``plane``'s kube-apiserver with a ``fault_hook``; ``start()`` then use
    ``server`` (or ``service_account_kubeconfig``), ``stop()`` at the end."""

    plane: ControlPlane
    workdir: Path
    fault_hook: FaultHook | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    server: str = ""

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._runner: aiohttp.web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- life cycle ---------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        port = self._run(self._serve())
        self.server = f"https://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self._run(self._shut_down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    async def _serve(self) -> int:
        upstream_tls = ssl.create_default_context(cafile=str(self.plane.ca_file))
        # No timeout on the whole answer: a watch stays open as long as the client keeps it.
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=None)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=upstream_tls),
            timeout=timeout,
            auto_decompress=False,  # pass the server's bytes through as they are (gzip included)
        )
        app = aiohttp.web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A client that hangs up (a watch it no longer wants) cancels its handler, which closes the upstream
        # request: otherwise a quiet watch would be held open on the server until its own timeout.
        self._runner = aiohttp.web.AppRunner(
            app, access_log=None, handle_signals=False, handler_cancellation=True, shutdown_timeout=2
        )
        await self._runner.setup()
        port = free_port()
        site = aiohttp.web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=self._serving_tls())
        await site.start()
        return port

    async def _shut_down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _serving_tls(self) -> ssl.SSLContext:
        """A serving certificate for 127.0.0.1 from the control plane's CA, so clients trust it as they
        trust kube-apiserver."""
        pki = self.plane.state_dir / "pki"
        self.workdir.mkdir(parents=True, exist_ok=True)
        pair = CertificateAuthority.load(pki).issue(
            self.workdir / "fault-proxy",
            "floe-fault-proxy",
            dns_names=("localhost",),
            ip_addresses=("127.0.0.1",),
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(pair.cert), str(pair.key))
        return context

    # --- kubeconfigs -----------------------------------------------------------------------------------

    def write_kubeconfig(self, path: Path, user: str, token: str) -> Path:
        """A kubeconfig for the proxy that authenticates with ``token``."""
        path.write_text(kubeconfig_text(self.server, self.plane.ca_file, user, {"token": token}))
        path.chmod(0o600)
        return path

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """A kubeconfig for the proxy with a TokenRequest token of the ServiceAccount: the component under
        test is the ServiceAccount, through the faults."""
        token = service_account_token(self.plane.admin_api(), namespace, name)
        return self.write_kubeconfig(path, f"{namespace}-{name}", token)

    # --- forwarding ------------------------------------------------------------------------------------

    async def _handle(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        proxied = ProxiedRequest(
            method=request.method,
            path=request.path,
            params=dict(request.query),
            headers=request.headers,
            attributes=request_attributes(request.method, request.path, request.query),
        )
        exchange = Exchange(proxied)
        self.exchanges.append(exchange)
        if self.fault_hook is not None:
            injected = await self.fault_hook(proxied)
            if isinstance(injected, LostAnswer):
                await self._serve_unseen(request, exchange)
            if injected is not None:
                exchange.injected = True
                exchange.status = None if isinstance(injected, ConnectionReset) else injected.status
                return injected
        return await self._forward(request, exchange)

    async def _serve_unseen(self, request: aiohttp.web.Request, exchange: Exchange) -> None:
        """Let the server act on the request and read its whole answer, which the client will never get."""
        assert self._session is not None
        body = await request.read()
        async with self._session.request(
            request.method,
            self.plane.server + request.raw_path,
            headers=_end_to_end(request.headers),
            data=body if body else None,
            allow_redirects=False,
        ) as upstream:
            await upstream.read()
            exchange.served = upstream.status

    async def _forward(self, request: aiohttp.web.Request, exchange: Exchange) -> aiohttp.web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        try:
            upstream = await self._session.request(
                request.method,
                self.plane.server + request.raw_path,  # raw: the query exactly as the client encoded it
                headers=_end_to_end(request.headers),
                data=body if body else None,
                allow_redirects=False,
            )
        except aiohttp.ClientError as error:
            exchange.status = 502
            message = f"fault proxy: kube-apiserver did not answer: {error}"
            return aiohttp.web.json_response(status_body(502, message), status=502)
        async with upstream:
            exchange.status = upstream.status
            response = aiohttp.web.StreamResponse(status=upstream.status, reason=upstream.reason)
            response.headers.extend(_end_to_end(upstream.headers))
            await response.prepare(request)
            # Each piece as it arrives: a watch event must reach the client before the stream ends.
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        return response


def _end_to_end(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """The headers of the message itself: hop-by-hop ones dropped, repeated ones kept."""
    kept: CIMultiDict[str] = CIMultiDict()
    items = headers.items()
    for key, value in items:
        if key.lower() not in HOP_BY_HOP:
            kept.add(key, value)
    return kept


@contextmanager
def fault_proxy(plane: ControlPlane, workdir: Path) -> Iterator[FaultProxy]:
    proxy = FaultProxy(plane, workdir).start()
    try:
        yield proxy
    finally:
        proxy.stop()

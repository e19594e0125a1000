"""A Kubernetes API emulator on a real HTTP port, for tests and benchmarks.

Stands in for an API server: kmock's ``KubernetesEmulator`` (real HTTP, real kubernetes client and kopf on
the other end) with the server-assigned fields a real API server sets, which kopf and the client rely on:
``uid``, ``resourceVersion``, ``creationTimestamp`` and ``metadata.namespace``. What it still cannot
show: validation (use ``validate_object`` on everything our code writes), garbage collection, strategic
merge (PATCH replaces lists), label selectors, PUT. Watches replay every object as ADDED, so tests assert
final state, not call counts.

The emulator runs on its own event loop in a background thread, so synchronous code (the kubernetes
client, dagster-k8s, a kopf subprocess) can talk to it from the test's thread.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import aiohttp.web
import kmock
import kubernetes_validate  # type: ignore[import-untyped]
import yaml
from jsonpointer import resolve_pointer

T = TypeVar("T")

KUBERNETES_VERSION = "1.37"
# (resource, kind, namespaced): what tests need to list and watch.
RESOURCES: tuple[tuple[str, str, bool], ...] = (
    ("v1/podtemplates", "PodTemplate", True),
    ("v1/limitranges", "LimitRange", True),  # namespace guardrails (the operator indexes them)
    ("v1/resourcequotas", "ResourceQuota", True),
    ("v1/pods", "Pod", True),
    ("v1/events", "Event", True),
    ("v1/configmaps", "ConfigMap", True),
    ("v1/secrets", "Secret", True),
    ("batch/v1/jobs", "Job", True),
    ("events.k8s.io/v1/events", "Event", True),
    ("floe.dev/v1alpha1/floeplatforms", "FloePlatform", True),
    # Only discovered, never listed: kopf waits for the namespaces resource in discovery before it
    # watches the exact namespaces it was given (scanning off, see FACTS.md).
    ("v1/namespaces", "Namespace", False),
)
# kmock matches every request against its whole request log; clearing it keeps requests O(1) (FACTS.md:
# 1000 creates took 149 s untrimmed, 7.9 s trimmed). Tests never assert on that log.
REQUEST_LOG_LIMIT = 50
_MISSING = object()


FaultHook = Callable[[Any], Awaitable["aiohttp.web.StreamResponse | None"]]
"""Called with each kmock request before the emulator serves it: return a response to answer with instead
(the request then changes nothing, as a request the API server refused), or None to serve it normally.
It may sleep first to make the answer slow. Used by ``testkit.rbac_gate`` (403 for what a Role does not
allow). The fault tests (5xx, 409, 410, resets, slow answers) run on the real kube-apiserver through
``testkit.faultproxy``, which calls the same kind of hook."""


class ApiServerEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus the metadata an API server assigns, and a bounded request log.

    kmock has no public hook that sees a request before the emulator applies it, so this class, and only
    this class, overrides kmock's private ``_handle``, ``_serve_list`` and ``_render_error`` and trims its
    private request log; every other part of the test kit uses ``fault_hook``.

    Opt-in: ``fault_hook`` (see ``FaultHook``) and ``honour_label_selectors`` (equality and existence
    selectors filter lists, as a real API server does; set-based ones are ignored).
    """

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._versions = itertools.count(1)
        self.fault_hook: FaultHook | None = None
        self.honour_label_selectors = False

    async def _handle(self, request: Any) -> Any:
        if self.fault_hook is not None:
            injected = await self.fault_hook(request)
            if injected is not None:
                return injected
        if request.resource is not None:
            failed_test = self._failed_json_patch_test(request)
            if failed_test is not None:
                return await self._render_error(failed_test)
            self._stamp_server_fields(request)
        try:
            return await super()._handle(request)
        finally:
            if len(self._requests) > REQUEST_LOG_LIMIT:
                self._requests.clear()

    def _failed_json_patch_test(self, request: Any) -> kmock.KubernetesError | None:
        """A JSON patch whose `test` op fails is refused with 422, as kube-apiserver does; kmock says 500,
        which clients (kopf) retry as a server fault instead of re-reading the object."""
        if request.action != kmock.action.UPDATE or not isinstance(request.data, list):
            return None
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        current = self.objects[key].raw
        for op in request.data:
            if op.get("op") == "test" and resolve_pointer(current, op["path"], _MISSING) != op.get("value"):
                return kmock.KubernetesError(
                    status=422,
                    reason="Invalid",
                    message=f"the server rejected our request: testing value {op['path']} failed",
                    details={"name": request.name},
                )
        return None

    def _stamp_server_fields(self, request: Any) -> None:
        version = str(next(self._versions))
        data = request.data
        if request.action == kmock.action.CREATE and isinstance(data, dict):
            metadata = data.setdefault("metadata", {})
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", _now())
            metadata.setdefault("generation", 1)
            metadata["resourceVersion"] = version
            if request.namespace and "namespace" not in metadata:
                metadata["namespace"] = request.namespace
        elif request.action == kmock.action.UPDATE and request.name is not None:
            self._stamp_update(request, data, version)

    def _stamp_update(self, request: Any, data: Any, version: str) -> None:
        changes_spec = False
        if isinstance(data, dict):
            changes_spec = "spec" in data and request.subresource is None
            data.setdefault("metadata", {})
            if data["metadata"] is None:
                data["metadata"] = {}
            data["metadata"]["resourceVersion"] = version
        elif isinstance(data, list):
            changes_spec = any(str(op.get("path", "")).startswith("/spec") for op in data)
            data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})
        if changes_spec:
            self._bump_generation(request, data)

    def _bump_generation(self, request: Any, data: Any) -> None:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return
        generation = int(self.objects[key].get("metadata", {}).get("generation", 1)) + 1
        if isinstance(data, dict):
            data["metadata"]["generation"] = generation
        else:
            data.append({"op": "add", "path": "/metadata/generation", "value": generation})

    async def _serve_list(self, request: Any) -> Any:
        listing = cast(dict[str, Any], await super()._serve_list(request))
        selector = (request.params or {}).get("labelSelector")
        if self.honour_label_selectors and selector:
            listing["items"] = [item for item in listing["items"] if _selected(selector, item)]
        return listing


def _selected(selector: str, item: dict[str, Any]) -> bool:
    """Whether ``item``'s labels match an equality/existence selector such as ``a=b,c!=d,e,!f``."""
    labels = (item.get("metadata") or {}).get("labels") or {}
    for term in (part.strip() for part in selector.split(",")):
        if "(" in term or not term:
            continue  # set-based terms are not emulated
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EmulatedCluster:
    """An ``ApiServerEmulator`` served over HTTP from a background thread, with a kubeconfig for it."""

    def __init__(self, workdir: Path, namespace: str = "floe", honour_label_selectors: bool = False) -> None:
        self.namespace = namespace
        self.honour_label_selectors = honour_label_selectors
        self.kubeconfig_path = workdir / "kubeconfig.yaml"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kube-emulator", daemon=True)
        self._stack: Any = None
        self.emulator: ApiServerEmulator
        self.url = ""

    def start(self) -> EmulatedCluster:
        self._thread.start()
        self.run(self._enter())
        self.kubeconfig_path.write_text(yaml.safe_dump(self.kubeconfig()))
        return self

    def stop(self) -> None:
        if self._stack is not None:
            self.run(self._stack.__aexit__(None, None, None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _enter(self) -> None:
        from contextlib import AsyncExitStack

        self._stack = AsyncExitStack()
        await self._stack.__aenter__()
        self.emulator = await self._stack.enter_async_context(ApiServerEmulator())
        self.emulator.honour_label_selectors = self.honour_label_selectors
        server = await self._stack.enter_async_context(kmock.Server(self.emulator))
        for resource, kind, namespaced in RESOURCES:
            info = self.emulator.resources[resource]
            info.kind = kind
            info.namespaced = namespaced
            info.verbs = {"get", "list", "watch", "create", "patch", "update", "delete"}
            if kind == "FloePlatform":
                info.shortnames = {"fp"}
                info.subresources = {"status"}
                info.singular = "floeplatform"
        self.url = str(server.url).rstrip("/")

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the emulator's loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    def write_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig for this emulator that authenticates with ``token`` (see ``testkit.rbac_gate``)."""
        path.write_text(yaml.safe_dump(self.kubeconfig(token)))
        return path

    def kubeconfig(self, token: str = "emulator-token") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "emulator", "namespace": self.namespace},
                }
            ],
            "current-context": "emulator",
        }

    def api_client(self) -> Any:
        """A real ``kubernetes.client.ApiClient`` pointed at the emulator."""
        import kubernetes  # type: ignore[import-untyped]

        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        configuration.api_key = {"authorization": "emulator-token"}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return kubernetes.client.ApiClient(configuration)


@contextmanager
def emulated_cluster(
    workdir: Path, namespace: str = "floe", honour_label_selectors: bool = False
) -> Iterator[EmulatedCluster]:
    cluster = EmulatedCluster(workdir, namespace, honour_label_selectors).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def validate_object(obj: dict[str, Any]) -> None:
    """Reject what a real API server would reject: check ``obj`` against Kubernetes' own OpenAPI schema."""
    kubernetes_validate.validate(_without_server_fields(obj), KUBERNETES_VERSION, strict=True)


def _without_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key != "status" or obj.get("kind") != "PodTemplate"}

"""The operator's own Kubernetes API client: credentials, and JSON over HTTPS with urllib3.

The operator makes five kinds of call (list, create, read, patch, delete) on three core kinds. The official
client would cost it about 60 MB: kopf imports the client's ~700 generated models whenever the package is
installed, and the models are most of the operator's memory. So the operator process keeps that package
out (``keep_out_unused_clients``) and talks JSON through this module instead; kopf logs in with the same
credentials (``Credentials.connection_info``).

Credentials come from the in-cluster ServiceAccount (its token file is re-read when the kubelet rotates
it) or else from KUBECONFIG (or ``~/.kube/config``): server, CA, token or token file, client certificate
and key (paths or inline data), basic auth, and ``exec`` credential plugins that return a token or a
client certificate.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = "~/.kube/config"
USER_AGENT = "floe-operator"


class CredentialsError(Exception):
    """No usable credentials; ``str()`` says where they were looked for and why they cannot be used."""


class ApiStatusError(Exception):
    """The API server answered with an error status; ``status``, ``reason`` and its ``message``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}" if message else f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message


def keep_out_unused_clients() -> None:
    """Make ``import kubernetes`` (and kopf's other optional clients) fail in this process.

    Call it first thing in the operator's process, before kopf is imported: kopf imports every client it
    finds installed, for type checks on objects the operator never hands it. A ``None`` in
    ``sys.modules`` is Python's own way to say "this module cannot be imported". A process that already
    imported a client keeps it.
    """
    for name in ("kubernetes", "kubernetes_asyncio", "pykube"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


@dataclass
class Credentials:
    """Where the API server is and how to prove who we are. Paths are absolute; ``*_data`` is PEM."""

    server: str
    ca_path: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    token: str | None = None
    token_path: str | None = None
    certificate_path: str | None = None
    certificate_data: bytes | None = None
    private_key_path: str | None = None
    private_key_data: bytes | None = None
    username: str | None = None
    password: str | None = None
    exec_plugin: Mapping[str, Any] | None = None
    default_namespace: str | None = None
    _token_cache: tuple[float, str] | None = field(default=None, repr=False)
    _exec_cache: tuple[datetime.datetime | None, dict[str, Any]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.exec_plugin is not None:
            status = self._exec_status()  # run it once now: a broken plugin is a credentials problem
            self.certificate_data = _pem(status.get("clientCertificateData")) or self.certificate_data
            self.private_key_data = _pem(status.get("clientKeyData")) or self.private_key_data

    def bearer_token(self) -> str | None:
        """The token to send now: a token file is re-read when it changes, a plugin's when it expires."""
        if self.token_path:
            mtime = os.stat(self.token_path).st_mtime
            if self._token_cache is None or self._token_cache[0] != mtime:
                self._token_cache = (mtime, Path(self.token_path).read_text().strip())
            return self._token_cache[1]
        if self.exec_plugin is not None:
            token = self._exec_status().get("token")
            return str(token) if token else None
        return self.token

    def _exec_status(self) -> dict[str, Any]:
        now = datetime.datetime.now(datetime.UTC)
        if self._exec_cache is not None:
            expiry, status = self._exec_cache
            if expiry is None or now < expiry - datetime.timedelta(seconds=30):
                return status
        status = run_exec_plugin(self.exec_plugin or {})
        expiry_text = status.get("expirationTimestamp")
        expiry = datetime.datetime.fromisoformat(expiry_text.replace("Z", "+00:00")) if expiry_text else None
        self._exec_cache = (expiry, status)
        return status

    def connection_info(self) -> Any:
        """The same credentials as kopf's ``ConnectionInfo``, for kopf's own watches and patches."""
        import kopf  # only the operator process needs it; `floe delete-platforms` does not

        return kopf.ConnectionInfo(
            server=self.server,
            ca_path=self.ca_path,
            ca_data=self.ca_data,
            insecure=self.insecure or None,
            token=self.bearer_token(),
            certificate_path=self.certificate_path,
            certificate_data=self.certificate_data,
            private_key_path=self.private_key_path,
            private_key_data=self.private_key_data,
            username=self.username,
            password=self.password,
            default_namespace=self.default_namespace,
        )


def load_credentials(kubeconfig: str | None = None) -> Credentials:
    """In-cluster ServiceAccount first, else the kubeconfig; ``CredentialsError`` says why neither works."""
    if kubeconfig is None:
        try:
            return in_cluster_credentials()
        except CredentialsError as error:
            in_cluster = str(error)
    else:
        in_cluster = "a kubeconfig was given"
    try:
        return kubeconfig_credentials(kubeconfig)
    except CredentialsError as error:
        raise CredentialsError(f"not in a cluster ({in_cluster}) and {error}") from None


def login(program: str = "floe operator") -> Credentials:
    """``load_credentials``, once, for ``program``: its ``CredentialsError`` is one line that names what is
    missing and the fix (the operator says it before kopf starts, which would otherwise retry its start
    every minute with a traceback while /healthz never comes up)."""
    try:
        return load_credentials()
    except CredentialsError as error:
        raise CredentialsError(
            f"{program}: no Kubernetes credentials: {error}; set KUBECONFIG to a working kubeconfig "
            "(or create ~/.kube/config), or run it in a pod with a ServiceAccount"
        ) from None


def in_cluster_credentials(directory: Path = SERVICE_ACCOUNT_DIR) -> Credentials:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise CredentialsError("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
    token = directory / "token"
    if not token.is_file():
        raise CredentialsError(f"no ServiceAccount token at {token}")
    namespace_file = directory / "namespace"
    ca = directory / "ca.crt"
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    return Credentials(
        server=f"https://{host}:{port}",
        ca_path=str(ca) if ca.is_file() else None,
        token_path=str(token),
        default_namespace=namespace_file.read_text().strip() if namespace_file.is_file() else None,
    )


def kubeconfig_paths(kubeconfig: str | None = None) -> list[str]:
    if kubeconfig is not None:
        return [kubeconfig]
    listed = [path for path in os.environ.get("KUBECONFIG", "").split(os.pathsep) if path]
    return listed or [os.path.expanduser(DEFAULT_KUBECONFIG)]


def kubeconfig_credentials(kubeconfig: str | None = None) -> Credentials:
    """The current context of the kubeconfig files, merged as kubectl does (the first to set a name wins)."""
    paths = kubeconfig_paths(kubeconfig)
    existing = [path for path in paths if os.path.isfile(path)]
    if not existing:
        where = (
            "KUBECONFIG names no existing file" if os.environ.get("KUBECONFIG") else "KUBECONFIG is not set"
        )
        raise CredentialsError(f"no kubeconfig at {os.pathsep.join(paths)} ({where})")
    try:
        return _from_kubeconfig(existing)
    except CredentialsError as error:
        raise CredentialsError(f"the kubeconfig {os.pathsep.join(existing)} is unusable ({error})") from None
    except (OSError, yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError) as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise CredentialsError(f"the kubeconfig {os.pathsep.join(existing)} is unusable ({reason})") from None


def _from_kubeconfig(paths: list[str]) -> Credentials:
    named: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {"clusters": {}, "users": {}, "contexts": {}}
    current = None
    for path in paths:
        document = yaml.safe_load(Path(path).read_text()) or {}
        current = current or document.get("current-context")
        for section, entries in named.items():
            for entry in document.get(section) or []:
                entries.setdefault(entry["name"], (entry[section[:-1]] or {}, Path(path).parent))
    if not current:
        raise CredentialsError("no current-context")
    if current not in named["contexts"]:
        raise CredentialsError(f"the current context {current!r} is not defined")
    context, _ = named["contexts"][current]
    if context.get("cluster") not in named["clusters"]:
        raise CredentialsError(f"context {current!r} names no defined cluster")
    cluster, cluster_dir = named["clusters"][context["cluster"]]
    user, user_dir = named["users"].get(context.get("user", ""), ({}, cluster_dir))
    if not cluster.get("server"):
        raise CredentialsError(f"cluster {context['cluster']!r} has no server")
    return Credentials(
        server=cluster["server"],
        ca_path=_path(cluster.get("certificate-authority"), cluster_dir),
        ca_data=_pem(cluster.get("certificate-authority-data")),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=user.get("token"),
        token_path=_path(user.get("tokenFile"), user_dir),
        certificate_path=_path(user.get("client-certificate"), user_dir),
        certificate_data=_pem(user.get("client-certificate-data")),
        private_key_path=_path(user.get("client-key"), user_dir),
        private_key_data=_pem(user.get("client-key-data")),
        username=user.get("username"),
        password=user.get("password"),
        exec_plugin=user.get("exec"),
        default_namespace=context.get("namespace"),
    )


def _path(value: str | None, directory: Path) -> str | None:
    """Relative paths in a kubeconfig are relative to the file that holds them."""
    return str((directory / os.path.expanduser(value)).resolve()) if value else None


def _pem(value: str | None) -> bytes | None:
    """Kubeconfig ``*-data`` fields are base64 of PEM; exec plugins return PEM as is."""
    if not value:
        return None
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    return base64.b64decode(value)


def run_exec_plugin(plugin: Mapping[str, Any]) -> dict[str, Any]:
    """Run a kubeconfig ``exec`` credential plugin; its ``ExecCredential`` status (token or certificate)."""
    command = [plugin["command"], *(plugin.get("args") or [])]
    env = {**os.environ, **{item["name"]: item["value"] for item in plugin.get("env") or []}}
    request = {
        "apiVersion": plugin.get("apiVersion", "client.authentication.k8s.io/v1"),
        "kind": "ExecCredential",
    }
    env["KUBERNETES_EXEC_INFO"] = json.dumps({**request, "spec": {"interactive": False}})
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CredentialsError(f"the exec plugin {command[0]!r} did not run: {error}") from None
    if done.returncode != 0:
        raise CredentialsError(
            f"the exec plugin {command[0]!r} exited with {done.returncode}: {done.stderr.strip()[:200]}"
        )
    status: dict[str, Any] = (json.loads(done.stdout) or {}).get("status") or {}
    if not status.get("token") and not status.get("clientCertificateData"):
        raise CredentialsError(f"the exec plugin {command[0]!r} returned neither a token nor a certificate")
    return status


class KubeClient:
    """JSON requests to the API server with one set of credentials, from many threads (a pool)."""

    def __init__(self, credentials: Credentials, pool_size: int = 8) -> None:
        self.credentials = credentials
        self._pool = urllib3.PoolManager(maxsize=pool_size, block=False, **_tls(credentials))
        self._lock = threading.Lock()

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], pool_size: int = 8) -> KubeClient:
        return cls(kubeconfig_credentials(os.fspath(path)), pool_size)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: tuple[float, float] = (5.0, 20.0),
    ) -> bytes:
        """Send one request; the answer's bytes, or ``ApiStatusError`` for an error status.

        Connection errors are urllib3's (``urllib3.exceptions.HTTPError``) or ``OSError``.
        """
        url = self.credentials.server.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")
        headers = self._headers()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        response = self._pool.request(
            method,
            url,
            body=data,
            headers=headers,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
        )
        if response.status >= 400:
            raise _status_error(response)
        return bytes(response.data)

    def request_json(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self.request(method, path, **options) or b"{}")
        return answer

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        with self._lock:  # a token file or plugin is read by one thread at a time
            token = self.credentials.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self.credentials.username:
            headers.update(
                urllib3.make_headers(
                    basic_auth=f"{self.credentials.username}:{self.credentials.password or ''}"
                )
            )
        return headers

    def close(self) -> None:
        self._pool.clear()


def _status_error(response: urllib3.BaseHTTPResponse) -> ApiStatusError:
    message = ""
    try:
        message = str(json.loads(response.data).get("message") or "")
    except (ValueError, AttributeError):
        message = response.data[:200].decode(errors="replace").strip()
    return ApiStatusError(response.status, response.reason or "", message)


def _tls(credentials: Credentials) -> dict[str, Any]:
    """The pool's TLS options: the CA to trust and the client certificate, written to private files when
    they come as data (``ssl`` loads certificates only from files)."""
    if not credentials.server.startswith("https"):
        return {}
    context = ssl.create_default_context()
    if credentials.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif credentials.ca_data:
        context = ssl.create_default_context(cadata=credentials.ca_data.decode())
    elif credentials.ca_path:
        context = ssl.create_default_context(cafile=credentials.ca_path)
    if credentials.certificate_path or credentials.certificate_data:
        with (
            _as_file(credentials.certificate_path, credentials.certificate_data) as certificate,
            _as_file(credentials.private_key_path, credentials.private_key_data) as key,
        ):
            context.load_cert_chain(certificate or "", key)
    return {"ssl_context": context}


@contextmanager
def _as_file(path: str | None, data: bytes | None) -> Iterator[str | None]:
    """``path``, or ``data`` in a private temporary file for as long as ``ssl`` needs to read it."""
    if path or data is None:
        yield path
        return
    descriptor, temporary = tempfile.mkstemp(prefix="floe-operator-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        yield temporary
    finally:
        os.unlink(temporary)

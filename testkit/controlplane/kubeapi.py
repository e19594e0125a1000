"""A small JSON client for kube-apiserver: enough to set the cluster up and to probe authorization.

It authenticates either with a client certificate (the admin) or with a bearer token (a
ServiceAccount), so a test can show what a component's own identity may and may not do.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

JsonObject = dict[str, Any]
T = TypeVar("T")


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class KubeApi:
    def __init__(
        self,
        server: str,
        ca_file: Path,
        *,
        client_cert: tuple[Path, Path] | None = None,
        token: str | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self._context = ssl.create_default_context(cafile=str(ca_file))
        if client_cert is not None:
            self._context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))

    def request(
        self, method: str, path: str, body: JsonObject | None = None, *, timeout: float = 10.0
    ) -> JsonObject:
        """Send one request; raise ApiError for any status >= 400."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            kind = "application/merge-patch+json" if method == "PATCH" else "application/json"
            request.add_header("Content-Type", kind)
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise ApiError(method, path, error.code, error.read().decode(errors="replace")) from None
        parsed = json.loads(text) if text.startswith(("{", "[")) else {"text": text}
        return parsed if isinstance(parsed, dict) else {"items": parsed}

    def get(self, path: str) -> JsonObject:
        return self.request("GET", path)

    def create(self, path: str, body: JsonObject) -> JsonObject:
        return self.request("POST", path, body)

    def delete(self, path: str, body: JsonObject | None = None) -> JsonObject:
        return self.request("DELETE", path, body)

    def patch(self, path: str, body: JsonObject) -> JsonObject:
        """A JSON merge patch (lists are replaced whole)."""
        return self.request("PATCH", path, body)

    def ensure(self, path: str, body: JsonObject) -> None:
        """Create unless it already exists (409), so set-up can run twice."""
        try:
            self.create(path, body)
        except ApiError as error:
            if error.status != 409:
                raise

    def status_of(self, method: str, path: str, body: JsonObject | None = None) -> int:
        """The HTTP status of a request, for authorization probes (200/201 allowed, 403 refused)."""
        try:
            self.request(method, path, body)
        except ApiError as error:
            return error.status
        return 200


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Poll ``probe`` until it returns something other than None (errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except (OSError, ApiError, ValueError) as error:
            last_error, result = error, None
        if result is not None:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; last error: {last_error}")

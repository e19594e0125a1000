"""Faults for a ``fault_hook``: answer chosen requests with an error, an expired watch, late, or not at all.

``FaultPlan`` fires rules a bounded number of times; ``FaultInjector`` queues statuses for the next requests
of one kind. Both are hooks of one mechanism with two hosts: the fault proxy in front of the real
kube-apiserver (``testkit.faultproxy.FaultProxy.fault_hook``, where a request the hook lets through is
forwarded to the real server) and the emulator (``ApiServerEmulator.fault_hook``). A request either host
answers from the hook never reaches the server and changes nothing, as a request the server refused; the
one exception is a lost answer, which the proxy lets the server serve before it drops the connection.

A ``FaultPlan`` is a list of rules; each matches requests by action and resource and fires a limited
number of times (every ``every``-th match), so that a test injects a known, bounded amount of trouble and
can assert afterwards that the trouble really happened (``fired``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web

ERROR_REASONS = {
    403: "Forbidden",
    409: "Conflict",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_body(code: int, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``v1 Status`` a real API server sends with an error."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": ERROR_REASONS.get(code, "InternalError"),
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


def error_response(code: int) -> aiohttp.web.StreamResponse:
    return aiohttp.web.json_response(status_body(code, f"injected fault: HTTP {code}"), status=code)


def expired_watch_response() -> aiohttp.web.StreamResponse:
    """How a real API server ends a watch whose resourceVersion is too old: 200, then an ERROR 410 event."""
    event = {"type": "ERROR", "object": status_body(410, "too old resource version (injected)")}
    return aiohttp.web.Response(text=json.dumps(event) + "\n", content_type="application/json")


class ConnectionReset(aiohttp.web.StreamResponse):
    """No answer at all: the connection is torn down with a TCP reset (SO_LINGER 0), as when a load balancer
    or an API server dies mid-request. The client sees a connection error, not an HTTP status."""

    async def prepare(self, request: aiohttp.web.BaseRequest) -> None:
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        raise ConnectionResetError("connection reset (injected)")


class LostAnswer(ConnectionReset):
    """The request is served, then the connection is reset before the answer arrives: the client cannot
    tell whether its write happened. Only the fault proxy forwards first; the emulator resets at once."""


@dataclass
class Rule:
    """Answer matching requests with ``status`` (or an expired watch, a reset connection, or a lost answer),
    after ``delay`` seconds. With none of them the request is served normally, late."""

    name: str
    actions: frozenset[str]
    plural: str
    status: int | None = None
    expire_watch: bool = False
    reset: bool = False
    lose_answer: bool = False
    delay: float = 0.0
    times: int = 1
    every: int = 1
    seen: int = 0

    def answer(self) -> aiohttp.web.StreamResponse | None:
        """What to answer instead of the server; None: serve it (late, when ``delay`` is set)."""
        if self.expire_watch:
            return expired_watch_response()
        if self.reset:
            return ConnectionReset()
        if self.lose_answer:
            return LostAnswer()
        return None if self.status is None else error_response(self.status)

    def matches(self, request: Any) -> bool:
        resource = request.resource
        action = getattr(request.action, "value", None)
        return resource is not None and resource.plural == self.plural and action in self.actions


@dataclass
class FaultPlan:
    rules: list[Rule]
    fired: Counter[str] = field(default_factory=Counter)

    async def __call__(self, request: Any) -> aiohttp.web.StreamResponse | None:
        for rule in self.rules:
            if not rule.matches(request) or self.fired[rule.name] >= rule.times:
                continue
            rule.seen += 1
            if rule.seen % rule.every:
                continue
            self.fired[rule.name] += 1
            if rule.delay:
                await asyncio.sleep(rule.delay)
            return rule.answer()
        return None


@dataclass
class FaultInjector:
    """Answer the next requests of one (action, plural) with the given error statuses, in order, and count
    every request by (action, plural). Installed as the ``fault_hook`` of ``host`` (the fault proxy or the
    emulator), like ``FaultPlan``, so a refused request changes nothing, as on an API server that failed
    it. ``remove()`` uninstalls it."""

    host: Any
    pending: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    served: list[tuple[str, str, int]] = field(default_factory=list)
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.host.fault_hook = self

    def fail_next(self, action: str, plural: str, *statuses: int) -> None:
        """``action`` is kmock's name: LIST, WATCH, FETCH, CREATE, UPDATE (PUT and PATCH) or DELETE."""
        self.pending.setdefault((action, plural), []).extend(statuses)

    async def __call__(self, request: Any) -> aiohttp.web.StreamResponse | None:
        plural = getattr(request.resource, "plural", None) or ""
        key = (str(getattr(request.action, "value", "")), plural)
        self.seen[key] += 1
        queue = self.pending.get(key)
        if queue and request.subresource is None:
            status = queue.pop(0)
            self.served.append((*key, status))
            return error_response(status)
        return None

    def remove(self) -> None:
        self.host.fault_hook = None

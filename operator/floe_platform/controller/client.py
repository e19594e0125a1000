"""The API half of reconciling a FloePlatform: carry out ``controller.plan`` with the kubernetes client.

The children are PodTemplates, LimitRanges and ResourceQuotas, written the same way. Every write is
idempotent, so a retry, a restart or two overlapping runs converge on the same state: create falls back to
reading the existing object, a patch replaces the whole ``template`` or ``spec`` (a JSON patch, so fields
added by hand disappear), and delete ignores "not found". API errors are sorted into
``TransientApiError`` (retry with backoff) and ``PermanentApiError`` (report).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import kubernetes  # type: ignore[import-untyped]
import urllib3

from floe_platform.controller.plan import (
    GUARDRAIL_KINDS,
    Outcome,
    PlatformRef,
    desired_children,
    guardrail_entry,
    in_sync,
    owned_by,
    owned_templates,
    patch_operations,
    profile_entry,
)
from floe_platform.render.podtemplate import MANAGED_BY, MANAGED_BY_LABEL, PLATFORM_LABEL

# Statuses worth retrying: conflicts, throttling, expired resource versions and server-side failures.
TRANSIENT_STATUSES = frozenset({0, 408, 409, 410, 425, 429, 500, 502, 503, 504})
DEFAULT_REQUEST_TIMEOUT = (5.0, 20.0)  # (connect, read) seconds for every call the reconciler makes


class ApiError(Exception):
    """A Kubernetes API call failed; ``str()`` says which call and why, for status and events."""


class TransientApiError(ApiError):
    """Worth retrying later: the same request may well succeed."""


class PermanentApiError(ApiError):
    """Retrying the same request will fail again (forbidden, rejected as invalid)."""


def reconcile(
    core: kubernetes.client.CoreV1Api,
    body: Mapping[str, Any],
    known: Iterable[Mapping[str, Any]] | None = None,
    known_guardrails: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
) -> Outcome:
    """Make the FloePlatform ``body``'s children match its spec: one PodTemplate per profile and, with
    namespace_limits enabled, its LimitRange and ResourceQuota; no others.

    ``known`` (PodTemplates) and ``known_guardrails`` (by kind) are the live children as a watch-fed cache
    has them (the operator's kopf indexes); without them they are listed. A stale cache costs at most a
    redundant patch, a 409 turned into a patch, or a delete that waits for the next resync: every step
    checks or tolerates the live state.
    """
    platform = PlatformRef.from_body(body)
    desired = desired_children(body.get("spec"), platform)
    outcome = Outcome(
        profiles=[profile_entry(template) for template in desired.templates],
        guardrails=[guardrail_entry(guardrail) for guardrail in desired.guardrails],
    )
    converge(
        ChildClient(core, platform.namespace, "PodTemplate"), desired.templates, known, platform, outcome
    )
    for kind in GUARDRAIL_KINDS:
        wanted = [guardrail for guardrail in desired.guardrails if guardrail["kind"] == kind]
        cached = None if known_guardrails is None else known_guardrails.get(kind, [])
        converge(ChildClient(core, platform.namespace, kind), wanted, cached, platform, outcome)
    return outcome


def converge(
    client: ChildClient,
    desired: list[dict[str, Any]],
    known: Iterable[Mapping[str, Any]] | None,
    platform: PlatformRef,
    outcome: Outcome,
) -> None:
    """Create or patch each desired child of one kind, and delete the owned ones no longer desired."""
    items = list(known) if known is not None else client.list_labelled(platform.name)
    live = owned_templates(items, platform)
    for child in desired:
        name = child["metadata"]["name"]
        action = apply_template(client, child, live.pop(name, None))
        if action != "unchanged":
            getattr(outcome, action).append(client.describe(name))
    for name, stale in live.items():
        if owned_by(stale, platform):
            client.delete(name)
            outcome.deleted.append(client.describe(name))


def apply_template(client: ChildClient, desired: dict[str, Any], live: Mapping[str, Any] | None) -> str:
    """Create or patch one child; returns ``created``, ``patched`` or ``unchanged``."""
    name = desired["metadata"]["name"]
    if live is None:
        live = client.create_or_get(desired)
        if live is None:
            return "created"
    if in_sync(desired, live):
        return "unchanged"
    client.patch(name, patch_operations(desired, live))
    return "patched"


# The CoreV1Api method suffix of each kind the operator writes.
_METHODS = {"PodTemplate": "pod_template", "LimitRange": "limit_range", "ResourceQuota": "resource_quota"}


class ChildClient:
    """The five calls the reconciler makes on one kind, with timeouts and errors sorted for retrying."""

    def __init__(
        self,
        core: kubernetes.client.CoreV1Api,
        namespace: str,
        kind: str,
        timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self._core = core
        self._namespace = namespace
        self._kind = kind
        self._timeout = timeout

    def describe(self, name: str) -> str:
        """How the outcome names a child: a PodTemplate by its name, others as ``Kind/name``."""
        return name if self._kind == "PodTemplate" else f"{self._kind}/{name}"

    def _call(self, verb: str) -> Any:
        return getattr(self._core, f"{verb}_namespaced_{_METHODS[self._kind]}")

    def list_labelled(self, platform_name: str) -> list[dict[str, Any]]:
        selector = f"{PLATFORM_LABEL}={platform_name},{MANAGED_BY_LABEL}={MANAGED_BY}"
        with _sorted_errors(f"list {self._kind}s in {self._namespace}"):
            response = self._call("list")(
                self._namespace,
                label_selector=selector,
                _request_timeout=self._timeout,
                _preload_content=False,  # plain JSON: no model round trip, nothing dropped
            )
        items: list[dict[str, Any]] = _json(response).get("items") or []
        return items

    def create_or_get(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create; if it already exists (a lost race or a stale list), return the live object instead."""
        name = body["metadata"]["name"]
        try:
            with _sorted_errors(f"create {self._kind} {self._namespace}/{name}"):
                # The answer is not read: plain bytes instead of the client's models, which would cost
                # the operator CPU and memory for every child it writes.
                _drain(
                    self._call("create")(
                        self._namespace, body, _request_timeout=self._timeout, _preload_content=False
                    )
                )
            return None
        except TransientApiError as error:
            if (
                not isinstance(error.__cause__, kubernetes.client.ApiException)
                or error.__cause__.status != 409
            ):
                raise
        with _sorted_errors(f"read {self._kind} {self._namespace}/{name}"):
            response = self._call("read")(
                name, self._namespace, _request_timeout=self._timeout, _preload_content=False
            )
        return _json(response)

    def patch(self, name: str, operations: list[dict[str, Any]]) -> None:
        with _sorted_errors(f"patch {self._kind} {self._namespace}/{name}"):
            _drain(
                self._call("patch")(
                    name, self._namespace, operations, _request_timeout=self._timeout, _preload_content=False
                )
            )

    def delete(self, name: str) -> None:
        try:
            with _sorted_errors(f"delete {self._kind} {self._namespace}/{name}"):
                self._call("delete")(name, self._namespace, _request_timeout=self._timeout)
        except PermanentApiError as error:
            if _status_of(error) != 404:  # already gone is what we wanted
                raise


@contextmanager
def _sorted_errors(call: str) -> Iterator[None]:
    """Turn client exceptions into ``TransientApiError`` or ``PermanentApiError`` naming the call."""
    try:
        yield
    except kubernetes.client.ApiException as error:
        status = int(error.status or 0)
        message = f"{call}: HTTP {status} {error.reason or ''}".rstrip()
        if status in TRANSIENT_STATUSES or status >= 500:
            raise TransientApiError(message) from error
        raise PermanentApiError(message) from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise TransientApiError(f"{call}: {type(error).__name__}: {error}") from error


def _drain(response: Any) -> None:
    """Read an unparsed answer to its end, which hands the connection back to the pool."""
    response.data  # noqa: B018 (reading it is the point)


def _json(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


def _status_of(error: ApiError) -> int | None:
    cause = error.__cause__
    return int(cause.status or 0) if isinstance(cause, kubernetes.client.ApiException) else None

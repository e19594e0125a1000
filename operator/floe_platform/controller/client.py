"""The API half of reconciling a FloePlatform: carry out ``controller.plan`` with the operator's client.

The children are PodTemplates, LimitRanges and ResourceQuotas, written the same way. Every write is
idempotent, so a retry, a restart or two overlapping runs converge on the same state: create falls back to
reading the existing object, a patch replaces the whole ``template`` or ``spec`` (a JSON patch, so fields
added by hand disappear), and delete ignores "not found". API errors are sorted into
``TransientApiError`` (retry with backoff) and ``PermanentApiError`` (report).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import urllib3

from floe_platform.controller.kubeapi import ApiStatusError, KubeClient
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
    core: KubeClient,
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


# The resource (plural) of each kind the operator writes, all in the core group.
_PLURALS = {"PodTemplate": "podtemplates", "LimitRange": "limitranges", "ResourceQuota": "resourcequotas"}
JSON_PATCH = "application/json-patch+json"


class ChildClient:
    """The five calls the reconciler makes on one kind, with timeouts and errors sorted for retrying."""

    def __init__(
        self,
        api: KubeClient,
        namespace: str,
        kind: str,
        timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._kind = kind
        self._timeout = timeout
        self._collection = f"/api/v1/namespaces/{namespace}/{_PLURALS[kind]}"

    def describe(self, name: str) -> str:
        """How the outcome names a child: a PodTemplate by its name, others as ``Kind/name``."""
        return name if self._kind == "PodTemplate" else f"{self._kind}/{name}"

    def list_labelled(self, platform_name: str) -> list[dict[str, Any]]:
        selector = f"{PLATFORM_LABEL}={platform_name},{MANAGED_BY_LABEL}={MANAGED_BY}"
        with _sorted_errors(f"list {self._kind}s in {self._namespace}"):
            listed = self._api.request_json(
                "GET", self._collection, query={"labelSelector": selector}, timeout=self._timeout
            )
        items: list[dict[str, Any]] = listed.get("items") or []
        return items

    def create_or_get(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create; if it already exists (a lost race or a stale list), return the live object instead."""
        name = body["metadata"]["name"]
        try:
            with _sorted_errors(f"create {self._kind} {self._namespace}/{name}"):
                # The answer is not parsed: nothing in it is needed, and parsing costs CPU per child.
                self._api.request("POST", self._collection, body=body, timeout=self._timeout)
            return None
        except TransientApiError as error:
            if not isinstance(error.__cause__, ApiStatusError) or error.__cause__.status != 409:
                raise
        with _sorted_errors(f"read {self._kind} {self._namespace}/{name}"):
            return self._api.request_json("GET", f"{self._collection}/{name}", timeout=self._timeout)

    def patch(self, name: str, operations: list[dict[str, Any]]) -> None:
        with _sorted_errors(f"patch {self._kind} {self._namespace}/{name}"):
            self._api.request(
                "PATCH",
                f"{self._collection}/{name}",
                body=operations,
                content_type=JSON_PATCH,
                timeout=self._timeout,
            )

    def delete(self, name: str) -> None:
        try:
            with _sorted_errors(f"delete {self._kind} {self._namespace}/{name}"):
                self._api.request("DELETE", f"{self._collection}/{name}", timeout=self._timeout)
        except PermanentApiError as error:
            if _status_of(error) != 404:  # already gone is what we wanted
                raise


@contextmanager
def _sorted_errors(call: str) -> Iterator[None]:
    """Turn client exceptions into ``TransientApiError`` or ``PermanentApiError`` naming the call."""
    try:
        yield
    except ApiStatusError as error:
        status = error.status
        message = f"{call}: HTTP {status} {error.reason or ''}".rstrip()
        if status in TRANSIENT_STATUSES or status >= 500:
            raise TransientApiError(message) from error
        raise PermanentApiError(message) from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise TransientApiError(f"{call}: {type(error).__name__}: {error}") from error


def _status_of(error: ApiError) -> int | None:
    cause = error.__cause__
    return cause.status if isinstance(cause, ApiStatusError) else None

"""The API half of reconciling a FloePlatform: carry out ``controller.plan`` with the kubernetes client.

Every write is idempotent, so a retry, a restart or two overlapping runs converge on the same state:
create falls back to reading the existing object, a patch replaces the whole ``template`` (a JSON patch,
so fields added by hand disappear), and delete ignores "not found". API errors are sorted into
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
    Outcome,
    PlatformRef,
    desired_templates,
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
) -> Outcome:
    """Make the namespace's PodTemplates match the FloePlatform ``body``: one per profile, no others.

    ``known`` is the live templates as a watch-fed cache has them (the operator's kopf index); without
    it they are listed. A stale cache costs at most a redundant patch, a 409 turned into a patch, or a
    delete that waits for the next resync: every step checks or tolerates the live state.
    """
    platform = PlatformRef.from_body(body)
    templates = desired_templates(body.get("spec"), platform)
    client = PodTemplateClient(core, platform.namespace)
    items = list(known) if known is not None else client.list_labelled(platform.name)
    live = owned_templates(items, platform)
    outcome = Outcome(profiles=[profile_entry(template) for template in templates])
    for template in templates:
        name = template["metadata"]["name"]
        action = apply_template(client, template, live.pop(name, None))
        if action == "created":
            outcome.created.append(name)
        elif action == "patched":
            outcome.patched.append(name)
    for name, stale in live.items():
        if owned_by(stale, platform):
            client.delete(name)
            outcome.deleted.append(name)
    return outcome


def apply_template(client: PodTemplateClient, desired: dict[str, Any], live: Mapping[str, Any] | None) -> str:
    """Create or patch one PodTemplate; returns ``created``, ``patched`` or ``unchanged``."""
    name = desired["metadata"]["name"]
    if live is None:
        live = client.create_or_get(desired)
        if live is None:
            return "created"
    if in_sync(desired, live):
        return "unchanged"
    client.patch(name, patch_operations(desired, live))
    return "patched"


class PodTemplateClient:
    """The four PodTemplate calls the reconciler makes, with timeouts and errors sorted for retrying."""

    def __init__(
        self,
        core: kubernetes.client.CoreV1Api,
        namespace: str,
        timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self._core = core
        self._namespace = namespace
        self._timeout = timeout

    def list_labelled(self, platform_name: str) -> list[dict[str, Any]]:
        selector = f"{PLATFORM_LABEL}={platform_name},{MANAGED_BY_LABEL}={MANAGED_BY}"
        with _sorted_errors(f"list PodTemplates in {self._namespace}"):
            response = self._core.list_namespaced_pod_template(
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
            with _sorted_errors(f"create PodTemplate {self._namespace}/{name}"):
                self._core.create_namespaced_pod_template(
                    self._namespace, body, _request_timeout=self._timeout
                )
            return None
        except TransientApiError as error:
            if (
                not isinstance(error.__cause__, kubernetes.client.ApiException)
                or error.__cause__.status != 409
            ):
                raise
        with _sorted_errors(f"read PodTemplate {self._namespace}/{name}"):
            response = self._core.read_namespaced_pod_template(
                name, self._namespace, _request_timeout=self._timeout, _preload_content=False
            )
        return _json(response)

    def patch(self, name: str, operations: list[dict[str, Any]]) -> None:
        with _sorted_errors(f"patch PodTemplate {self._namespace}/{name}"):
            self._core.patch_namespaced_pod_template(
                name, self._namespace, operations, _request_timeout=self._timeout
            )

    def delete(self, name: str) -> None:
        try:
            with _sorted_errors(f"delete PodTemplate {self._namespace}/{name}"):
                self._core.delete_namespaced_pod_template(
                    name, self._namespace, _request_timeout=self._timeout
                )
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


def _json(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


def _status_of(error: ApiError) -> int | None:
    cause = error.__cause__
    return int(cause.status or 0) if isinstance(cause, kubernetes.client.ApiException) else None

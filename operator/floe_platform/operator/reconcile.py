"""Where a FloePlatform becomes PodTemplates: validate, render, then create, patch or delete to match.

Every write is idempotent, so a retry, a restart or two overlapping runs converge on the same state:
create falls back to patch when the object exists, a patch replaces the whole ``template`` (a JSON patch,
so fields added by hand disappear on a real API server as on the emulator), and delete ignores "not found".
API errors are sorted into ``TransientApiError`` (retry with backoff) and ``PermanentApiError`` (report).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import kubernetes  # type: ignore[import-untyped]
import urllib3

from floe_platform.config import parse_platform
from floe_platform.config.quantity import QuantityError, parse_quantity
from floe_platform.crd import API_VERSION, KIND
from floe_platform.render import HASH_ANNOTATION, PROFILE_LABEL, render_pod_templates
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


@dataclass(frozen=True)
class PlatformRef:
    """The FloePlatform being reconciled: what the templates are named after and owned by."""

    name: str
    namespace: str
    uid: str
    generation: int

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PlatformRef:
        metadata = body["metadata"]
        return cls(
            name=metadata["name"],
            namespace=metadata["namespace"],
            uid=metadata["uid"],
            generation=int(metadata.get("generation") or 1),
        )

    def owner_reference(self) -> dict[str, Any]:
        """The same reference ``kopf.adopt`` writes; built here so reconcile runs without kopf."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class ProfileTemplate:
    """One profile's entry in the status: its PodTemplate and the profile's content hash."""

    name: str
    template: str
    hash: str

    def as_status(self) -> dict[str, str]:
        return {"name": self.name, "template": self.template, "hash": self.hash}


@dataclass
class Outcome:
    """What one reconcile found and did."""

    profiles: list[ProfileTemplate]
    created: list[str] = field(default_factory=list)
    patched: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.patched or self.deleted)


def desired_templates(spec: Any, platform: PlatformRef) -> list[dict[str, Any]]:
    """Validate the spec with the platform.yaml models and render its PodTemplates, owned by the CR.

    Raises ``ConfigError`` (field paths prefixed with ``spec.``) before anything is written.
    """
    config = parse_platform(spec, prefix=("spec",))
    templates = render_pod_templates(config, platform_name=platform.name, namespace=platform.namespace)
    for template in templates:
        template["metadata"]["ownerReferences"] = [platform.owner_reference()]
    return templates


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
    outcome = Outcome(profiles=[_profile_entry(template) for template in templates])
    for template in templates:
        name = template["metadata"]["name"]
        action = apply_template(client, template, live.pop(name, None))
        if action == "created":
            outcome.created.append(name)
        elif action == "patched":
            outcome.patched.append(name)
    for name, stale in live.items():
        if _owned_by(stale, platform):
            client.delete(name)
            outcome.deleted.append(name)
    return outcome


def _profile_entry(template: Mapping[str, Any]) -> ProfileTemplate:
    metadata = template["metadata"]
    return ProfileTemplate(
        name=metadata["labels"][PROFILE_LABEL],
        template=metadata["name"],
        hash=metadata["annotations"][HASH_ANNOTATION],
    )


def owned_templates(
    items: Iterable[Mapping[str, Any]], platform: PlatformRef
) -> dict[str, Mapping[str, Any]]:
    """The listed templates that carry this platform's labels (checked here too: not every server filters)."""
    return {
        item["metadata"]["name"]: item
        for item in items
        if (item["metadata"].get("labels") or {}).get(PLATFORM_LABEL) == platform.name
        and (item["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
    }


def _owned_by(template: Mapping[str, Any], platform: PlatformRef) -> bool:
    """Only delete what this CR owns: a hand-applied `floe render` output has our labels but no owner."""
    references = template["metadata"].get("ownerReferences") or []
    return any(reference.get("uid") == platform.uid for reference in references)


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


def in_sync(desired: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """Whether ``live`` already says what ``desired`` says.

    A real API server adds defaults (``imagePullPolicy``, ``terminationMessagePath``, ...), so the
    template only has to contain the desired fields; lists must match item for item.
    """
    wanted, actual = desired["metadata"], live["metadata"]
    return (
        _contains(actual.get("labels") or {}, wanted["labels"])
        and _contains(actual.get("annotations") or {}, wanted["annotations"])
        and all(ref in (actual.get("ownerReferences") or []) for ref in wanted.get("ownerReferences") or [])
        and _contains(live.get("template"), desired["template"])
    )


# A real API server stores quantities in canonical form ("1000m" comes back as "1", "1024Mi" as "1Gi"), so
# these fields are compared by value; comparing text would patch the same template on every resync.
_QUANTITY_KEYS = frozenset({"cpu", "memory", "ephemeral-storage", "sizeLimit"})


def _contains(actual: Any, wanted: Any, key: str | None = None) -> bool:
    if isinstance(wanted, Mapping):
        return isinstance(actual, Mapping) and all(
            name in actual and _contains(actual[name], value, name) for name, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(wanted)
            and all(_contains(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    if key in _QUANTITY_KEYS and actual != wanted:
        return _same_quantity(actual, wanted)
    return bool(actual == wanted)


def _same_quantity(actual: Any, wanted: Any) -> bool:
    try:
        return parse_quantity(actual) == parse_quantity(wanted)
    except QuantityError:
        return False


def patch_operations(desired: Mapping[str, Any], live: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSON patch that puts the desired template in place and keeps others' labels and annotations."""
    wanted, actual = desired["metadata"], live["metadata"]
    ours = {reference["uid"] for reference in wanted["ownerReferences"]}
    others = [ref for ref in actual.get("ownerReferences") or [] if ref.get("uid") not in ours]
    return [
        {
            "op": "add",
            "path": "/metadata/labels",
            "value": {**(actual.get("labels") or {}), **wanted["labels"]},
        },
        {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {**(actual.get("annotations") or {}), **wanted["annotations"]},
        },
        {"op": "add", "path": "/metadata/ownerReferences", "value": [*others, *wanted["ownerReferences"]]},
        {"op": "add", "path": "/template", "value": desired["template"]},
    ]


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

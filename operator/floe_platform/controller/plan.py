"""The pure half of reconciling a FloePlatform: what its children should be, and how live ones differ.

The children are one PodTemplate per profile and, with ``namespace_limits`` enabled, a LimitRange and a
ResourceQuota. No API calls and no Kubernetes client: given the FloePlatform and the live children as plain
dicts, these functions say what to create, which JSON patch brings a live child in line, and what to
delete. ``controller.client`` carries it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from floe_platform.api import API_VERSION, KIND
from floe_platform.config import parse_platform
from floe_platform.config.quantity import QuantityError, parse_quantity
from floe_platform.render import HASH_ANNOTATION, PROFILE_LABEL, render_guardrails, render_pod_templates
from floe_platform.render.podtemplate import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PLATFORM_LABEL,
    RENDERED_ANNOTATIONS,
)


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


GUARDRAIL_KINDS = ("LimitRange", "ResourceQuota")


@dataclass
class Outcome:
    """What one reconcile found and did."""

    profiles: list[ProfileTemplate]
    guardrails: list[dict[str, str]] = field(default_factory=list)
    """``{kind, name}`` of each namespace guardrail in place (empty when namespace_limits is off)."""
    created: list[str] = field(default_factory=list)
    patched: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.patched or self.deleted)


@dataclass(frozen=True)
class Desired:
    """Every child the FloePlatform should have, owned by it."""

    templates: list[dict[str, Any]]
    guardrails: list[dict[str, Any]]


def desired_children(spec: Any, platform: PlatformRef) -> Desired:
    """Validate the spec with the platform.yaml models and render every child, owned by the CR.

    Raises ``ConfigError`` (field paths prefixed with ``spec.``) before anything is written, so an invalid
    spec leaves every child as it was.
    """
    config = parse_platform(spec, prefix=("spec",))
    templates = render_pod_templates(config, platform_name=platform.name, namespace=platform.namespace)
    guardrails = render_guardrails(config, platform.name, platform.namespace)
    return Desired(_owned(templates, platform), _owned(guardrails, platform))


def _owned(objects: list[dict[str, Any]], platform: PlatformRef) -> list[dict[str, Any]]:
    for obj in objects:
        obj["metadata"]["ownerReferences"] = [platform.owner_reference()]
    return objects


def desired_templates(spec: Any, platform: PlatformRef) -> list[dict[str, Any]]:
    """The PodTemplates of ``desired_children``."""
    return desired_children(spec, platform).templates


def guardrail_entry(obj: Mapping[str, Any]) -> dict[str, str]:
    """A guardrail's entry in the status: ``{kind, name}``."""
    return {"kind": str(obj["kind"]), "name": str(obj["metadata"]["name"])}


def profile_entry(template: Mapping[str, Any]) -> ProfileTemplate:
    metadata = template["metadata"]
    return ProfileTemplate(
        name=metadata["labels"][PROFILE_LABEL],
        template=metadata["name"],
        hash=metadata["annotations"][HASH_ANNOTATION],
    )


def owned_templates(
    items: Iterable[Mapping[str, Any]], platform: PlatformRef
) -> dict[str, Mapping[str, Any]]:
    """The listed children (of one kind) that carry this platform's labels (checked here too: not every
    server filters)."""
    return {
        item["metadata"]["name"]: item
        for item in items
        if (item["metadata"].get("labels") or {}).get(PLATFORM_LABEL) == platform.name
        and (item["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
    }


def owned_by(template: Mapping[str, Any], platform: PlatformRef) -> bool:
    """Only delete what this CR owns: a hand-applied `floe render` output has our labels but no owner."""
    references = template["metadata"].get("ownerReferences") or []
    return any(reference.get("uid") == platform.uid for reference in references)


def content_key(desired: Mapping[str, Any]) -> str:
    """Where a child's content lives: a PodTemplate's ``template``, a LimitRange's or quota's ``spec``."""
    return "template" if desired.get("kind") == "PodTemplate" else "spec"


def in_sync(desired: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """Whether ``live`` already says what ``desired`` says.

    A real API server adds defaults (``imagePullPolicy``, a LimitRange's ``default`` from its ``max``, ...),
    so the live child only has to contain the desired fields; lists must match item for item.
    """
    wanted, actual = desired["metadata"], live["metadata"]
    key = content_key(desired)
    return (
        _contains(actual.get("labels") or {}, wanted["labels"])
        and _contains(actual.get("annotations") or {}, wanted.get("annotations") or {})
        and all(ref in (actual.get("ownerReferences") or []) for ref in wanted.get("ownerReferences") or [])
        and _contains(live.get(key), desired[key])
    )


# A real API server stores quantities in canonical form ("1000m" comes back as "1", "1024Mi" as "1Gi"), so
# these fields are compared by value; comparing text would patch the same child on every resync.
_QUANTITY_KEYS = frozenset(
    {"cpu", "memory", "ephemeral-storage", "sizeLimit", "requests.cpu", "requests.memory", "limits.memory"}
)


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
    """A JSON patch that puts the desired content in place and keeps others' labels and annotations."""
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
            "value": {**_others(actual.get("annotations")), **(wanted.get("annotations") or {})},
        },
        {"op": "add", "path": "/metadata/ownerReferences", "value": [*others, *wanted["ownerReferences"]]},
        {"op": "add", "path": f"/{content_key(desired)}", "value": desired[content_key(desired)]},
    ]


def _others(annotations: Mapping[str, str] | None) -> dict[str, str]:
    """Annotations someone else set: ours are all re-rendered, so one the render dropped (a removed
    ``escalate_to``) goes away instead of outliving its setting."""
    return {key: value for key, value in (annotations or {}).items() if key not in RENDERED_ANNOTATIONS}

"""The pure half of reconciling a FloePlatform: what its PodTemplates should be, and how live ones differ.

No API calls and no Kubernetes client: given the FloePlatform and the live templates as plain dicts, these
functions say what to create, which JSON patch brings a live template in line, and what to delete.
``controller.client`` carries it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from floe_platform.api import API_VERSION, KIND
from floe_platform.config import parse_platform
from floe_platform.config.quantity import QuantityError, parse_quantity
from floe_platform.render import HASH_ANNOTATION, PROFILE_LABEL, render_pod_templates
from floe_platform.render.podtemplate import MANAGED_BY, MANAGED_BY_LABEL, PLATFORM_LABEL


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
    """The listed templates that carry this platform's labels (checked here too: not every server filters)."""
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

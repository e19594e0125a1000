"""The FloePlatform CustomResourceDefinition, generated from the platform.yaml models.

The spec repeats platform.yaml's keys verbatim (snake_case), so the same pydantic models validate both and
``floe cr`` only wraps the file. pydantic's JSON schema is turned into a *structural* OpenAPI v3 schema, the
form apiextensions/v1 requires: every ``$ref`` inlined, no ``anyOf`` of types, maps as
``additionalProperties``, and only keywords the API server knows. Descriptions stay, so that
``kubectl explain fp.spec.infrastructure`` reads like the models' docstrings. Rules JSON schema cannot say
(requests <= limits, the names of map keys) become CEL ``x-kubernetes-validations``. Pure: no client here.
"""

from __future__ import annotations

import json
from typing import Any

from floe_platform.api import CRD_NAME, GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION
from floe_platform.config.models import (
    DNS_LABEL,
    ENV_NAME,
    MAX_DUCKDB_THREADS,
    MAX_ENV_ENTRIES,
    MAX_NAMED_MAP_ENTRIES,
    MAX_PROFILES,
    QUANTITY_JSON_SCHEMA,
    PlatformConfig,
)
from floe_platform.config.quantity import MAX_QUANTITY_LENGTH, QUANTITY_PATTERN

# CEL's estimated cost grows with the size of strings and maps; the API server refuses a CRD whose rules
# could exceed its budget, so every value a rule reads is bounded, by the models' own bounds (imported).
# Keywords pydantic emits that a CRD schema either does not know or should not carry.
_DROPPED_KEYWORDS = frozenset({"title", "examples", "default", "$defs", "$schema", "$id"})
_QUANTITY_ANY_OF = QUANTITY_JSON_SCHEMA["anyOf"]
_VERSION_ENUM = ["1", 1]
_PRESERVE = "x-kubernetes-preserve-unknown-fields"


def floe_platform_crd() -> dict[str, Any]:
    """The apiextensions/v1 CRD of FloePlatform, as written to ``charts/floe-platform/crds/``."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {
                "app.kubernetes.io/name": "floe-platform",
                "app.kubernetes.io/part-of": "floe-platform",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["floe"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {"openAPIV3Schema": resource_schema()},
                }
            ],
        },
    }


def resource_schema() -> dict[str, Any]:
    """The ``openAPIV3Schema`` of a whole FloePlatform object."""
    return {
        "type": "object",
        "description": (
            "A floe platform: its resource profiles become one PodTemplate each, named <name>-<profile>, "
            "which the Dagster run launcher uses for run pods."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
    }


def spec_schema() -> dict[str, Any]:
    """platform.yaml's JSON schema (from ``PlatformConfig``) as a structural OpenAPI v3 schema."""
    source = PlatformConfig.model_json_schema(mode="validation")
    schema = _convert(source, source.get("$defs", {}))
    schema["description"] = (
        "The platform.yaml of this platform, with the same keys (snake_case); `floe cr platform.yaml` "
        "writes it. The operator validates it with the same models as `floe validate`."
    )
    _add_rules(schema)
    return schema


def status_schema() -> dict[str, Any]:
    """What the operator reports: the generation it acted on, each profile's template, conditions."""
    profile = {
        "type": "object",
        "required": ["name", "template", "hash"],
        "properties": {
            "name": {"type": "string", "description": "Profile name, a key of resource_profiles."},
            "template": {"type": "string", "description": "Name of the PodTemplate rendered for it."},
            "hash": {"type": "string", "description": "Content hash of the profile (floe.dev/profile-hash)."},
        },
    }
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string", "description": "Ready or Reconciled."},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string", "description": "CamelCase cause, e.g. InvalidSpec or ApiError."},
            "message": {"type": "string", "description": "What is wrong and where (the field path)."},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64"},
        },
    }
    return {
        "type": "object",
        "description": "Written by the floe operator.",
        "properties": {
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "metadata.generation of the spec the operator last acted on.",
            },
            "profileNames": {"type": "string", "description": "Comma-separated profile names."},
            "lastHandledConfiguration": {
                "type": "string",
                "description": "The spec the operator last handled (JSON), from which it tells what changed.",
            },
            "handlerProgress": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "description": "The operator's retry bookkeeping while a reconcile is being retried.",
            },
            "handlerTouch": {
                "type": "string",
                "description": "Written by the operator to wake itself for a delayed retry.",
            },
            "namespaceLimits": {
                "type": "array",
                "description": "The LimitRange and ResourceQuota in place (infrastructure.namespace_limits).",
                "items": {
                    "type": "object",
                    "required": ["kind", "name"],
                    "properties": {
                        "kind": {"type": "string", "description": "LimitRange or ResourceQuota."},
                        "name": {"type": "string", "description": "Its name, <platform>-limits or -quota."},
                    },
                },
            },
            "profiles": {
                "type": "array",
                "description": "One entry per profile whose PodTemplate is in place.",
                "items": profile,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
            },
            "conditions": {
                "type": "array",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        },
    }


def _printer_columns() -> list[dict[str, Any]]:
    def ready(field: str) -> str:
        return f'.status.conditions[?(@.type=="Ready")].{field}'

    return [
        {"name": "Profiles", "type": "string", "jsonPath": ".status.profileNames"},
        {"name": "Ready", "type": "string", "jsonPath": ready("status")},
        {"name": "Reason", "type": "string", "jsonPath": ready("reason")},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """One pydantic schema node as a structural schema node (recursively)."""
    if "$ref" in node:
        target = _convert(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return _with_description(target, node)
    if node.get("anyOf") == _QUANTITY_ANY_OF:
        return _with_description(_quantity_schema(), node)
    if node.get("enum") == _VERSION_ENUM:
        return _with_description({"x-kubernetes-int-or-string": True, "enum": list(_VERSION_ENUM)}, node)
    if "anyOf" in node:
        return _with_description(_nullable(node["anyOf"], defs), node)
    converted: dict[str, Any] = {}
    for key, value in node.items():
        converted.update(_keyword(key, value, defs))
    if "properties" in converted or "additionalProperties" in converted or _PRESERVE in converted:
        converted.setdefault("type", "object")
    return _with_description(converted, node)


def _keyword(key: str, value: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """One keyword of a schema node, as the structural schema says it (nothing, if it has no place)."""
    if key in _DROPPED_KEYWORDS:
        return {}
    if key == "additionalProperties":
        return _additional_properties(value, defs)
    if key == "propertyNames":  # not in a structural schema: the key rule becomes CEL
        return {"x-kubernetes-validations": [_keys_rule(value)]}
    if key == "properties":
        return {key: {name: _convert(child, defs) for name, child in value.items()}}
    if key == "items":
        return {key: _convert(value, defs)}
    return {"enum": [value]} if key == "const" else {key: value}


def _additional_properties(value: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if value is False:  # closed objects are the structural default
        return {}
    if value is True:
        # A Kubernetes object passed through verbatim (a profile's affinity): the API server validates it
        # where it lands, in the PodTemplate.
        return {_PRESERVE: True}
    return {"additionalProperties": _convert(value, defs)}


def _nullable(options: list[dict[str, Any]], defs: dict[str, Any]) -> dict[str, Any]:
    """``X | None`` is X with ``nullable``; null joins an enum too, since the enum check sees the null."""
    kept = [option for option in options if option.get("type") != "null"]
    if len(kept) != 1:
        raise ValueError(f"cannot express anyOf {options!r} in a structural schema")
    converted = _convert(kept[0], defs)
    converted["nullable"] = True
    if "enum" in converted:
        converted["enum"] = [*converted["enum"], None]
    return converted


def _quantity_schema() -> dict[str, Any]:
    return {
        "x-kubernetes-int-or-string": True,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": QUANTITY_PATTERN,
        "maxLength": MAX_QUANTITY_LENGTH,
        "minimum": _QUANTITY_ANY_OF[1]["minimum"],  # an integer quantity's bounds, from the models
        "maximum": _json_exact(_QUANTITY_ANY_OF[1]["maximum"]),
    }


def _json_exact(bound: int) -> int:
    """``bound`` rounded down to 16 significant digits, so that it survives the API server's float64.

    kube-apiserver keeps a schema's ``maximum`` as a float64 and writes it back in shortest form: 2**62
    comes back as 4611686018427388000. Server-side apply (helm v4 installs crds/ with it) then sees a value
    other than the one another manager applied and refuses with a conflict on ``.spec.versions``. A
    number of 16 significant digits is written back as itself. The bound moves down by less than 1000.
    """
    drop = max(len(str(bound)) - 16, 0)
    exact: int = bound - bound % int(10**drop)
    return exact


def _with_description(converted: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """Prefer the field's own description to its type's, and say the default the models apply."""
    description = " ".join((source.get("description") or converted.get("description") or "").split())
    default = source.get("default")
    if default is not None and not isinstance(default, dict | list):
        suffix = f"Default: {json.dumps(default)}."
        description = f"{description} {suffix}" if description else suffix
    if description:
        converted["description"] = description
    return converted


def _add_rules(spec: dict[str, Any]) -> None:
    """CEL where it is cheap: key names, and each request at most its limit (quantity(), k8s >= 1.29)."""
    infrastructure = spec["properties"]["infrastructure"]
    profiles = infrastructure["properties"]["resource_profiles"]
    profiles["maxProperties"] = MAX_PROFILES
    profiles["x-kubernetes-validations"] = [_names_rule("profile")]
    storages = spec["properties"]["storage"]
    storages["maxProperties"] = MAX_NAMED_MAP_ENTRIES
    storages["x-kubernetes-validations"] = [_names_rule("storage")]
    profile = profiles["additionalProperties"]
    profile["x-kubernetes-validations"] = [_within_limit_rule("cpu"), _within_limit_rule("memory")]
    env = profile["properties"]["env"]
    env["maxProperties"] = MAX_ENV_ENTRIES
    env["x-kubernetes-validations"] = [
        {
            "rule": f"self.all(name, name.matches('{ENV_NAME.pattern}'))",
            "message": "environment variable names are letters, digits and _, not starting with a digit",
        },
        _threads_rule(),
    ]
    node_selector = profile["properties"]["node_selector"]
    node_selector["maxProperties"] = MAX_NAMED_MAP_ENTRIES


def _threads_rule() -> dict[str, str]:
    """DUCKDB_THREADS as the models check it (1 to the maximum, plain ASCII digits, no leading 0 or +).

    ``int()`` rather than ``matches()``: env values have no length bound, and the API server's cost
    estimate of a regular expression over an unbounded string exceeds the budget; a conversion is cheap.
    A value that is no number at all fails the conversion, which the API server reports with this message.
    """
    value = "self.DUCKDB_THREADS"
    return {
        "rule": (
            f"!('DUCKDB_THREADS' in self) || (!{value}.startsWith('0') && !{value}.startsWith('+') && "
            f"int({value}) >= 1 && int({value}) <= {MAX_DUCKDB_THREADS})"
        ),
        "message": f"DUCKDB_THREADS must be a positive whole number of threads (1 to {MAX_DUCKDB_THREADS})",
    }


def _keys_rule(names: dict[str, Any]) -> dict[str, str]:
    """A map's ``propertyNames`` (pattern and maxLength, from the models) as a CEL rule on its keys."""
    return {
        "rule": f"self.all(name, size(name) <= {names['maxLength']} && name.matches('{names['pattern']}'))",
        "message": f"keys must match {names['pattern']} and be at most {names['maxLength']} characters",
    }


def _names_rule(what: str) -> dict[str, str]:
    return {
        "rule": f"self.all(name, size(name) <= 63 && name.matches('{DNS_LABEL.pattern}'))",
        "message": (
            f"{what} names must be at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        ),
    }


def _within_limit_rule(resource: str) -> dict[str, str]:
    request = f"string(self.requests.{resource})"
    limit = f"string(self.limits.{resource})"
    return {
        "rule": (
            f"!isQuantity({request}) || !isQuantity({limit}) || "
            f"quantity({request}).compareTo(quantity({limit})) <= 0"
        ),
        "message": f"requests.{resource} must not exceed limits.{resource}",
        "fieldPath": f".limits.{resource}",
    }


def dump_crd_yaml() -> str:
    """The CRD as the YAML file committed under the chart (stable, so a test can compare it exactly)."""
    import yaml

    header = "# Generated from the platform.yaml models by `make schemas`; do not edit by hand.\n"
    # A JSON round trip unshares repeated lists, so the YAML has no anchors that kubectl users trip on.
    plain = json.loads(json.dumps(floe_platform_crd()))
    return header + yaml.safe_dump(plain, sort_keys=False, width=120)

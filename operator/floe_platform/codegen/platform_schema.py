"""JSON schemas generated from the platform.yaml models (the one source of truth)."""

from __future__ import annotations

import json
from typing import Any

from floe_platform.config.models import QUANTITY_JSON_SCHEMA, ComputeLogs, PlatformConfig

SCHEMA_ID = "https://floe.dev/schemas/platform.schema.json"


def platform_json_schema() -> dict[str, Any]:
    """The JSON schema of platform.yaml, for editors and for ``platform-config/platform.schema.json``."""
    schema = PlatformConfig.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def compute_log_defaults() -> dict[str, Any]:
    """``observability.compute_logs`` as the models default it: the chart fills unset keys from this."""
    return ComputeLogs().model_dump(mode="json")


def dump_json(document: dict[str, Any]) -> str:
    """Stable text form of a generated schema, so that staleness tests compare exactly."""
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def reference_rows() -> list[tuple[str, str, str, str]]:
    """(field path, type, default, description and constraints) for every platform.yaml field.

    Walks the JSON schema so that the reference table is generated from the models too.
    """
    schema = platform_json_schema()
    rows: list[tuple[str, str, str, str]] = []
    _walk(schema, schema.get("$defs", {}), "", rows)
    return rows


def reference_table() -> str:
    """The platform.yaml reference (docs/platform-yaml.md), as a markdown table."""
    lines = ["| Field | Type | Default | Meaning and constraints |", "| --- | --- | --- | --- |"]
    for path, kind, default, meaning in reference_rows():
        lines.append(f"| `{path}` | {kind} | {default} | {meaning} |")
    return "\n".join(lines) + "\n"


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return dict(defs[node["$ref"].rsplit("/", 1)[-1]])
    options = [option for option in node.get("anyOf", []) if option.get("type") != "null"]
    if len(options) == 1 and "$ref" in options[0]:
        return dict(defs[options[0]["$ref"].rsplit("/", 1)[-1]])
    return node


def _walk(
    model: dict[str, Any], defs: dict[str, Any], prefix: str, rows: list[tuple[str, str, str, str]]
) -> None:
    required = set(model.get("required", []))
    for name, field in model.get("properties", {}).items():
        path = f"{prefix}{name}"
        target = _resolve(field, defs)
        values = field.get("additionalProperties")
        is_model_map = isinstance(values, dict) and "$ref" in values
        items = field.get("items")
        is_model_list = isinstance(items, dict) and "$ref" in items
        rows.append(
            (path, _type_name(field, target), _default(field, name in required), _meaning(field, target))
        )
        if "properties" in target and target is not field:
            _walk(target, defs, f"{path}.", rows)
        elif is_model_map:
            _walk(_resolve(values, defs), defs, f"{path}.<name>.", rows)
        elif is_model_list:
            _walk(_resolve(items, defs), defs, f"{path}[].", rows)


def _type_name(field: dict[str, Any], target: dict[str, Any]) -> str:
    enums = [option["enum"] for option in field.get("anyOf", []) if "enum" in option]
    if enums:
        return " \\| ".join(f"`{value}`" for value in enums[0])
    if "enum" in field:
        return " \\| ".join(f"`{value}`" for value in dict.fromkeys(str(v) for v in field["enum"]))
    if "properties" in target:
        return "section"
    if field.get("anyOf") == QUANTITY_JSON_SCHEMA["anyOf"]:
        return "quantity"
    kinds = [option.get("type", "object") for option in field.get("anyOf", [field])]
    kind = " or ".join(str(k) for k in kinds if k != "null")
    if kind == "object":
        values = field.get("additionalProperties")
        return "map of sections" if isinstance(values, dict) and "$ref" in values else "map of string"
    return "list of sections" if kind == "array" else kind


def _default(field: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in field:
        return ""
    default = field["default"]
    if default in ({}, [], None):
        return "empty"
    if isinstance(default, dict):
        return "see below"
    return f"`{json.dumps(default)}`" if not isinstance(default, str) else f"`{default}`"


def _meaning(field: dict[str, Any], target: dict[str, Any]) -> str:
    text = (field.get("description") or target.get("description") or "").replace("\n", " ")
    constraints = [
        f"{label} {field[key]}"
        for key, label in (("minimum", "≥"), ("maximum", "≤"), ("minProperties", "at least"))
        if key in field
    ]
    if "pattern" in field:
        constraints.append(f"pattern `{field['pattern']}`")
    options = [] if field.get("anyOf") == QUANTITY_JSON_SCHEMA["anyOf"] else field.get("anyOf", [])
    for option in options:  # a quantity's pattern says no more than its type, "quantity"
        if "pattern" in option:
            constraints.append(f"pattern `{option['pattern']}`")
    return " ".join([text, *(f"({c})" for c in constraints)]).strip().replace("|", "\\|")

"""Read a CRD's ``openAPIV3Schema`` as plain JSON schema, to validate custom resources with jsonschema.

The two OpenAPI extensions the CRD uses become their JSON schema meaning (``nullable`` -> a null type,
``x-kubernetes-int-or-string`` -> integer or string), and every object with ``properties`` refuses unknown
keys, as ``kubectl apply`` does with its default strict field validation. Of the CEL rules, only the
map-key rules (``self.all(name, name.matches(...))``) are read, as ``propertyNames``; the others are not
evaluated. ``spec_validator`` checks patterns as the API server does, with Go's RE2 semantics.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema  # type: ignore[import-untyped]

_KEY_RULE = re.compile(r"self\.all\(name, (?:size\(name\) <= (\d+) && )?name\.matches\('(.*)'\)\)")


def as_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {
        key: as_json_schema(value)
        for key, value in node.items()
        if not key.startswith("x-kubernetes-") and key != "nullable"
    }
    if node.get("x-kubernetes-int-or-string"):
        schema.pop("anyOf", None)
        schema["type"] = ["integer", "string"]
    if node.get("nullable"):
        schema["type"] = [schema["type"], "null"] if isinstance(schema.get("type"), str) else schema["type"]
    kinds = schema.get("type")
    if "properties" in schema and "object" in (kinds if isinstance(kinds, list) else [kinds]):
        schema.setdefault("additionalProperties", False)  # a nullable object too: ["object", "null"]
    for rule in node.get("x-kubernetes-validations", []):
        match = _KEY_RULE.fullmatch(rule["rule"])
        if match:
            schema["propertyNames"] = {"pattern": match.group(2), "maxLength": int(match.group(1) or 10**9)}
    return schema


def cr_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of a whole custom resource of the CRD's (only) version."""
    openapi = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema: dict[str, Any] = as_json_schema(openapi)
    # metadata is the API server's business; let any metadata through.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"]["status"] = as_json_schema(openapi["properties"]["status"])
    return schema


def _go_regex(pattern: str) -> re.Pattern[str]:
    # Kubernetes checks patterns with Go's RE2, where `$` is the end of the text; in Python's re it also
    # matches before a final newline. RE2's \s, \d and \w are ASCII.
    return re.compile(re.sub(r"\$$", r"\\Z", pattern), re.ASCII)


def _pattern_as_go(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if isinstance(instance, str) and not _go_regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def spec_validator(crd: dict[str, Any]) -> Any:
    """A jsonschema validator of a custom resource's ``spec``, matching patterns as the API server does."""
    openapi = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    validator_class = jsonschema.validators.extend(
        jsonschema.Draft202012Validator, {"pattern": _pattern_as_go}
    )
    return validator_class(as_json_schema(openapi))

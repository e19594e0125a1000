"""Read a CRD's ``openAPIV3Schema`` as plain JSON schema, to validate custom resources with jsonschema.

The two OpenAPI extensions the CRD uses become their JSON schema meaning (``nullable`` -> a null type,
``x-kubernetes-int-or-string`` -> integer or string), and every object with ``properties`` refuses unknown
keys, as ``kubectl apply`` does with its default strict field validation. CEL rules are not evaluated.
"""

from __future__ import annotations

from typing import Any


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
    if "properties" in schema and schema.get("type") == "object" and node is not None:
        schema.setdefault("additionalProperties", False)
    return schema


def cr_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of a whole custom resource of the CRD's (only) version."""
    openapi = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema: dict[str, Any] = as_json_schema(openapi)
    # metadata is the API server's business; let any metadata through.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"]["status"] = as_json_schema(openapi["properties"]["status"])
    return schema

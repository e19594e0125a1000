"""Every quantity in the chart's values has platform.yaml's grammar, enforced by the real helm v4.

The chart's values models reuse ``floe_platform.config``'s quantity type, so the generated
values.schema.json carries the same pattern as platform.yaml's schema. These tests walk values.yaml and the
generated schema together: every value that is a Kubernetes quantity (a CPU, a memory, a volume size) must
be checked by that pattern, and `helm template` (real helm v4, schema validation before rendering) refuses
a wrong unit at each of them, naming its path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from chart_render import CHART, run_helm

from floe_platform.config.quantity import QUANTITY_PATTERN, QuantityError, parse_quantity
from testkit.helm import WITHOUT_CLUSTER

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
QUANTITY_KEYS = {"cpu", "memory", "ephemeral-storage", "size", "storage"}


def is_quantity(value: object) -> bool:
    try:
        parse_quantity(str(value))
    except QuantityError:
        return False
    return True


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _property(node: dict[str, Any], key: str) -> dict[str, Any] | None:
    node = _resolve(node)
    for branch in [node, *node.get("anyOf", []), *node.get("allOf", [])]:
        candidate = _resolve(branch)
        if key in candidate.get("properties", {}):
            return _resolve(candidate["properties"][key])
    return None


def _is_quantity_schema(node: dict[str, Any]) -> bool:
    return any(branch.get("pattern") == QUANTITY_PATTERN for branch in [node, *node.get("anyOf", [])])


def _leaves(
    values: Any, schema: dict[str, Any] | None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any, dict[str, Any] | None]]:
    if isinstance(values, dict):
        for key, value in values.items():
            if path == () and key == "platform":
                continue  # platform.yaml's own schema, tested with platform.yaml
            child = _property(schema, key) if schema is not None else None
            yield from _leaves(value, child, (*path, key))
    else:
        yield path, values, schema


def _quantity_paths() -> list[tuple[str, ...]]:
    return [path for path, _, schema in _leaves(VALUES, SCHEMA) if schema and _is_quantity_schema(schema)]


def test_every_quantity_in_values_yaml_is_checked_by_platform_yamls_grammar() -> None:
    unchecked = [
        "/".join(path)
        for path, value, schema in _leaves(VALUES, SCHEMA)
        if path[-1] in QUANTITY_KEYS
        and is_quantity(str(value))
        and not (schema and _is_quantity_schema(schema))
    ]
    assert unchecked == []
    paths = _quantity_paths()
    # Every component's requests and limits, the bucket and hook Jobs', the volume and the headroom.
    assert len(paths) >= 25, paths
    assert ("postgresql", "persistence", "size") in paths
    assert ("namespaceLimits", "servicesHeadroom", "memory") in paths


def _set(values: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    for key in path[:-1]:
        values = values.setdefault(key, {})
    values[path[-1]] = value


def test_helm_refuses_a_wrong_unit_at_every_quantity_naming_each_path(tmp_path: Path) -> None:
    """`512Mb` and `2GB` pass a bare string schema; here each of them is refused before anything renders."""
    bad: dict[str, Any] = {}
    paths = _quantity_paths()
    for index, path in enumerate(paths):
        _set(bad, path, "512Mb" if index % 2 else "2GB")
    values = tmp_path / "bad-quantities.yaml"
    values.write_text(yaml.safe_dump(bad))
    result = run_helm(
        ["template", "floe", str(CHART), "--namespace", "floe", "--values", str(values), *WITHOUT_CLUSTER]
    )
    assert result.returncode != 0
    assert result.stdout == ""
    missing = [path for path in paths if f"at '/{'/'.join(path)}'" not in result.stderr]
    assert missing == [], result.stderr

"""The chart's README (what `helm show readme` shows) stays true: its example values file installs, and its
object list is exactly what the default install creates (real helm v4 renders; no cluster). Its values
reference table is checked for staleness with the other generated files (tests/codegen), and here for a
described row for every key of values.schema.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from chart_render import CHART, Rendered, render

INSTALL_DOC = CHART / "README.md"


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def test_example_local_values_install_a_valid_platform(tmp_path: Path) -> None:
    example = _between(INSTALL_DOC.read_text(), "<!-- example: local-values.yaml -->\n```yaml\n", "```")
    values_file = tmp_path / "local-values.yaml"
    values_file.write_text(example)
    release = render([values_file])
    for doc in release.docs:
        if doc["kind"] != "FloePlatform":
            kubernetes_validate.validate(doc, "1.37.0", strict=True)
    crd = yaml.safe_load((CHART / "crds" / "floeplatforms.floe.dev.yaml").read_text())
    (platform,) = release.of_kind("FloePlatform")
    jsonschema.validate(platform, crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    assert sorted(platform["spec"]["infrastructure"]["resource_profiles"]) == ["default", "transform"]
    assert release.dagster_yaml()["compute_logs"]["config"]["bucket"] == "dagster-compute-logs"


def _documented_objects() -> set[tuple[str, str]]:
    table = _between(INSTALL_DOC.read_text(), "## What the default install creates", "Optional:")
    objects = set()
    for row in re.findall(r"^\| ([A-Za-z ,]+?)(?: \([^)]*\))? \| `([^`]+)` \|", table, flags=re.MULTILINE):
        kinds, name = row
        objects |= {(kind.strip(), name) for kind in kinds.split(",")}
    return objects


def test_documented_objects_are_exactly_the_default_install(default_release: Rendered) -> None:
    rendered = {(doc["kind"], doc["metadata"]["name"]) for doc in default_release.docs}
    assert _documented_objects() == rendered


def _reference_rows() -> dict[str, tuple[str, str]]:
    """The values reference table: key -> (default cell, description)."""
    table = _between(
        INSTALL_DOC.read_text(), "<!-- values-reference:start -->", "<!-- values-reference:end -->"
    )
    rows = {}
    for line in table.splitlines():
        match = re.fullmatch(r"\| `([^`]+)` \| (.*?) \| (.*?) ?\|", line)
        if match:
            rows[match[1]] = (match[2], match[3].strip())
    return rows


def _schema_keys(schema: dict[str, object], root: dict[str, object], prefix: str) -> set[str]:
    """Every key path of the values schema: `a.b`, list items as `a[].b`, a union's object form as `a.b`."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        schema = root["$defs"][name]  # type: ignore[index]
    keys: set[str] = set()
    for option in schema.get("anyOf", []):  # type: ignore[attr-defined]
        keys |= _schema_keys(option, root, prefix)
    if isinstance(schema.get("items"), dict):
        keys |= _schema_keys(schema["items"], root, f"{prefix}[]")  # type: ignore[arg-type]
    for key, child in (schema.get("properties") or {}).items():  # type: ignore[attr-defined]
        path = f"{prefix}.{key}" if prefix else key
        keys.add(path)
        keys |= _schema_keys(child, root, path)
    return keys


# Not in the table, with the reason.
NOT_IN_TABLE = {
    "global": "Helm's own key for values shared with subcharts; the chart reads nothing from it",
    "platform.": "platform.yaml's own keys, documented in docs/platform-yaml.md",
}


def test_the_values_table_has_a_described_row_for_every_key_of_the_schema() -> None:
    """Every key of values.schema.json has a row (a list item's keys as `key[].field`), or sits inside a row
    that stands for a whole object (an image, resources, a probe: shown as its default, or null for "take
    userCode's"); no row has an empty description."""
    rows = _reference_rows()
    empty = sorted(key for key, (_default, description) in rows.items() if not description)
    assert empty == []
    schema = json.loads((CHART / "values.schema.json").read_text())
    # Rows that stand for a whole object: shown as its default, or null meaning another key's object.
    object_rows = {
        key for key, (default, _) in rows.items() if default.startswith("`{") or default == "`null`"
    }
    missing = []
    for key in sorted(_schema_keys(schema, schema, "")):
        if key in rows or any(key.startswith(exempt) or key == exempt for exempt in NOT_IN_TABLE):
            continue
        inside_a_row = any(key.startswith(f"{row}.") for row in object_rows)
        parent_of_rows = any(row.startswith((f"{key}.", f"{key}[].")) for row in rows)
        if not (inside_a_row or parent_of_rows):
            missing.append(key)
    assert missing == []
    assert len(rows) > 150

"""The chart's README (what `helm show readme` shows) stays true: its example values file installs, and its
object list is exactly what the default install creates (real helm v4 renders; no cluster). Its values
reference table is checked with the other generated files (tests/codegen)."""

from __future__ import annotations

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

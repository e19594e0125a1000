"""Regenerate every file generated from the models (`make schemas`); tests fail when one is stale."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from floe_platform.chart_values import values_reference
from floe_platform.crd import dump_crd_yaml
from floe_platform.schema import dump_json, platform_json_schema, reference_table

ROOT = Path(__file__).resolve().parent.parent


def update_readme_table() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(r"(<!-- reference:start -->\n).*?(<!-- reference:end -->)", re.DOTALL)
    readme.write_text(pattern.sub(lambda m: m.group(1) + reference_table() + m.group(2), text))


def update_readme_values_reference() -> None:
    readme = ROOT / "README.md"
    defaults = yaml.safe_load((ROOT / "charts/floe-platform/values.yaml").read_text())
    pattern = re.compile(r"(<!-- values-reference:start -->\n).*?(<!-- values-reference:end -->)", re.DOTALL)
    table = values_reference(defaults).rstrip("\n") + "\n"
    readme.write_text(pattern.sub(lambda m: m.group(1) + table + m.group(2), readme.read_text()))


def main() -> None:
    (ROOT / "platform-config/platform.schema.json").write_text(dump_json(platform_json_schema()))
    update_readme_table()
    update_readme_values_reference()
    (ROOT / "charts/floe-platform/crds/floeplatforms.floe.dev.yaml").write_text(dump_crd_yaml())


if __name__ == "__main__":
    main()

"""Files generated from the models are committed up to date (regenerate with `make schemas`)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from floe_platform.codegen.outputs import ROOT, generated_files

GENERATED = generated_files()


@pytest.mark.parametrize("path", sorted(GENERATED), ids=lambda path: str(path.relative_to(ROOT)))
def test_generated_file_is_up_to_date(path: Path) -> None:
    assert path.read_text(encoding="utf-8") == GENERATED[path], "stale: run `make schemas` and commit"


def test_example_platforms_validate_against_the_json_schema() -> None:
    schema = json.loads((ROOT / "platform-config/platform.schema.json").read_text())
    for path in sorted((ROOT / "platform-config/platform").glob("*/platform.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_package_version_chart_app_version_and_run_image_tag_agree() -> None:
    from importlib.metadata import version

    import floe_platform
    from floe_platform.render.podtemplate import RUN_IMAGE

    chart = yaml.safe_load((ROOT / "charts/floe-platform/Chart.yaml").read_text())
    assert floe_platform.__version__ == version("floe-platform") == chart["appVersion"]
    assert RUN_IMAGE.endswith(f":{chart['appVersion']}")

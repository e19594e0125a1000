"""Files generated from the models are committed up to date, and the pure core stays pure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from floe_platform.schema import dump_json, platform_json_schema, reference_table

ROOT = Path(__file__).resolve().parents[2]


def test_committed_platform_schema_is_up_to_date() -> None:
    committed = (ROOT / "platform-config/platform.schema.json").read_text()
    assert committed == dump_json(platform_json_schema()), "run `make schemas` and commit the result"


def test_example_platforms_validate_against_the_json_schema() -> None:
    schema = json.loads((ROOT / "platform-config/platform.schema.json").read_text())
    for path in sorted((ROOT / "platform-config/platform").glob("*/platform.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_pure_core_and_cli_import_no_kubernetes_client_kopf_or_dagster() -> None:
    """The pure core is plain functions over plain data, checked in a fresh interpreter: config, render,
    the schemas, the CRD, and the CLI (which imports kopf and the client lazily, in `floe operator`)."""
    probe = (
        "import sys, floe_platform.config, floe_platform.render, floe_platform.schema, floe_platform.cli;"
        "from floe_platform.crd import dump_crd_yaml; dump_crd_yaml();"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'kubernetes', 'kopf', 'dagster', 'duckdb'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_readme_reference_table_is_generated_from_the_models() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- reference:start -->\n", 1)[1].split("<!-- reference:end -->", 1)[0]
    assert table == reference_table(), "regenerate the README table with `make schemas`"


def test_package_version_chart_app_version_and_run_image_tag_agree() -> None:
    from importlib.metadata import version

    import floe_platform
    from floe_platform.render.podtemplate import RUN_IMAGE

    chart = yaml.safe_load((ROOT / "charts/floe-platform/Chart.yaml").read_text())
    assert floe_platform.__version__ == version("floe-platform") == chart["appVersion"]
    assert RUN_IMAGE.endswith(f":{chart['appVersion']}")

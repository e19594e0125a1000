"""values.schema.json: generated from the pydantic models, strict, and enforced by the real helm v4.

`helm template` validates the merged values against the chart's schema before rendering; these tests
feed it bad values and check that the message names the key. Messages from `fail` in the templates
(cross-field rules the schema cannot express) are checked the same way.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chart_render import CHART, ROOT, HelmError, render

from floe_platform.codegen.outputs import chart_values_module
from floe_platform.codegen.platform_schema import platform_json_schema

SCHEMA_FILE = CHART / "values.schema.json"
CHART_VALUES = chart_values_module()
ChartValues = CHART_VALUES.ChartValues
chart_values_schema = CHART_VALUES.chart_values_schema
THREE_PROFILES = CHART / "ci" / "three-profiles-values.yaml"


def _write_values(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_platform_key_uses_the_platform_yaml_schema() -> None:
    schema = chart_values_schema()
    platform = platform_json_schema()
    embedded = schema["$defs"]["PlatformConfig"]
    assert embedded["properties"] == platform["properties"]
    for name, definition in platform["$defs"].items():
        assert schema["$defs"][name] == definition


def test_every_object_level_refuses_unknown_keys() -> None:
    """additionalProperties: false wherever the schema lists properties (cert-manager's convention)."""
    schema = chart_values_schema()
    for name, definition in [("(root)", schema), *schema["$defs"].items()]:
        if "properties" in definition:
            assert definition.get("additionalProperties") is False, name


def test_values_yaml_satisfies_the_schema_and_the_models() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(values, chart_values_schema())
    ChartValues.model_validate(values)


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("webserver.replicass=2", r"at '/webserver': additional properties 'replicass' not allowed"),
        ("operator.image.tag=latest", r"at '/operator/image/tag'"),
        ("localstack.image.pullPolicy=Sometimes", r"at '/localstack/image/pullPolicy'"),
        ("webserver.service.type=Ingress", r"at '/webserver/service/type'"),
        ("dagster.runCoordinator.maxConcurrentRuns=many", r"at '/dagster/runCoordinator/maxConcurrentRuns'"),
        ("operator.watchNamespaces[0]=Bad_NS", r"at '/operator/watchNamespaces/0'"),
    ],
)
def test_bad_values_are_refused_naming_the_key(assignment: str, expected: str) -> None:
    """helm v4 validates values.schema.json before rendering anything."""
    with pytest.raises(HelmError, match=expected):
        render(sets=[assignment])


def test_a_typo_inside_platform_is_refused_naming_the_path(tmp_path: Path) -> None:
    values = yaml.safe_load(THREE_PROFILES.read_text())
    values["platform"]["infrastructure"]["resource_profiles"]["small"]["limits"]["memry"] = "1Gi"
    with pytest.raises(HelmError) as refused:
        render([_write_values(tmp_path, values)])
    message = str(refused.value)
    assert "/platform/infrastructure/resource_profiles/small/limits" in message
    assert "'memry' not allowed" in message


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"postgresql": {"enabled": False}, "externalPostgresql": {"host": "db"}},
            "externalPostgresql.existingSecret is required when postgresql.enabled is false",
        ),
        (
            {"postgresql": {"enabled": False}, "externalPostgresql": {"existingSecret": "db"}},
            "externalPostgresql.host is required when postgresql.enabled is false",
        ),
        (
            {"localstack": {"enabled": False}},
            'platform.observability.compute_logs.storage_ref: "default" is the built-in S3, but '
            "localstack.enabled is false",
        ),
        (
            {
                "platform": {
                    "infrastructure": {
                        "resource_profiles": {
                            "default": {
                                "requests": {"cpu": 1, "memory": "1Gi"},
                                "limits": {"cpu": 1, "memory": "1Gi"},
                            }
                        }
                    },
                    "observability": {"compute_logs": {"storage_ref": "lake"}},
                }
            },
            'platform.observability.compute_logs.storage_ref: "lake" is not a storage defined under storage '
            "(defined: none); add it there or use 'default' for the built-in S3",
        ),
        (
            {"namespaceLimits": {"enabled": True}},
            "namespaceLimits.enabled: the limits are derived from the profiles, so set platform",
        ),
    ],
)
def test_inconsistent_values_fail_with_the_key_and_the_fix(
    tmp_path: Path, values: dict[str, Any], expected: str
) -> None:
    with pytest.raises(HelmError, match=re.escape(expected)):
        render([_write_values(tmp_path, values)])


def test_unknown_default_profile_names_the_profiles(tmp_path: Path) -> None:
    values = yaml.safe_load(THREE_PROFILES.read_text())
    values["dagster"]["runLauncher"]["defaultProfile"] = "huge"
    with pytest.raises(
        HelmError, match=re.escape('dagster.runLauncher.defaultProfile: "huge" is not a profile')
    ):
        render([_write_values(tmp_path, values)])


def test_chart_versions_follow_the_project_and_its_lock() -> None:
    """appVersion = version = pyproject's version; the Dagster annotation = uv.lock's dagster."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == chart["version"] == project
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    dagster = next(package["version"] for package in lock["package"] if package["name"] == "dagster")
    assert chart["annotations"]["floe.dev/dagster-version"] == dagster


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text()))

"""The FloePlatform CRD: generated from the models, committed up to date, structural, and it accepts exactly
the specs `floe cr` writes. Runs the real `floe` CLI, kubernetes-validate (Kubernetes 1.37's OpenAPI) and
jsonschema. What no test here can show: the API server's own structural-schema and CEL checks (compile and
cost); the kind e2e applies the CRD to a real API server for that."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from floe_platform.cli import main
from floe_platform.codegen.crd import floe_platform_crd
from floe_platform.config import load_platform, parse_platform
from testkit.crd_schema import cr_schema

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "charts/floe-platform/crds/floeplatforms.floe.dev.yaml"
EXAMPLES = sorted((ROOT / "platform-config/platform").glob("*/platform.yaml"))
# Every keyword apiextensions/v1 accepts in a schema node that this CRD may use.
ALLOWED_KEYWORDS = {
    "type",
    "description",
    "properties",
    "additionalProperties",
    "items",
    "required",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "minItems",
    "maxItems",
    "format",
    "nullable",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",  # a profile's affinity and spread constraints, verbatim
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}


def floe_cr(path: Path, name: str = "demo") -> dict[str, Any]:
    result = CliRunner().invoke(main, ["cr", str(path), "--name", name, "--namespace", "floe"])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = yaml.safe_load(result.output)
    return document


def schema_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from schema_nodes(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_nodes(node["additionalProperties"], f"{path}.<name>")
    if isinstance(node.get("items"), dict):
        yield from schema_nodes(node["items"], f"{path}[]")


def openapi_schema() -> dict[str, Any]:
    schema: dict[str, Any] = floe_platform_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_crd_is_a_valid_apiextensions_v1_object() -> None:
    kubernetes_validate.validate(yaml.safe_load(CRD_FILE.read_text()), "1.37", strict=True)


def test_crd_names_match_the_contract() -> None:
    crd = floe_platform_crd()
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == "floeplatforms.floe.dev"
    assert (crd["spec"]["group"], crd["spec"]["scope"]) == ("floe.dev", "Namespaced")
    assert (names["kind"], names["plural"], names["shortNames"]) == ("FloePlatform", "floeplatforms", ["fp"])
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns == {
        "Profiles": ".status.profileNames",
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Reason": '.status.conditions[?(@.type=="Ready")].reason',
        "Age": ".metadata.creationTimestamp",
    }


def test_schema_is_structural() -> None:
    """Every node has a type (or is int-or-string), no $ref or type unions, only supported keywords."""
    for path, node in schema_nodes(openapi_schema()):
        unknown = set(node) - ALLOWED_KEYWORDS
        assert not unknown, f"{path}: unsupported keywords {unknown}"
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node
            assert node.get("anyOf", [{"type": "integer"}, {"type": "string"}]) == [
                {"type": "integer"},
                {"type": "string"},
            ]
            continue
        assert "anyOf" not in node, path
        assert node.get("type") in {"object", "array", "string", "integer", "boolean", "number"}, path
        assert not ("properties" in node and "additionalProperties" in node), path


def test_every_spec_field_has_a_description_for_kubectl_explain() -> None:
    spec = openapi_schema()["properties"]["spec"]
    missing = [path for path, node in schema_nodes(spec) if not node.get("description")]
    # Map values and list items are explained by their parent field.
    assert [path for path in missing if not path.endswith(("<name>", "[]"))] == []
    infrastructure = spec["properties"]["infrastructure"]
    assert infrastructure["description"] == "Where and how Dagster runs execute."
    compute_logs = spec["properties"]["observability"]["properties"]["compute_logs"]
    retention = compute_logs["properties"]["retention_days"]
    assert "Default: 30." in retention["description"]


def test_cel_rules_guard_requests_within_limits_and_names() -> None:
    """CEL cannot be evaluated here; this pins which rules exist and that what they read is bounded."""
    spec = openapi_schema()["properties"]["spec"]
    profiles = spec["properties"]["infrastructure"]["properties"]["resource_profiles"]
    profile_rules = [rule["rule"] for rule in profiles["additionalProperties"]["x-kubernetes-validations"]]
    assert any("quantity(string(self.requests.memory)).compareTo" in rule for rule in profile_rules)
    assert any("quantity(string(self.requests.cpu)).compareTo" in rule for rule in profile_rules)
    assert "name.matches(" in profiles["x-kubernetes-validations"][0]["rule"]
    assert profiles["maxProperties"] > 0
    cpu = profiles["additionalProperties"]["properties"]["limits"]["properties"]["cpu"]
    assert cpu["maxLength"] > 0


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.parent.name)
def test_floe_cr_output_validates_against_the_crd_schema(example: Path) -> None:
    jsonschema.validate(floe_cr(example), cr_schema(floe_platform_crd()))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.parent.name)
def test_floe_cr_spec_parses_back_to_the_same_platform_config(example: Path) -> None:
    """Round trip: platform.yaml -> `floe cr` -> spec -> the same models -> equal config."""
    spec = floe_cr(example)["spec"]
    assert parse_platform(spec, prefix=("spec",)) == load_platform(example)


def test_operator_written_status_validates_against_the_crd_schema() -> None:
    from floe_platform.controller.plan import ProfileTemplate
    from floe_platform.controller.status import invalid_spec_status, reconciled_status

    resource = floe_cr(EXAMPLES[0])
    ready = reconciled_status(None, 1, [ProfileTemplate("transform", "demo-transform", "0123abcd")], "now")
    ready["conditions"][0]["lastTransitionTime"] = "2026-11-25T20:00:00Z"
    ready["conditions"][1]["lastTransitionTime"] = "2026-11-25T20:00:00Z"
    invalid = invalid_spec_status(ready, 2, ["spec.infrastructure: required field is missing"], "now")
    for status in (ready, invalid):
        jsonschema.validate({**resource, "status": status}, cr_schema(floe_platform_crd()))


def _broken(change: str) -> dict[str, Any]:
    resource = copy.deepcopy(floe_cr(EXAMPLES[0]))
    profile = resource["spec"]["infrastructure"]["resource_profiles"]["transform"]
    if change == "memory-typo":
        profile["limits"]["memory"] = "12Gb"
    elif change == "unknown-field":
        profile["limit"] = profile.pop("limits")
    elif change == "float-cpu":
        profile["limits"]["cpu"] = 0.5
    elif change == "no-profiles":
        resource["spec"]["infrastructure"]["resource_profiles"] = {}
    elif change == "retention":
        resource["spec"]["observability"]["compute_logs"]["retention_days"] = 400
    return resource


@pytest.mark.parametrize("change", ["memory-typo", "unknown-field", "float-cpu", "no-profiles", "retention"])
def test_crd_schema_rejects_what_the_models_reject(change: str) -> None:
    resource = _broken(change)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(resource, cr_schema(floe_platform_crd()))
    if change != "float-cpu":  # the models accept cpu: 0.5; the API server wants a quantity string
        with pytest.raises(Exception, match="spec"):
            parse_platform(resource["spec"], prefix=("spec",))


@pytest.mark.parametrize("arguments", [[], ["--namespace", "floe", "--all-namespaces"]])
def test_floe_operator_needs_exactly_one_of_namespace_or_all_namespaces(arguments: list[str]) -> None:
    result = CliRunner().invoke(main, ["operator", *arguments])
    assert result.exit_code == 1
    assert "give --namespace NS (repeatable) or --all-namespaces" in result.output

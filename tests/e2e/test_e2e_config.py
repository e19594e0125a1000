"""The kind suite's inputs are right before any cluster exists; these run everywhere, in `make test`.

Real components: helm v4 renders the chart with ``values-e2e.yaml``, the platform.yaml models load the e2e
platform, Dagster's own GraphQL schema validates the suite's query, hadolint checks the e2e layer, and
the prerequisite check runs against stand-in ``docker`` executables (what a real engine says is not shown).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from dagster_api import RUN_MESSAGES_QUERY
from deployment import (
    CHART,
    DEFAULT_CLUSTER,
    E2E_IMAGE_CONTEXT,
    E2E_USER_CODE_IMAGE,
    KIND_CONFIG,
    NAMESPACE,
    PLATFORM_FILE,
    PLATFORM_NAME,
    RELEASE,
    VALUES_FILE,
    images,
    project_version,
)
from prerequisites import NO_DOCKER, NO_KIND, missing_prerequisites, skip_reason
from test_kind_e2e import DEMO_PROFILE, OOM_MEBIBYTES, OOM_PROFILE, differences, normalized

from floe_platform.config import ComputeLogs, load_platform
from floe_platform.render import render_pod_template
from testkit.hadolint import hadolint_problems
from testkit.helm import WITHOUT_CLUSTER

ROOT = Path(__file__).resolve().parents[2]
HELM = shutil.which("helm") or str(ROOT / ".tools/bin/helm")


def fake_tools(
    directory: Path, docker_exit: int, names: tuple[str, ...] = ("docker", "kind", "helm", "kubectl")
) -> str:
    directory.mkdir(exist_ok=True)
    for name in names:
        script = directory / name
        body = (
            f"echo 'Cannot connect to the Docker daemon' >&2; exit {docker_exit}"
            if name == "docker"
            else "exit 0"
        )
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    return str(directory)


def test_prerequisites_name_every_missing_piece(tmp_path: Path) -> None:
    problems = missing_prerequisites(path=str(tmp_path))
    assert problems[:2] == [NO_DOCKER, NO_KIND]
    assert "make e2e" in skip_reason(problems)


def test_prerequisites_report_a_docker_cli_without_an_engine(tmp_path: Path) -> None:
    problems = missing_prerequisites(path=fake_tools(tmp_path / "bin", docker_exit=1))
    assert len(problems) == 1
    assert "`docker info` failed: Cannot connect to the Docker daemon" in problems[0]


def test_prerequisites_pass_with_an_engine_and_all_tools(tmp_path: Path) -> None:
    assert missing_prerequisites(path=fake_tools(tmp_path / "bin", docker_exit=0)) == []


def test_kind_config_names_the_suites_cluster() -> None:
    config = yaml.safe_load(KIND_CONFIG.read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert config["name"] == DEFAULT_CLUSTER


def test_image_tags_are_the_charts_app_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == project_version()
    assert {image.rsplit(":", 1)[1] for image in images()} == {project_version()}


def rendered_chart() -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            HELM,
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--values",
            str(VALUES_FILE),
            *WITHOUT_CLUSTER,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def pod_specs(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    specs = {}
    for document in documents:
        spec = document.get("spec", {})
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
        if template:
            specs[f"{document['kind']}/{document['metadata']['name']}"] = template["spec"]
        elif document["kind"] == "Pod":
            specs[f"Pod/{document['metadata']['name']}"] = spec
    return specs


def test_e2e_values_run_only_the_images_the_suite_loads_into_kind() -> None:
    """helm v4 renders the chart with the e2e values: our images are never pulled, the code server serves
    the e2e layer, and runs use its image."""
    documents = rendered_chart()
    built = set(images())
    ours = 0
    for name, spec in pod_specs(documents).items():
        for container in spec["containers"]:
            if container["image"].startswith("floe-platform/"):
                ours += 1
                assert container["image"] in built, name
                assert container.get("imagePullPolicy") == "Never", name
    assert ours >= 4  # webserver, daemon, code server, operator
    user_code = [
        spec for name, spec in pod_specs(documents).items() if "user-code" in name and "Deployment" in name
    ]
    command = user_code[0]["containers"][0]["command"]
    assert command[command.index("-m") + 1] == "floe_e2e.definitions"
    instance = next(d for d in documents if d["kind"] == "ConfigMap" and "dagster.yaml" in d.get("data", {}))
    launcher = yaml.safe_load(instance["data"]["dagster.yaml"])["run_launcher"]["config"]
    assert launcher["platform_name"] == PLATFORM_NAME
    assert launcher["job_image"] == f"{E2E_USER_CODE_IMAGE}:{project_version()}"


def test_e2e_platform_has_the_profiles_the_suite_uses() -> None:
    config = load_platform(PLATFORM_FILE)
    profiles = config.infrastructure.resource_profiles
    assert {"default", DEMO_PROFILE, OOM_PROFILE} <= profiles.keys()
    assert 2 * profiles[OOM_PROFILE].limits.memory_bytes() < OOM_MEBIBYTES * 1024**2
    # With platform: null the chart uses platform.yaml's compute-log defaults; the suite checks those.
    assert config.observability.compute_logs == ComputeLogs()


def test_run_messages_query_is_valid_for_dagsters_graphql_schema() -> None:
    from dagster_graphql.schema import create_schema
    from graphql import parse, validate

    assert validate(create_schema().graphql_schema, parse(RUN_MESSAGES_QUERY)) == []


def test_e2e_layer_dockerfile_is_hadolint_clean() -> None:
    assert hadolint_problems(E2E_IMAGE_CONTEXT / "Dockerfile") is None


def test_template_comparison_ignores_server_defaults_and_catches_drift() -> None:
    """The e2e PodTemplate check on the renderer's output against a hand-made 'live' copy: the API server's
    added fields and canonical quantities ('1000m' stored as '1') pass, a changed limit does not."""
    profile = load_platform(PLATFORM_FILE).infrastructure.resource_profiles[DEMO_PROFILE]
    rendered = render_pod_template(PLATFORM_NAME, DEMO_PROFILE, profile, NAMESPACE)
    live = copy.deepcopy(rendered)
    live["metadata"] |= {"uid": "0b7c", "resourceVersion": "42", "ownerReferences": []}
    container = live["template"]["spec"]["containers"][0]
    container |= {"terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}
    container["resources"]["requests"]["cpu"] = "0.25"
    assert differences(normalized(rendered), normalized(live)) == []
    container["resources"]["limits"]["memory"] = "7Gi"
    assert differences(normalized(rendered), normalized(live)) == [
        ".template.spec.containers[0].resources.limits.memory: expected Decimal('3221225472'), "
        "found Decimal('7516192768')"
    ]

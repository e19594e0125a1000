"""The `floe` command, run as a subprocess exactly as users run it (no cluster needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from floe_platform.config import PlatformConfig, load_platform
from floe_platform.render import render_pod_templates

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "platform-config/platform/local/platform.yaml"
PRODUCTION = ROOT / "platform-config/platform/production/platform.yaml"
BAD_INPUTS = sorted((Path(__file__).parent / "bad_inputs").glob("*.yaml"))
FLOE = [sys.executable, "-m", "floe_platform.cli"]


def floe(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLOE, *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


def test_validate_prints_a_one_line_summary_and_exits_0() -> None:
    result = floe("validate", LOCAL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert "valid; 2 profile(s) (transform, small), compute logs s3" in result.stdout


def test_render_writes_the_renderers_pod_templates_as_yaml() -> None:
    result = floe("render", PRODUCTION, "--name", "acme", "--namespace", "data")
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert documents == render_pod_templates(load_platform(PRODUCTION), "acme", "data")
    assert [d["metadata"]["name"] for d in documents] == [
        "acme-default",
        "acme-transform",
        "acme-ingest",
        "acme-small",
    ]


def test_render_one_profile_only() -> None:
    result = floe("render", PRODUCTION, "--profile", "ingest")
    documents = list(yaml.safe_load_all(result.stdout))
    assert [d["metadata"]["name"] for d in documents] == ["floe-prod-ingest"]


def test_render_unknown_profile_lists_the_known_ones() -> None:
    result = floe("render", LOCAL, "--profile", "huge")
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"--profile: 'huge' is not a profile in {LOCAL} (profiles: transform, small)"
    )


def test_cr_wraps_the_file_and_round_trips_to_the_same_config() -> None:
    result = floe("cr", PRODUCTION, "--name", "prod", "--namespace", "data")
    assert result.returncode == 0, result.stderr
    resource = yaml.safe_load(result.stdout)
    assert resource["apiVersion"] == "floe.dev/v1alpha1"
    assert resource["kind"] == "FloePlatform"
    assert resource["metadata"] == {"name": "prod", "namespace": "data"}
    assert PlatformConfig.model_validate(resource["spec"]) == load_platform(PRODUCTION)


def test_cr_name_defaults_to_the_platform_name_as_floe_render_uses_it() -> None:
    resource = yaml.safe_load(floe("cr", PRODUCTION).stdout)
    (first, *_) = yaml.safe_load_all(floe("render", PRODUCTION).stdout)
    assert resource["metadata"] == {"name": "floe-prod"}
    assert first["metadata"]["name"] == "floe-prod-default"


def test_missing_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = floe("validate", tmp_path / "nope.yaml")
    assert result.returncode == 1
    assert result.stderr.strip() == "nope.yaml: cannot read the file: No such file or directory".replace(
        "nope.yaml", str(tmp_path / "nope.yaml")
    )


def test_bad_input_corpus_has_at_least_30_cases() -> None:
    assert len(BAD_INPUTS) >= 30


@pytest.mark.parametrize("path", BAD_INPUTS, ids=[path.stem for path in BAD_INPUTS])
def test_bad_input_is_rejected_with_its_field_path_and_no_traceback(path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    result = floe("validate", path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert any(line.startswith(expected) for line in result.stderr.splitlines()), result.stderr


def test_file_that_is_not_utf8_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "platform.yaml"
    path.write_bytes(b"\xff\xfe\x00infrastructure")
    result = floe("validate", path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"{path}: cannot read the file: it is not UTF-8 text"


def test_the_cli_loads_no_kubernetes_client_kopf_or_dagster_until_the_operator_starts() -> None:
    """`floe validate` and `floe render` stay fast and run without the operator's or Dagster's packages:
    kopf and the client load only inside `floe operator`. Checked in a fresh interpreter."""
    probe = (
        "import sys, floe_platform.cli;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'kubernetes', 'kopf', 'dagster', 'duckdb'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _without_cluster(tmp_path: Path, kubeconfig: Path) -> dict[str, str]:
    """The environment of a machine with no cluster: no in-cluster service account, an empty HOME."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KUBERNETES_SERVICE")}
    (tmp_path / "home").mkdir(exist_ok=True)
    return {**env, "HOME": str(tmp_path / "home"), "KUBECONFIG": str(kubeconfig)}


@pytest.mark.slow  # each subprocess imports kopf and the kubernetes client (about 10 s on 2 shared cores)
@pytest.mark.parametrize(
    ("command", "kubeconfig", "expected"),
    [
        (["-m", "floe_platform.cli", "operator", "-n", "floe"], "missing/config", "no kubeconfig at"),
        (["-m", "floe_platform.controller.main"], "missing/config", "no kubeconfig at"),
        (["-m", "floe_platform.cli", "operator", "-A"], "broken", "is unusable"),
        (
            ["-m", "floe_platform.cli", "delete-platforms", "-n", "x", "-l", "a=b"],
            "missing/config",
            "no kubeconfig at",
        ),
    ],
    ids=["floe-operator", "python-m-main", "broken-kubeconfig", "delete-platforms"],
)
def test_operator_without_credentials_exits_at_once_with_one_line(
    tmp_path: Path, command: list[str], kubeconfig: str, expected: str
) -> None:
    """Real subprocess, no cluster: without credentials kopf would retry the startup every minute with a
    40-line traceback and never serve /healthz; the operator says what is missing and exits 1 instead."""
    (tmp_path / "broken").write_text("clusters: [\n")
    result = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=_without_cluster(tmp_path, tmp_path / kubeconfig),
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "not in a cluster" in lines[0]
    assert "set KUBECONFIG" in lines[0]
    assert "Traceback" not in result.stderr

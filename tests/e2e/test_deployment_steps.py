"""The e2e orchestration (``deployment.py``) drives the CLIs in the documented order and always tears down.

Stand-ins: fake ``docker``, ``kind``, ``helm`` and ``kubectl`` executables that record their arguments and
answer with canned output. ``floe cr`` is the real CLI. What this cannot show: that the real tools accept
these calls against a real cluster (that is ``make e2e-kind``'s job); it shows the sequence, the files each
step uses, the FloePlatform handed to kubectl, and teardown on success, on failure and with KEEP_CLUSTER.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from deployment import (
    KIND_CONFIG,
    NAMESPACE,
    PLATFORM_NAME,
    VALUES_FILE,
    Deployment,
    deploy,
    images,
)

pytestmark = pytest.mark.slow  # each step runs the deploy script with stand-in tools

FAKE_TOOL = """#!{python}
import json, os, sys, time
tool = os.path.basename(sys.argv[0])
args = sys.argv[1:]
stdin = sys.stdin.read() if tool == "kubectl" and "apply" in args else ""
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({{"tool": tool, "args": args, "stdin": stdin}}) + "\\n")
line = " ".join([tool, *args])
for prefix, (output, code) in json.loads(os.environ["FAKE_ANSWERS"]).items():
    if line.startswith(prefix) or (prefix.startswith("*") and prefix[1:] in line):
        sys.stdout.write(output)
        sys.stdout.flush()
        if "port-forward" in args:
            time.sleep(60)
        sys.exit(code)
"""

ANSWERS: dict[str, tuple[str, int]] = {
    "kind get clusters": ("", 0),
    "kind get kubeconfig": ("apiVersion: v1\nkind: Config\n", 0),
    "*get deployments": ("deployment.apps/floe-webserver\ndeployment.apps/floe-operator\n", 0),
    "*get jobs": ("", 0),
    "*get services": (json.dumps({"items": [{"metadata": {"name": "floe-webserver"}}]}), 0),
    "*port-forward": ("Forwarding from 127.0.0.1:43127 -> 3000\n", 0),
}


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "kind", "helm", "kubectl"):
        script = bin_dir / name
        script.write_text(FAKE_TOOL.format(python=sys.executable))
        script.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_ANSWERS", json.dumps(ANSWERS))
    monkeypatch.delenv("KEEP_CLUSTER", raising=False)
    return log


def calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def commands(log: Path) -> list[str]:
    return [" ".join([str(call["tool"]), *call["args"]]) for call in calls(log)]


def test_deploy_runs_cluster_images_chart_platform_then_deletes_the_cluster(fake_tools: Path) -> None:
    with deploy() as deployment:
        assert deployment.namespace == NAMESPACE
    steps = commands(fake_tools)
    create = next(step for step in steps if step.startswith("kind create cluster"))
    assert f"--config {KIND_CONFIG}" in create
    builds = [step for step in steps if step.startswith("docker build")]
    loads = [step for step in steps if step.startswith("kind load docker-image")]
    assert [build.split("--tag ")[1].split()[0] for build in builds] == list(images())
    assert [load.split()[3] for load in loads] == list(images())
    helm = next(step for step in steps if step.startswith("helm upgrade --install"))
    assert f"--values {VALUES_FILE}" in helm
    assert "--wait" in helm
    assert "--wait-for-jobs" in helm
    order = [
        steps.index(create),
        steps.index(builds[-1]),
        steps.index(loads[-1]),
        steps.index(helm),
        next(i for i, step in enumerate(steps) if "rollout status deployment.apps/floe-webserver" in step),
        next(i for i, step in enumerate(steps) if "apply --filename -" in step),
        next(
            i for i, step in enumerate(steps) if f"--for=condition=Ready floeplatform/{PLATFORM_NAME}" in step
        ),
        steps.index("kind delete cluster --name floe-e2e"),
    ]
    assert order == sorted(order)


def test_the_floeplatform_applied_is_floe_cr_of_the_e2e_platform(fake_tools: Path) -> None:
    with deploy():
        pass
    applied = next(call for call in calls(fake_tools) if "apply" in call["args"])
    resource = yaml.safe_load(str(applied["stdin"]))
    assert (resource["kind"], resource["metadata"]["name"]) == ("FloePlatform", PLATFORM_NAME)
    assert set(resource["spec"]["infrastructure"]["resource_profiles"]) == {
        "default",
        "transform",
        "tiny",
        "small",
    }


def test_failed_install_still_deletes_the_cluster(fake_tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_ANSWERS", json.dumps(ANSWERS | {"helm upgrade": ("boom", 1)}))
    with pytest.raises(RuntimeError, match="helm upgrade"), deploy():
        pytest.fail("deploy() yielded after a failed install")
    assert commands(fake_tools)[-1] == "kind delete cluster --name floe-e2e"


def test_keep_cluster_skips_teardown_and_a_reused_cluster_is_restarted(
    fake_tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEP_CLUSTER", "1")
    monkeypatch.setenv("FAKE_ANSWERS", json.dumps(ANSWERS | {"kind get clusters": ("floe-e2e\n", 0)}))
    with deploy():
        pass
    steps = commands(fake_tools)
    assert not any(step.startswith(("kind delete", "kind create")) for step in steps)
    assert any("rollout restart deployment" in step for step in steps)


def test_port_forward_yields_the_local_port_and_stops_kubectl(fake_tools: Path, tmp_path: Path) -> None:
    deployment = Deployment(tmp_path / "kubeconfig")
    with deployment.port_forward("webserver", 3000) as port:
        assert port == 43127
    forward = next(call for call in calls(fake_tools) if "port-forward" in call["args"])
    assert forward["args"][-2:] == ["service/floe-webserver", ":3000"]

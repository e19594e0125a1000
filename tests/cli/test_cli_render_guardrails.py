"""`floe render` writes the namespace guardrails too when namespace_limits is enabled (a subprocess, as users
run it), each valid against Kubernetes' own OpenAPI (``kubernetes-validate --strict``, 1.37)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

from floe_platform.config import load_platform
from floe_platform.render import render_guardrails

PLATFORM = """
infrastructure:
  resource_profiles:
    small: {requests: {cpu: 250m, memory: 512Mi}, limits: {cpu: "1", memory: 2Gi}}
    huge: {requests: {cpu: "2", memory: 8Gi}, limits: {cpu: "16", memory: 1Ei}}
  namespace_limits:
    enabled: true
    concurrent_runs: 3
    services_headroom: {cpu: "4", memory: 8Gi}
"""


def _render(path: Path, *args: str) -> list[dict[str, object]]:
    command = [sys.executable, "-m", "floe_platform.cli", "render", str(path), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def test_render_prints_the_limit_range_and_quota_after_the_templates(tmp_path: Path) -> None:
    path = tmp_path / "platform.yaml"
    path.write_text(PLATFORM)
    documents = _render(path, "--name", "acme", "--namespace", "data")
    assert [d["kind"] for d in documents] == ["PodTemplate", "PodTemplate", "LimitRange", "ResourceQuota"]
    assert documents[2:] == render_guardrails(load_platform(path), "acme", "data")
    for document in documents[2:]:
        kubernetes_validate.validate(document, "1.37", strict=True)
    assert [d["kind"] for d in _render(path, "--profile", "small")] == ["PodTemplate"]

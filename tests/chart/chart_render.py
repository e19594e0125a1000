"""Run the real helm v4 binary over charts/floe-platform and read its output as Kubernetes objects."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testkit.helm import WITHOUT_CLUSTER

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "floe-platform"
CI_DIR = CHART / "ci"
CI_NAMES = sorted(path.name.removesuffix("-values.yaml") for path in CI_DIR.glob("*-values.yaml"))
RELEASE = "floe"
KUBE_VERSION = "1.37.0"  # the version kubernetes-validate checks against
NAMESPACE = "floe"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "Pod"}


def helm_binary() -> str:
    """helm from PATH, else the one `make install` puts in .tools/bin."""
    found = shutil.which("helm") or str(ROOT / ".tools" / "bin" / "helm")
    if not Path(found).exists():
        raise FileNotFoundError("helm v4 not found on PATH or in .tools/bin; run `make install`")
    return found


def run_helm(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, check=False, timeout=120)


def release_name(values_file: Path) -> str:
    """The release a ci/ file is meant for: its first line `# release: <name>`, else RELEASE."""
    first = values_file.read_text().split("\n", 1)[0]
    return first.removeprefix("# release:").strip() if first.startswith("# release:") else RELEASE


def template_args(
    values_files: Sequence[Path] = (),
    sets: Sequence[str] = (),
    release: str = RELEASE,
    gitops_guard: bool = False,
) -> list[str]:
    """`helm template` arguments. Without ``gitops_guard`` the render opts out of the chart's refusal to
    generate a PostgreSQL password without a cluster (testkit/helm.py); the values files may still set it."""
    args = [
        "template",
        release,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--include-crds",
        "--kube-version",
        KUBE_VERSION,
    ]
    if not gitops_guard:
        args += WITHOUT_CLUSTER
    for path in values_files:
        args += ["--values", str(path)]
    for assignment in sets:
        args += ["--set", assignment]
    return args


def render(
    values_files: Sequence[Path] = (),
    sets: Sequence[str] = (),
    release: str = RELEASE,
    gitops_guard: bool = False,
) -> Rendered:
    """`helm template` with the given values; raises with helm's message when it fails. ``gitops_guard``:
    keep the chart's guard against a generated password without a cluster (see template_args)."""
    result = run_helm(template_args(values_files, sets, release, gitops_guard))
    if result.returncode != 0:
        raise HelmError(result.stderr.strip())
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return Rendered(docs=docs, values=_merged_values(values_files), release=release)


class HelmError(Exception):
    """helm exited non-zero; the message is its stderr."""


def _merged_values(values_files: Sequence[Path]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in values_files:
        values.update(yaml.safe_load(path.read_text()) or {})
    return values


@dataclass
class Rendered:
    """The objects one `helm template` produced, the values files' own content (without defaults), and the
    release name."""

    docs: list[dict[str, Any]]
    values: dict[str, Any] = field(default_factory=dict)
    release: str = RELEASE

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def named(self, kind: str, suffix: str) -> dict[str, Any]:
        """The one object of ``kind`` whose name ends with ``-<suffix>``."""
        matches = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"].endswith(f"-{suffix}")]
        assert len(matches) == 1, f"expected one {kind} named *-{suffix}, got {len(matches)}"
        return matches[0]

    def has(self, kind: str, suffix: str) -> bool:
        return any(doc["metadata"]["name"].endswith(f"-{suffix}") for doc in self.of_kind(kind))

    def dagster_yaml(self) -> dict[str, Any]:
        instance: dict[str, Any] = yaml.safe_load(self.named("ConfigMap", "instance")["data"]["dagster.yaml"])
        return instance

    def workloads(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(object, pod spec) of every object that runs pods."""
        for doc in self.docs:
            if doc["kind"] == "Pod":
                yield doc, doc["spec"]
            elif doc["kind"] in WORKLOAD_KINDS:
                yield doc, doc["spec"]["template"]["spec"]


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}

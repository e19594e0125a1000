"""Build the e2e platform on kind with the real CLIs: cluster, images, chart, FloePlatform.

Order, as `make e2e-kind` documents it: create (or reuse) the kind cluster from ``kind-config.yaml``; build
the operator and user-code images from ``images/`` and the e2e layer from ``image/``; ``kind load`` them;
``helm upgrade --install`` the chart with ``values-e2e.yaml``; wait for every Deployment, the database and
the bucket Job; apply the FloePlatform made by ``floe cr`` and wait until ``kubectl get fp`` says Ready.
The cluster is deleted afterwards, even after a failure, unless KEEP_CLUSTER=1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prerequisites import find_tool

ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
KIND_CONFIG = E2E_DIR / "kind-config.yaml"
VALUES_FILE = E2E_DIR / "values-e2e.yaml"
PLATFORM_FILE = E2E_DIR / "platform-e2e.yaml"
E2E_IMAGE_CONTEXT = E2E_DIR / "image"
CHART = ROOT / "charts/floe-platform"

DEFAULT_CLUSTER = "floe-e2e"  # the name in kind-config.yaml
CLUSTER = os.environ.get("KIND_CLUSTER_NAME", DEFAULT_CLUSTER)
NAMESPACE = "floe-e2e"
RELEASE = "floe"
PLATFORM_NAME = "floe"  # the FloePlatform's metadata.name, which the launcher's platformName defaults to
OPERATOR_IMAGE = "floe-platform/operator"
USER_CODE_IMAGE = "floe-platform/user-code"
E2E_USER_CODE_IMAGE = "floe-platform/user-code-e2e"
HELM_TIMEOUT = "15m"
WAIT_TIMEOUT = "600s"
FORWARD_LINE = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")


def project_version() -> str:
    """The image tag: the project version, which is also the chart's appVersion."""
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def images() -> dict[str, tuple[Path, Path, dict[str, str]]]:
    """Image name:tag -> (Dockerfile, build context, build args)."""
    tag = project_version()
    return {
        f"{OPERATOR_IMAGE}:{tag}": (ROOT / "images/operator/Dockerfile", ROOT, {}),
        f"{USER_CODE_IMAGE}:{tag}": (ROOT / "images/user-code/Dockerfile", ROOT, {}),
        f"{E2E_USER_CODE_IMAGE}:{tag}": (
            E2E_IMAGE_CONTEXT / "Dockerfile",
            E2E_IMAGE_CONTEXT,
            {"USER_CODE_IMAGE": f"{USER_CODE_IMAGE}:{tag}"},
        ),
    }


def run(
    argv: Sequence[str], *, stdin: str | None = None, timeout: float = 1800, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, echoing it; raise with its output when it fails."""
    print(f"+ {shlex.join(argv)}", flush=True)
    result = subprocess.run(
        [find_tool(argv[0]) or argv[0], *argv[1:]],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else os.environ | env,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"`{shlex.join(argv)}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass(frozen=True)
class Deployment:
    """The running platform: kubectl and port-forwards against the kind cluster's namespace."""

    kubeconfig: Path
    namespace: str = NAMESPACE

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        argv = ["kubectl", "--kubeconfig", str(self.kubeconfig), "--namespace", self.namespace, *args]
        return run(argv, stdin=stdin, timeout=900).stdout

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "--output", "json"))

    def helm(self, *args: str) -> str:
        argv = ["helm", "--kubeconfig", str(self.kubeconfig), "--namespace", self.namespace, *args]
        return run(argv, timeout=1200).stdout

    def service_name(self, component: str) -> str:
        """The chart's Service for a component, found by its labels rather than a guessed name."""
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
        items = self.kubectl_json("get", "services", "--selector", selector)["items"]
        if len(items) != 1:
            raise LookupError(f"expected one Service with {selector}, found {len(items)}")
        return str(items[0]["metadata"]["name"])

    @contextmanager
    def port_forward(self, component: str, remote_port: int) -> Iterator[int]:
        """``kubectl port-forward`` to a component's Service on a free local port; stopped by pid."""
        argv = [
            "kubectl",
            "--kubeconfig",
            str(self.kubeconfig),
            "--namespace",
            self.namespace,
            "port-forward",
            f"service/{self.service_name(component)}",
            f":{remote_port}",
        ]
        process = subprocess.Popen(
            [find_tool("kubectl") or "kubectl", *argv[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert process.stdout is not None
            first_line = process.stdout.readline()
            match = FORWARD_LINE.search(first_line)
            if match is None:
                raise RuntimeError(f"kubectl port-forward to {component} did not start: {first_line!r}")
            # Keep draining its output, so that a full pipe never blocks the forward.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            yield int(match.group(1))
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # SIGTERM ignored (a disposition inherited from this process)
                process.kill()
                process.wait()


def cluster_exists() -> bool:
    return CLUSTER in run(["kind", "get", "clusters"]).stdout.split()


def ensure_cluster(kubeconfig: Path) -> bool:
    """Create the cluster unless it exists; whether an existing one is reused."""
    reused = cluster_exists()
    if reused:
        print(f"reusing kind cluster {CLUSTER}", flush=True)
    else:
        node_image = os.environ.get("KIND_NODE_IMAGE")
        run(
            [
                "kind",
                "create",
                "cluster",
                "--name",
                CLUSTER,
                "--config",
                str(KIND_CONFIG),
                "--wait",
                "180s",
                "--kubeconfig",
                str(kubeconfig),
                *(["--image", node_image] if node_image else []),
            ]
        )
    kubeconfig.write_text(run(["kind", "get", "kubeconfig", "--name", CLUSTER]).stdout)
    return reused


def build_and_load_images() -> None:
    for image, (dockerfile, context, build_args) in images().items():
        args = [item for name, value in build_args.items() for item in ("--build-arg", f"{name}={value}")]
        run(
            ["docker", "build", "--file", str(dockerfile), "--tag", image, *args, str(context)],
            env={"DOCKER_BUILDKIT": "1"},
        )
    for image in images():
        run(["kind", "load", "docker-image", image, "--name", CLUSTER])


def install_chart(kubeconfig: Path, overlays: Sequence[Path] = ()) -> None:
    """helm waits for the Deployments and the post-install hook Job that creates the bucket."""
    run(
        [
            "helm",
            "upgrade",
            "--install",
            RELEASE,
            str(CHART),
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--values",
            str(VALUES_FILE),
            *(argument for overlay in overlays for argument in ("--values", str(overlay))),
            "--wait",
            "--wait-for-jobs",
            "--timeout",
            HELM_TIMEOUT,
        ]
    )


def wait_for_workloads(deployment: Deployment, restart: bool) -> None:
    if restart:  # a reused cluster: the rebuilt images carry the same tags, so restart onto them
        deployment.kubectl("rollout", "restart", "deployment")
    for name in deployment.kubectl("get", "deployments", "--output", "name").split():
        deployment.kubectl("rollout", "status", name, f"--timeout={WAIT_TIMEOUT}")
    deployment.kubectl(
        "wait", "--for=condition=Available", "deployment", "--all", f"--timeout={WAIT_TIMEOUT}"
    )
    deployment.kubectl(
        "wait",
        "--for=jsonpath={.status.readyReplicas}=1",
        "statefulset",
        "--all",
        f"--timeout={WAIT_TIMEOUT}",
    )
    # The bucket Job (your own S3, opt-in) is a hook that helm deletes once it succeeded; wait for it while
    # it is still there. The built-in LocalStack creates its bucket itself, on every start.
    jobs = deployment.kubectl(
        "get", "jobs", "--selector", "app.kubernetes.io/component=create-bucket", "--output", "name"
    ).split()
    for job in jobs:
        deployment.kubectl("wait", "--for=condition=Complete", job, f"--timeout={WAIT_TIMEOUT}")


def apply_platform(deployment: Deployment) -> None:
    """``floe cr`` wraps the e2e platform.yaml as a FloePlatform; the operator must report it Ready."""
    resource = run(
        [
            sys.executable,
            "-m",
            "floe_platform.cli",
            "cr",
            str(PLATFORM_FILE),
            "--name",
            PLATFORM_NAME,
            "--namespace",
            NAMESPACE,
        ]
    ).stdout
    deployment.kubectl("apply", "--filename", "-", stdin=resource)
    deployment.kubectl("wait", "--for=condition=Ready", f"floeplatform/{PLATFORM_NAME}", "--timeout=300s")
    print(deployment.kubectl("get", "fp"), flush=True)


def keep_cluster() -> bool:
    return os.environ.get("KEEP_CLUSTER") == "1"


@contextmanager
def deploy() -> Iterator[Deployment]:
    """The platform on kind for the session; the cluster is deleted afterwards unless KEEP_CLUSTER=1."""
    with tempfile.TemporaryDirectory(prefix="floe-e2e-") as workdir:
        kubeconfig = Path(workdir) / "kubeconfig"
        try:
            reused = ensure_cluster(kubeconfig)
            build_and_load_images()
            install_chart(kubeconfig)
            deployment = Deployment(kubeconfig)
            wait_for_workloads(deployment, restart=reused)
            apply_platform(deployment)
            yield deployment
        finally:
            if keep_cluster():
                print(
                    f"KEEP_CLUSTER=1: kind cluster {CLUSTER} kept; `kind get kubeconfig --name {CLUSTER}`",
                    flush=True,
                )
            else:
                run(["kind", "delete", "cluster", "--name", CLUSTER])

"""P3: ``launch_run`` of ProfileK8sRunLauncher against the stock K8sRunLauncher, same run, same emulator.

One emulator holds the PodTemplates the operator would have made. Two Dagster instances (sqlite, temp
dirs) differ only in their run launcher; launches alternate between them so that noise hits both alike.
Our launcher reads the profile's PodTemplate through the API, with its default profile cache (30 s), so the
first launch pays the read and later ones the cache: both are in the figures.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import kubernetes  # type: ignore[import-untyped]

from bench.core import Check, Figure, Outcome
from floe_platform.config import parse_platform
from floe_platform.render import render_pod_templates
from testkit.emulator import EmulatedCluster, emulated_cluster

LAUNCHES = 40
NAMESPACE = "bench"
IMAGE = "floe-platform/user-code:0.1.0"
PLATFORM = {
    "platform": {"name": "bench"},
    "infrastructure": {
        "resource_profiles": {
            "small": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}}
        }
    },
}
STOCK = ("dagster_k8s", "K8sRunLauncher")
OURS = ("floe_platform.dagster.launcher", "ProfileK8sRunLauncher")


def _config(cluster: EmulatedCluster, ours: bool) -> dict[str, Any]:
    config = {
        "service_account_name": "dagster",
        "instance_config_map": "dagster-instance",
        "dagster_home": "/opt/dagster/dagster_home",
        "job_image": IMAGE,
        "job_namespace": NAMESPACE,
        "load_incluster_config": False,
        "kubeconfig_file": str(cluster.kubeconfig_path),
    }
    return config | ({"platform_name": "bench"} if ours else {})


@contextmanager
def _instance(cluster: EmulatedCluster, launcher: tuple[str, str]) -> Iterator[Any]:
    import dagster as dg

    overrides = {
        "run_launcher": {
            "module": launcher[0],
            "class": launcher[1],
            "config": _config(cluster, launcher == OURS),
        },
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        yield instance


def _launch_seconds(instance: Any) -> float:
    from dagster._core.code_pointer import FileCodePointer
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin

    from bench import p3_defs

    origin = JobPythonOrigin(
        "bench_job",
        RepositoryPythonOrigin(
            executable_path=sys.executable,
            code_pointer=FileCodePointer(p3_defs.__file__, "defs"),
            container_image=IMAGE,
            container_context={},
        ),
    )
    run = instance.create_run_for_job(
        job_def=p3_defs.defs.resolve_job_def("bench_job"), job_code_origin=origin, tags={}
    )
    started = time.perf_counter()
    instance.launch_run(run.run_id, workspace=None)
    seconds = time.perf_counter() - started
    if instance.get_run_by_id(run.run_id).is_failure:
        raise RuntimeError(f"launch failed with {type(instance.run_launcher).__name__}")
    return seconds


def measure(workdir: Path) -> tuple[list[float], list[float], int]:
    with emulated_cluster(workdir, NAMESPACE) as cluster:
        core = kubernetes.client.CoreV1Api(cluster.api_client())
        for template in render_pod_templates(parse_platform(PLATFORM), namespace=NAMESPACE):
            core.create_namespaced_pod_template(NAMESPACE, template)
        with ExitStack() as stack:
            ours_instance = stack.enter_context(_instance(cluster, OURS))
            stock_instance = stack.enter_context(_instance(cluster, STOCK))
            ours, stock = [], []
            for launch in range(LAUNCHES):  # who goes first alternates too
                if launch % 2:
                    ours.append(_launch_seconds(ours_instance))
                    stock.append(_launch_seconds(stock_instance))
                else:
                    stock.append(_launch_seconds(stock_instance))
                    ours.append(_launch_seconds(ours_instance))
        jobs = len(kubernetes.client.BatchV1Api(cluster.api_client()).list_namespaced_job(NAMESPACE).items)
    return ours, stock, jobs


def run() -> Outcome:
    with tempfile.TemporaryDirectory(prefix="floe-bench-p3-") as workdir:
        ours, stock, jobs = measure(Path(workdir))
    ours_ms, stock_ms = statistics.median(ours) * 1000, statistics.median(stock) * 1000
    ratio = ours_ms / stock_ms
    return Outcome(
        measured=[Figure("profile launcher median", ours_ms, "ms"), Figure("ratio", ratio, "x")],
        baseline=[Figure("K8sRunLauncher median", stock_ms, "ms")],
        checks=[Check("ratio <= 1.10", f"{ratio:.2f}", ratio <= 1.10)],
        notes=[
            f"{LAUNCHES} launches each, alternating; {jobs} Jobs created in the emulator. First launch: ours "
            f"{ours[0] * 1000:.0f} ms (reads the PodTemplate), stock {stock[0] * 1000:.0f} ms. Means: ours "
            f"{statistics.mean(ours) * 1000:.0f} ms, stock {statistics.mean(stock) * 1000:.0f} ms.",
        ],
    )

"""P2: reconcile latency, from a PATCH of one profile to the PodTemplate that shows it, over 100 changes.

The operator runs (its own process) against a fresh emulator holding 10 FloePlatforms x 5 profiles. Each
change patches one profile's memory limit in the FloePlatform's spec; the clock starts before the PATCH is
sent and stops when a PodTemplate watch event carries the new profile hash. Baseline: the round trip of a
bare client PATCH of a PodTemplate on the same emulator, the floor of any write.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes  # type: ignore[import-untyped]

from bench.core import Check, Figure, Outcome
from floe_platform.api import GROUP, PLURAL, VERSION
from floe_platform.render import HASH_ANNOTATION
from testkit.emulator import emulated_cluster
from testkit.operator_process import OperatorProcess
from testkit.platforms import TemplateWatch, expected_templates, floe_platform, platform_spec, profile_spec

PLATFORMS = 10
PROFILES = 5
CHANGES = 100
NAMESPACE = "bench"
CHANGE_TIMEOUT = 30.0


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (no interpolation: with 100 samples p99 is the second largest)."""
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class HashWatch(TemplateWatch):
    """Signals when one template's profile hash becomes ``wanted``."""

    def __init__(self, url: str, expected: dict[str, dict[str, Any]]) -> None:
        super().__init__(url, NAMESPACE, expected)
        self.target = ("", "")
        self.arrived = threading.Event()

    def _apply(self, event: Any) -> None:
        super()._apply(event)
        item = event.get("object") or {}
        metadata = item.get("metadata") or {}
        name, wanted = self.target
        if (
            metadata.get("name") == name
            and (metadata.get("annotations") or {}).get(HASH_ANNOTATION) == wanted
        ):
            self.arrived.set()


def _change_latencies(cluster: Any, platforms: dict[str, dict[str, Any]], watch: HashWatch) -> list[float]:
    custom = kubernetes.client.CustomObjectsApi(cluster.api_client())
    latencies = []
    for change in range(CHANGES):
        platform = f"platform-{change % PLATFORMS:02d}"
        profile_index = change % PROFILES
        profile = profile_spec(profile_index, memory_mib=1024 + 16 * (change + 1))
        spec = platforms[platform]
        spec["infrastructure"]["resource_profiles"][f"p{profile_index}"] = profile
        template = f"{platform}-p{profile_index}"
        wanted = expected_templates({platform: spec}, NAMESPACE)[template]["metadata"]["annotations"]
        watch.arrived.clear()
        watch.target = (template, wanted[HASH_ANNOTATION])
        started = time.perf_counter()
        patch = {"spec": {"infrastructure": {"resource_profiles": {f"p{profile_index}": profile}}}}
        custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, platform, patch)
        if not watch.arrived.wait(CHANGE_TIMEOUT):
            raise RuntimeError(f"change {change} ({template}) did not arrive in {CHANGE_TIMEOUT} s")
        latencies.append(time.perf_counter() - started)
    return latencies


def _bare_patch_seconds(cluster: Any) -> list[float]:
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    name = "platform-00-p0"
    seconds = []
    for change in range(CHANGES):
        started = time.perf_counter()
        core.patch_namespaced_pod_template(name, NAMESPACE, {"metadata": {"labels": {"bench": str(change)}}})
        seconds.append(time.perf_counter() - started)
    return seconds


def measure(workdir: Path) -> tuple[list[float], list[float]]:
    platforms = {f"platform-{index:02d}": platform_spec(PROFILES) for index in range(PLATFORMS)}
    with emulated_cluster(workdir, NAMESPACE, honour_label_selectors=True) as cluster:
        custom = kubernetes.client.CustomObjectsApi(cluster.api_client())
        operator = OperatorProcess(
            cluster.kubeconfig_path, workdir / "operator.log", ("--namespace", NAMESPACE), 20
        ).start()
        watch = HashWatch(cluster.url, expected_templates(platforms, NAMESPACE))
        try:
            operator.wait_ready()
            watch.start()
            for name, spec in platforms.items():
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, PLURAL, floe_platform(name, spec)
                )
            if not watch.converged.wait(120):
                raise RuntimeError("the initial templates did not converge")
            latencies = _change_latencies(cluster, platforms, watch)
            bare = _bare_patch_seconds(cluster)
        finally:
            watch.close()
            operator.stop()
    return latencies, bare


def run() -> Outcome:
    with tempfile.TemporaryDirectory(prefix="floe-bench-p2-") as workdir:
        latencies, bare = measure(Path(workdir))
    ms = [value * 1000 for value in latencies]
    bare_ms = [value * 1000 for value in bare]
    p50, p95, p99 = (percentile(ms, share) for share in (0.50, 0.95, 0.99))
    return Outcome(
        measured=[Figure("p50", p50, "ms"), Figure("p95", p95, "ms"), Figure("p99", p99, "ms")],
        baseline=[
            Figure("bare PATCH p50", statistics.median(bare_ms), "ms"),
            Figure("bare PATCH p95", percentile(bare_ms, 0.95), "ms"),
        ],
        checks=[Check("p95 <= 300 ms", f"{p95:.0f} ms", p95 <= 300)],
        notes=[
            f"{CHANGES} sequential changes across {PLATFORMS} FloePlatforms x {PROFILES} profiles; max "
            f"{max(ms):.0f} ms, mean {statistics.mean(ms):.0f} ms. The path: PATCH -> kopf watch event -> "
            "reconcile (list, JSON patch) -> PodTemplate watch event. Emulator lists honour labelSelector.",
        ],
    )

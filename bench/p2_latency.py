"""P2: reconcile latency, from a PATCH of one profile to the PodTemplate that shows it, over 100 changes.

The operator runs (its own process) against a fresh emulator, and against the real control plane (its own
namespace, the operator's ServiceAccount token), holding 10 FloePlatforms x 5 profiles. Each
change patches one profile's memory limit in the FloePlatform's spec; the clock starts before the PATCH is
sent and stops when a PodTemplate watch event carries the new profile hash. Baseline: the round trip of a
bare client PATCH of a PodTemplate on the same server, the floor of any write.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes  # type: ignore[import-untyped]

from bench.core import Check, Figure, Outcome, Unavailable
from bench.environments import (
    APISERVER,
    EMULATOR,
    EmulatorEnvironment,
    Environment,
    Side,
    real_control_plane,
    wanted_environments,
)
from floe_platform.api import GROUP, PLURAL, VERSION
from floe_platform.render import HASH_ANNOTATION
from testkit.operator_process import OperatorProcess
from testkit.platforms import TemplateWatch, expected_templates, floe_platform, platform_spec, profile_spec

PLATFORMS = 10
PROFILES = 5
CHANGES = 100
CHANGE_TIMEOUT = 30.0


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (no interpolation: with 100 samples p99 is the second largest)."""
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class HashWatch(TemplateWatch):
    """Signals when one template's profile hash becomes ``wanted``; built from a side's watch."""

    def __init__(self, base: TemplateWatch) -> None:
        super().__init__("", "", base.expected, token=base.token, context=base.context, exact=base.exact)
        self.url = base.url
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


def _change_latencies(
    side: Side, platforms: dict[str, dict[str, Any]], watch: HashWatch, changes: int
) -> list[float]:
    custom = kubernetes.client.CustomObjectsApi(side.user())
    latencies = []
    for change in range(changes):
        platform = f"platform-{change % len(platforms):02d}"
        profile_index = change % PROFILES
        profile = profile_spec(profile_index, memory_mib=1024 + 16 * (change + 1))
        spec = platforms[platform]
        spec["infrastructure"]["resource_profiles"][f"p{profile_index}"] = profile
        template = f"{platform}-p{profile_index}"
        wanted = expected_templates({platform: spec}, side.namespace)[template]["metadata"]["annotations"]
        watch.arrived.clear()
        watch.target = (template, wanted[HASH_ANNOTATION])
        started = time.perf_counter()
        patch = {"spec": {"infrastructure": {"resource_profiles": {f"p{profile_index}": profile}}}}
        custom.patch_namespaced_custom_object(GROUP, VERSION, side.namespace, PLURAL, platform, patch)
        if not watch.arrived.wait(CHANGE_TIMEOUT):
            raise RuntimeError(f"change {change} ({template}) did not arrive in {CHANGE_TIMEOUT} s")
        latencies.append(time.perf_counter() - started)
    return latencies


def _bare_patch_seconds(side: Side, changes: int) -> list[float]:
    """A bare client (the operator's own identity on the real server) patching one PodTemplate."""
    core = kubernetes.client.CoreV1Api(side.writer())
    name = "platform-00-p0"
    seconds = []
    for change in range(changes):
        started = time.perf_counter()
        core.patch_namespaced_pod_template(
            name, side.namespace, {"metadata": {"labels": {"bench": str(change)}}}
        )
        seconds.append(time.perf_counter() - started)
    return seconds


def measure(
    environment: Environment, workdir: Path, platforms_count: int = PLATFORMS, changes: int = CHANGES
) -> tuple[list[float], list[float]]:
    """Latencies of the operator's changes, then the bare PATCHes, on one side of ``environment``."""
    platforms = {f"platform-{index:02d}": platform_spec(PROFILES) for index in range(platforms_count)}
    with environment.side("p2") as side:
        custom = kubernetes.client.CustomObjectsApi(side.user())
        log = workdir / f"operator-p2-{side.namespace}.log"
        operator = OperatorProcess(side.operator_kubeconfig, log, ("--namespace", side.namespace), 20).start()
        watch = side.watch(expected_templates(platforms, side.namespace))
        hash_watch = HashWatch(watch)
        try:
            operator.wait_ready(120)
            hash_watch.start()
            for name, spec in platforms.items():
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, side.namespace, PLURAL, floe_platform(name, spec)
                )
            if not hash_watch.converged.wait(300):
                raise RuntimeError("the initial templates did not converge")
            latencies = _change_latencies(side, platforms, hash_watch, changes)
            bare = _bare_patch_seconds(side, changes)
        finally:
            hash_watch.close()
            operator.stop()
    return latencies, bare


@dataclass(frozen=True)
class Latencies:
    environment: str
    operator_ms: list[float]
    bare_ms: list[float]


def run() -> Outcome:
    wanted = wanted_environments()
    measured: list[Latencies] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="floe-bench-p2-") as directory:
        workdir = Path(directory)
        environments: list[tuple[str, Any]] = []
        if EMULATOR in wanted:
            environments.append((EMULATOR, lambda: nullcontext(EmulatorEnvironment(workdir / "emulator"))))
        if APISERVER in wanted:
            environments.append((APISERVER, lambda: real_control_plane(workdir)))
        for name, enter in environments:
            try:
                with enter() as environment:
                    latencies, bare = measure(environment, workdir)
            except Unavailable as reason:
                notes.append(f"{name}: unavailable ({reason}).")
                continue
            measured.append(Latencies(name, [v * 1000 for v in latencies], [v * 1000 for v in bare]))
    if not measured:
        raise Unavailable(" ".join(notes) or "no environment ran (FLOE_BENCH_ENVIRONMENTS)")
    return outcome(measured, notes)


def outcome(measured: list[Latencies], notes: list[str]) -> Outcome:
    result = Outcome(measured=[], baseline=[], checks=[], notes=[])
    for env in measured:
        ms, bare_ms = env.operator_ms, env.bare_ms
        p50, p95, p99 = (percentile(ms, share) for share in (0.50, 0.95, 0.99))
        result.measured += [
            Figure(f"{env.environment}: p50", p50, "ms"),
            Figure(f"{env.environment}: p95", p95, "ms"),
            Figure(f"{env.environment}: p99", p99, "ms"),
        ]
        result.baseline += [
            Figure(f"{env.environment}: bare PATCH p50", statistics.median(bare_ms), "ms"),
            Figure(f"{env.environment}: bare PATCH p95", percentile(bare_ms, 0.95), "ms"),
        ]
        result.checks.append(Check(f"{env.environment} p95 <= 300 ms", f"{p95:.0f} ms", p95 <= 300))
        result.notes.append(f"{env.environment}: max {max(ms):.0f} ms, mean {statistics.mean(ms):.0f} ms.")
    result.notes = [
        f"{CHANGES} sequential changes across {PLATFORMS} FloePlatforms x {PROFILES} profiles. The path: "
        "PATCH -> kopf watch event -> reconcile (compare with the watch-fed index, JSON patch) -> "
        "PodTemplate watch event. Emulator lists honour labelSelector; on the real server the operator and "
        "the bare client use the operator's ServiceAccount token.",
        *result.notes,
        *notes,
    ]
    return result

"""P1: the operator makes 1000 PodTemplates (200 FloePlatforms x 5 profiles) vs a bare client writing them,
on kmock's emulator and on the real control plane, in one run.

Each side gets a namespace of its own (on the emulator, a fresh emulator), so neither pays for the other's
objects. The operator side is timed from the first FloePlatform create (the operator already up and
watching) until a PodTemplate watch event completes the set, every template exactly as the renderer makes
it; the clock includes creating the FloePlatforms, as a user applying them would wait for that too. The
bare side creates the same rendered templates one after another with the kubernetes client: the floor.
The two sides alternate (bare, operator, bare, operator, ...) so that the machine's load falls on both.
The API server's count of what it served during the operator's converge is reported per FloePlatform.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
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
    operator_requests,
    per_platform,
    real_control_plane,
    total,
    wanted_environments,
)
from bench.process import TreeMemory
from floe_platform.api import GROUP, PLURAL, VERSION
from testkit.controlplane.metrics import RequestKey, requests_between
from testkit.operator_process import OperatorProcess
from testkit.platforms import expected_templates, floe_platform, judge, list_templates, platform_spec

PLATFORMS = 200
PROFILES = 5
ROUNDS_VARIABLE = "FLOE_BENCH_P1_ROUNDS"
TIMEOUT_SECONDS = 1800
MB = 1000**2
FLOOR_PER_PLATFORM = PROFILES + 1  # one create per profile and one status write


def specs(platforms: int = PLATFORMS, profiles: int = PROFILES) -> dict[str, dict[str, Any]]:
    return {f"platform-{index:04d}": platform_spec(profiles) for index in range(platforms)}


def bare_client_seconds(side: Side, templates: list[dict[str, Any]]) -> float:
    """Create ``templates`` one by one with the kubernetes client: what any writer has to pay."""
    client = side.writer()
    core = kubernetes.client.CoreV1Api(client)
    started = time.perf_counter()
    for template in templates:
        core.create_namespaced_pod_template(side.namespace, {**template, "metadata": _in(template, side)})
    seconds = time.perf_counter() - started
    if len(list_templates(client, side.namespace)) != len(templates):
        raise RuntimeError("the bare client's templates are not all there")
    return seconds


def _in(template: dict[str, Any], side: Side) -> dict[str, Any]:
    return {**template["metadata"], "namespace": side.namespace}


@dataclass(frozen=True)
class Converge:
    seconds: float
    creating: float
    peak_rss: int
    requests: Counter[RequestKey]


def operator_converge(side: Side, platforms: dict[str, dict[str, Any]], workdir: Path) -> Converge:
    """Apply ``platforms`` with the operator running; time until its templates are all right."""
    expected = expected_templates(platforms, side.namespace)
    custom = kubernetes.client.CustomObjectsApi(side.user())
    operator = OperatorProcess(
        side.operator_kubeconfig,
        workdir / f"operator-{side.namespace}.log",
        ("--namespace", side.namespace),
        20,
    ).start()
    memory = TreeMemory(operator.pid)
    memory.start()
    try:
        operator.wait_ready(120)
        watch = side.watch(expected)
        watch.start()
        before = side.requests()
        started = time.perf_counter()
        for name, spec in platforms.items():
            custom.create_namespaced_custom_object(
                GROUP, VERSION, side.namespace, PLURAL, floe_platform(name, spec)
            )
        creating = time.perf_counter() - started
        watch.converged.wait(TIMEOUT_SECONDS)
        seconds = watch.converged_at - started
        time.sleep(1)  # let the last status writes land before counting
        served = operator_requests(requests_between(before, side.requests()), len(platforms))
        watch.close()
        verdict = judge(list_templates(side.writer(), side.namespace), expected, side.exact)  # checked again
        converged = watch.converged.is_set() and verdict.converged
    finally:
        peak = memory.stop()
        operator.stop()
    if not converged:
        raise RuntimeError(f"no convergence in {TIMEOUT_SECONDS} s: {verdict}; {operator.log_tail(5)}")
    return Converge(seconds, creating, peak, served)


@dataclass(frozen=True)
class EnvironmentFigures:
    environment: str
    bare: list[float]
    converges: list[Converge]

    @property
    def ratio(self) -> float:
        """The median of each round's operator/bare ratio (each pair ran back to back)."""
        return statistics.median(c.seconds / b for c, b in zip(self.converges, self.bare, strict=True))

    @property
    def operator_seconds(self) -> float:
        return statistics.median(c.seconds for c in self.converges)

    @property
    def bare_seconds(self) -> float:
        return statistics.median(self.bare)

    @property
    def peak_rss(self) -> int:
        return max(c.peak_rss for c in self.converges)

    def requests_per_platform(self, platforms: int) -> float:
        return total(self.converges[-1].requests) / platforms


def measure(
    environment: Environment, platforms: dict[str, dict[str, Any]], rounds: int, workdir: Path
) -> EnvironmentFigures:
    templates = list(expected_templates(platforms, "bench").values())
    bare: list[float] = []
    converges: list[Converge] = []
    for _ in range(rounds):
        with environment.side("bare") as side:
            bare.append(bare_client_seconds(side, templates))
        with environment.side("operator") as side:
            converges.append(operator_converge(side, platforms, workdir))
    return EnvironmentFigures(environment.name, bare, converges)


def run_environments(
    platforms: dict[str, dict[str, Any]], rounds: int, prefix: str
) -> tuple[list[EnvironmentFigures], list[str]]:
    """Measure in every wanted environment; a missing control plane is a note, not a failure."""
    wanted = wanted_environments()
    figures: list[EnvironmentFigures] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        workdir = Path(directory)
        if EMULATOR in wanted:
            figures.append(measure(EmulatorEnvironment(workdir / "emulator"), platforms, rounds, workdir))
        if APISERVER in wanted:
            try:
                with real_control_plane(workdir) as real:
                    figures.append(measure(real, platforms, rounds, workdir))
            except Unavailable as reason:
                notes.append(f"Real API server: unavailable ({reason}).")
    if not figures:
        raise Unavailable("no environment ran (FLOE_BENCH_ENVIRONMENTS)")
    return figures, notes


def run() -> Outcome:
    platforms = specs()
    rounds = int(os.environ.get(ROUNDS_VARIABLE, "1"))
    figures, notes = run_environments(platforms, rounds, "floe-bench-p1-")
    outcome = Outcome(measured=[], baseline=[], checks=[], notes=[])
    for env in figures:
        count = len(platforms)
        outcome.measured += [
            Figure(f"{env.environment}: operator", env.operator_seconds, "s"),
            Figure(f"{env.environment}: ratio", env.ratio, "x"),
            Figure(f"{env.environment}: API requests per FloePlatform", env.requests_per_platform(count), ""),
            Figure(f"{env.environment}: operator peak RSS", env.peak_rss / MB, "MB"),
        ]
        outcome.baseline.append(
            Figure(f"{env.environment}: bare client, {count * PROFILES} creates", env.bare_seconds, "s")
        )
        outcome.checks += [
            Check(f"{env.environment} ratio <= 1.5", f"{env.ratio:.2f}", env.ratio <= 1.5),
            Check(
                f"{env.environment} RSS <= 150 MB", f"{env.peak_rss / MB:.0f} MB", env.peak_rss <= 150 * MB
            ),
        ]
        last = env.converges[-1]
        operator_times = ", ".join(f"{c.seconds:.1f}" for c in env.converges)
        bare_times = ", ".join(f"{b:.1f}" for b in env.bare)
        outcome.notes.append(
            f"{env.environment}: {rounds} round(s); operator {operator_times} s vs bare {bare_times} s; the "
            f"FloePlatform creates took {last.creating:.1f} s of the operator's time; requests per "
            f"FloePlatform (floor {FLOOR_PER_PLATFORM}): {per_platform(last.requests, count)}."
        )
    outcome.notes = [
        f"{len(platforms)} FloePlatforms x {PROFILES} profiles = {len(platforms) * PROFILES} PodTemplates, "
        "each checked against the renderer's output (template and profile hash). Bare and operator sides "
        "alternate in the same run; the ratio is the median of each pair's ratio. Requests: what the API "
        "server served during the operator's converge, without the user's FloePlatform creates and the "
        "watches (real server: its own apiserver_request_total, server-wide for those resources). RSS: the "
        "operator process tree, sampled every 0.1 s.",
        *outcome.notes,
        *notes,
    ]
    return outcome

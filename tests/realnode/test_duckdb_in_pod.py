"""Benchmark P4 in a real run pod: DuckDB's out-of-core query finishes under a 1Gi cgroup limit that the
kernel enforces, with the DUCKDB_* env the renderer derives; and what DuckDB's own defaults do there.

In a real pod DuckDB 1.5 reads the cgroup's memory limit and takes 80% of it as its own ``memory_limit``
(outside a cgroup it takes 80% of the host's memory, which is what benchmark P4's RSS watchdog stands in
for). That leaves the run worker about 200 MiB besides DuckDB, so whether the kernel kills the defaults run
comes down to a few MiB; the test accepts either outcome and checks each in full.

Real: the kernel's memory cgroup (v1: the limit runc sets from the pod's limits, and the peak it records in
``memory.max_usage_in_bytes``, read inside the container), its OOM killer, the Go-built kubelet v1.37 on
Debian's containerd 1.6 and runc (DuckDB spills to the pod's emptyDir on the node's disk), etcd,
kube-apiserver, kube-controller-manager, kube-scheduler; the profile's PodTemplate from our renderer, as
the chart's dagster ServiceAccount launches it with ProfileK8sRunLauncher; DuckDB 1.5 in the e2e image,
running P4's own query (bench/duckdb_worker.py, mounted with the instance directory) in the run worker's
process, where a run's DuckDB resource runs. The data (P4's shape: 3.2x DUCKDB_MEMORY_LIMIT) is generated
on the host by the same worker, and the host also runs the query with DuckDB's defaults for the answer to
compare; both are kept beside the image store for the next run, keyed by the worker's code, the data's
shape and DuckDB's version.

Not real: the instance is sqlite in a host directory the run pod mounts (hostPath), where the chart uses
PostgreSQL; run monitoring is called once, as its daemon would.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster._core.storage.dagster_run import DagsterRunStatus

from bench import duckdb_worker
from bench.core import Check, Figure, Result, write_results
from bench.p4_duckdb import PROFILE, data_shape, profile_env
from floe_platform.config.quantity import parse_duckdb_size
from floe_platform.render.duckdb_env import MEMORY_LIMIT
from floe_platform.usage.tags import OOM_TAG
from testkit.controlplane import ControlPlane
from testkit.realnode.deployment import RealPodDeployment, deploy
from testkit.realnode.engine import Engine
from testkit.realnode.node import RealNode

pytestmark = pytest.mark.slow

GIB = 1024**3
MIB = 1024**2
PLATFORM = {
    "platform": {"name": "realp4"},
    "infrastructure": {"resource_profiles": {"p4": PROFILE}},  # P4's profile: 1Gi, 2 CPUs
}
QUERY_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class P4Data:
    database: Path
    rows: int
    keys: int
    host_answer: dict[str, Any]


def _worker(*arguments: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bench.duckdb_worker", *arguments],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=QUERY_TIMEOUT_S,
    )
    return done.stdout


def _data_key(rows: int, keys: int) -> str:
    """What the data and the reference answer depend on: the worker's code, the shape, DuckDB's version."""
    digest = hashlib.sha256(Path(duckdb_worker.__file__).read_bytes())
    digest.update(f"{rows}:{keys}:{duckdb.__version__}".encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def p4_data(real_engine: Engine) -> P4Data:
    """P4's data set, and the answer of its query with DuckDB's defaults on the host (no limit). Made once
    per key (``_data_key``) and kept beside the image store, under its lock: generating it takes minutes."""
    _, env = profile_env()
    rows, keys = data_shape(parse_duckdb_size(env[MEMORY_LIMIT]))
    cache = real_engine.store / "p4-data" / _data_key(rows, keys)
    answer_file = cache / "answer.json"  # written last, so it marks a complete set
    if not answer_file.exists():
        shutil.rmtree(cache.parent, ignore_errors=True)  # one data set at a time
        cache.mkdir(parents=True)
        no_duckdb_env = {name: value for name, value in os.environ.items() if not name.startswith("DUCKDB_")}
        started = time.monotonic()
        _worker("generate", str(cache / "p4.duckdb"), f"--rows={rows}", f"--keys={keys}", env=no_duckdb_env)
        answer = _worker("query", str(cache / "p4.duckdb"), env=no_duckdb_env).splitlines()[-1]
        answer_file.write_text(answer + "\n")
        made_in = time.monotonic() - started
        print(f"\n[realnode] P4 data ({rows:,} rows) and the host's answer made in {made_in:.0f} s")
    return P4Data(cache / "p4.duckdb", rows, keys, json.loads(answer_file.read_text()))


@pytest.fixture
def deployed(
    control_plane: ControlPlane, control_plane_namespace: str, real_node: RealNode, tmp_path: Path
) -> Iterator[RealPodDeployment]:
    with deploy(control_plane, control_plane_namespace, real_node, PLATFORM, tmp_path) as deployment:
        yield deployment


def _query_in_pod(deployed: RealPodDeployment, data: P4Data, profile_settings: bool) -> Any:
    """Put the data and P4's worker in the instance directory the pod mounts, and run the query job."""
    database = deployed.shared_dir / "p4.duckdb"
    worker = deployed.shared_dir / "duckdb_worker.py"
    if not database.exists():
        os.link(data.database, database)  # the pod opens it read-only
        shutil.copy(duckdb_worker.__file__, worker)
    config = {"worker": str(worker), "database": str(database), "profile_settings": profile_settings}
    run_config = {"ops": {"e2e__duckdb_query": {"config": config}}}
    return deployed.submit(deployed.probes.DUCKDB_QUERY_JOB, "p4", run_config)


def _finished_pod(deployed: RealPodDeployment, run: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = deployed.pod_finished(run, QUERY_TIMEOUT_S)
    return pod, pod["status"]["containerStatuses"][0]["state"]["terminated"]


def _report(label: str, metadata: dict[str, Any]) -> str:
    peak, rss = int(metadata["cgroup_peak_bytes"]), int(metadata["process_peak_rss_bytes"])
    return (
        f"{label}: DuckDB {metadata['settings']}, query {metadata['seconds']:.1f} s, run worker peak RSS "
        f"{rss / MIB:.0f} MiB, cgroup peak {peak / MIB:.0f} MiB (page cache included) of {GIB / MIB:.0f} MiB"
    )


def test_p4_query_in_a_real_pod_with_the_profiles_duckdb_env_and_with_duckdbs_own_defaults(
    deployed: RealPodDeployment, p4_data: P4Data
) -> None:
    """With the PodTemplate's DUCKDB_* env the query spills to the emptyDir and finishes inside the kernel's
    1Gi limit, with the host's answer. Then the same query in the same profile with the variables dropped:
    DuckDB sizes itself from the cgroup limit it reads (80% of it), which leaves the run worker almost no
    room, so the run either finishes with a peak RSS above the profile's or is OOM-killed by the kernel and
    fails with the launcher's sentence; which one it is depends on a few MiB, and the test says which."""
    started = time.monotonic()
    run = _query_in_pod(deployed, p4_data, profile_settings=True)
    pod, terminated = _finished_pod(deployed, run)
    assert (pod["status"]["phase"], terminated["exitCode"]) == ("Succeeded", 0), terminated
    assert deployed.finished(run).status == DagsterRunStatus.SUCCESS
    elapsed = time.monotonic() - started
    profile = deployed.materialization(run)
    env = deployed.template_env("p4")
    assert profile["settings"] == {
        "memory_limit": f"{parse_duckdb_size(env[MEMORY_LIMIT]) / MIB:.1f} MiB",
        "threads": env["DUCKDB_THREADS"],
        "temp_directory": env["DUCKDB_TEMP_DIRECTORY"],
    }
    assert (profile["checksum"], profile["rows"]) == (p4_data.host_answer["checksum"], p4_data.rows)
    assert int(profile["memory_limit_bytes"]) == GIB
    rss = int(profile["process_peak_rss_bytes"])
    assert rss <= int(profile["cgroup_peak_bytes"]) <= GIB
    print(f"\n[realnode] P4 {_report('with the profile', profile)}; launch to success {elapsed:.0f} s")
    print(f"[realnode] P4 on the host with DuckDB's defaults, no limit: {p4_data.host_answer}")

    run = _query_in_pod(deployed, p4_data, profile_settings=False)
    pod, terminated = _finished_pod(deployed, run)
    if pod["status"]["phase"] == "Failed":
        assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
        assert any("querying" in line for line in deployed.log_lines(run)), "the query never started"
        failed = deployed.fail_dead_worker(run)
        assert (failed.status, failed.tags[OOM_TAG]) == (DagsterRunStatus.FAILURE, "true")
        sentence = (
            f"Run worker pod {pod['metadata']['name']} was OOMKilled: it used more than the memory limit 1Gi "
            "of resource profile 'p4'"
        )
        assert any(sentence in message for message in deployed.messages(failed)), deployed.messages(failed)
        print("[realnode] P4 with DuckDB's defaults in the pod: OOM-killed by the kernel")
        _record(profile, None, elapsed)
        return
    assert (pod["status"]["phase"], terminated["exitCode"]) == ("Succeeded", 0), terminated
    defaults = deployed.materialization(run)
    # DuckDB's default is 80% of the memory it finds, in whole bytes, printed in MiB cut to one decimal.
    cgroup_share = f"{math.floor(int(0.8 * GIB) / MIB * 10) / 10:.1f} MiB"
    assert defaults["settings"]["memory_limit"] == cgroup_share, "DuckDB did not read the cgroup's limit"
    assert defaults["checksum"] == p4_data.host_answer["checksum"]
    assert int(defaults["process_peak_rss_bytes"]) > rss
    print(f"[realnode] P4 {_report('with DuckDB defaults', defaults)}; finished, not OOM-killed")
    _record(profile, defaults, elapsed)


def _record(profile: dict[str, Any], defaults: dict[str, Any] | None, elapsed: float) -> None:
    """Both runs into bench/results/p4-real-pod.{json,md}, next to `make bench`'s host-side P4."""

    def figures(label: str, metadata: dict[str, Any]) -> list[Figure]:
        return [
            Figure(f"{label}: query", float(metadata["seconds"]), "s"),
            Figure(f"{label}: run worker peak RSS", int(metadata["process_peak_rss_bytes"]) / MIB, "MiB"),
            Figure(f"{label}: cgroup peak", int(metadata["cgroup_peak_bytes"]) / MIB, "MiB"),
        ]

    rss = int(profile["process_peak_rss_bytes"])
    outcome = (
        "OOM-killed by the kernel"
        if defaults is None
        else f"finished, DuckDB took {defaults['settings']['memory_limit']} from the cgroup"
    )
    result = Result(
        key="P4-pod",
        title="DuckDB out-of-core query in a real 1Gi run pod (make e2e)",
        target="with the profile's DUCKDB_* the query finishes under the kernel's 1Gi limit",
        status="met" if rss <= GIB else "not met",
        seconds=elapsed,
        measured=figures("profile's env", profile),
        baseline=[] if defaults is None else figures("DuckDB defaults", defaults),
        checks=[Check("peak RSS <= 1024 MiB with the profile's env", f"{rss / MIB:.0f} MiB", rss <= GIB)],
        notes=[f"Same query, same pod, DUCKDB_* dropped: {outcome}."],
    )
    write_results([result], Path(__file__).resolve().parents[2] / "bench/results", stem="p4-real-pod")

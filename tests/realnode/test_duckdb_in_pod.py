"""Benchmark P4 in a real run pod: DuckDB's out-of-core query finishes under a 1Gi cgroup limit that the
kernel enforces, thanks to the DUCKDB_* env the renderer derives; without those settings it is OOM-killed.

Real: the kernel's memory cgroup (v1: the limit runc sets from the pod's limits, and the peak it records in
``memory.max_usage_in_bytes``, read inside the container), its OOM killer, the Go-built kubelet v1.37 on
Debian's containerd 1.6 and runc (DuckDB spills to the pod's emptyDir on the node's disk), etcd,
kube-apiserver, kube-controller-manager, kube-scheduler; the profile's PodTemplate from our renderer, as
the chart's dagster ServiceAccount launches it with ProfileK8sRunLauncher; DuckDB 1.5 in the e2e image,
running P4's own query (bench/duckdb_worker.py, mounted with the instance directory) in the run worker's
process, where a run's DuckDB resource runs. The data (P4's shape: 3.2x DUCKDB_MEMORY_LIMIT) is generated
on the host by the same worker, and the host also runs the query with DuckDB's defaults for the answer to
compare.

Not real: the instance is sqlite in a host directory the run pod mounts (hostPath), where the chart uses
PostgreSQL; run monitoring is called once, as its daemon would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dagster._core.storage.dagster_run import DagsterRunStatus

from bench import duckdb_worker
from bench.p4_duckdb import PROFILE, data_shape, profile_env
from floe_platform.config.quantity import parse_duckdb_size
from floe_platform.render.duckdb_env import MEMORY_LIMIT
from floe_platform.usage.tags import OOM_TAG
from testkit.controlplane import ControlPlane
from testkit.realnode.deployment import RealPodDeployment, deploy
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


@pytest.fixture(scope="module")
def p4_data(tmp_path_factory: pytest.TempPathFactory) -> P4Data:
    """P4's data set, and the answer of its query with DuckDB's defaults on the host (no limit)."""
    _, env = profile_env()
    rows, keys = data_shape(parse_duckdb_size(env[MEMORY_LIMIT]))
    database = tmp_path_factory.mktemp("p4") / "p4.duckdb"
    no_duckdb_env = {name: value for name, value in os.environ.items() if not name.startswith("DUCKDB_")}
    started = time.monotonic()
    _worker("generate", str(database), f"--rows={rows}", f"--keys={keys}", env=no_duckdb_env)
    answer = json.loads(_worker("query", str(database), env=no_duckdb_env).splitlines()[-1])
    print(f"\n[realnode] P4 data ({rows:,} rows) and the host's answer in {time.monotonic() - started:.0f} s")
    return P4Data(database, rows, keys, answer)


@pytest.fixture
def deployed(
    control_plane: ControlPlane, control_plane_namespace: str, real_node: RealNode, tmp_path: Path
) -> Iterator[RealPodDeployment]:
    with deploy(control_plane, control_plane_namespace, real_node, PLATFORM, tmp_path) as deployment:
        yield deployment


def _query_in_pod(deployed: RealPodDeployment, data: P4Data, profile_settings: bool) -> Any:
    """Put the data and P4's worker in the instance directory the pod mounts, and run the query job."""
    database = deployed.shared_dir / "p4.duckdb"
    os.link(data.database, database)
    worker = deployed.shared_dir / "duckdb_worker.py"
    shutil.copy(duckdb_worker.__file__, worker)
    config = {"worker": str(worker), "database": str(database), "profile_settings": profile_settings}
    run_config = {"ops": {"e2e__duckdb_query": {"config": config}}}
    return deployed.submit(deployed.probes.DUCKDB_QUERY_JOB, "p4", run_config)


def test_p4_query_finishes_under_the_kernels_1gi_limit_with_the_profiles_duckdb_env(
    deployed: RealPodDeployment, p4_data: P4Data
) -> None:
    """The query spills to the emptyDir and finishes inside the pod; its answer equals DuckDB's with defaults
    on the host, with the settings the PodTemplate carries, under a cgroup limit of exactly 1Gi."""
    started = time.monotonic()
    run = _query_in_pod(deployed, p4_data, profile_settings=True)
    pod = deployed.pod_finished(run, QUERY_TIMEOUT_S)
    status = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == "Succeeded", status
    assert deployed.finished(run).status == DagsterRunStatus.SUCCESS
    elapsed = time.monotonic() - started
    metadata = deployed.materialization(run)
    env = deployed.template_env("p4")
    assert metadata["settings"] == {
        "memory_limit": f"{parse_duckdb_size(env[MEMORY_LIMIT]) / MIB:.1f} MiB",
        "threads": env["DUCKDB_THREADS"],
        "temp_directory": env["DUCKDB_TEMP_DIRECTORY"],
    }
    assert metadata["checksum"] == p4_data.host_answer["checksum"]
    assert metadata["rows"] == p4_data.rows
    assert int(metadata["memory_limit_bytes"]) == GIB
    peak, rss = int(metadata["cgroup_peak_bytes"]), int(metadata["process_peak_rss_bytes"])
    print(
        f"\n[realnode] P4 in a pod: query {metadata['seconds']:.1f} s (launch to success {elapsed:.0f} s); "
        f"cgroup peak {peak / MIB:.0f} MiB (page cache included), run worker peak RSS {rss / MIB:.0f} MiB, "
        f"limit {GIB / MIB:.0f} MiB; host with defaults {p4_data.host_answer['seconds']:.1f} s"
    )
    assert rss <= peak <= GIB


def test_p4_query_without_the_profiles_duckdb_settings_is_oom_killed_by_the_kernel(
    deployed: RealPodDeployment, p4_data: P4Data
) -> None:
    """The same query in the same pod with the DUCKDB_* variables dropped: DuckDB sizes itself on its own
    and the kernel's OOM killer ends the container, which the launcher reports in its sentence."""
    started = time.monotonic()
    run = _query_in_pod(deployed, p4_data, profile_settings=False)
    pod = deployed.pod_finished(run, QUERY_TIMEOUT_S)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    assert any("querying" in line for line in deployed.log_lines(run)), "the query never started in the pod"
    failed = deployed.fail_dead_worker(run)
    assert failed.status == DagsterRunStatus.FAILURE
    assert failed.tags[OOM_TAG] == "true"
    sentence = (
        f"Run worker pod {pod['metadata']['name']} was OOMKilled: it used more than the memory limit 1Gi of "
        "resource profile 'p4'"
    )
    assert any(sentence in message for message in deployed.messages(failed)), deployed.messages(failed)
    print(f"\n[realnode] P4 without DuckDB settings: launch to OOM kill {time.monotonic() - started:.0f} s")

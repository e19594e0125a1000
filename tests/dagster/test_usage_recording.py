"""Every run launched on a profile records what it used; `floe rightsize` reports it and its suggestion.

Real components: Dagster (sqlite instance in a temp DAGSTER_HOME), a real run worker process (`dagster api
execute_run`, the command dagster-k8s gives a run pod) under the real `floe-run-worker` console script,
DuckDB allocating a known amount, the kernel's cgroup v1 controllers (a child cgroup of this machine's
hierarchy stands in for a run pod's container cgroup; skipped with the reason where it cannot be made),
and `make demo`'s own in-process machinery (``floe_demo.rightsizing``) for the in-process runs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._grpc.types import ExecuteRunArgs

from floe_platform.cli import main as floe
from floe_platform.dagster import profiles
from floe_platform.usage import tags as usage_tags
from floe_platform.usage.process_tree import PROC, status_kib
from testkit.cgroups import child_cgroup_v1

JOB_FILE = Path(__file__).parent / "usage_jobs" / "allocating_job.py"
VENV_BIN = Path(sys.executable).parent
RUN_WORKER = VENV_BIN / "floe-run-worker"
MiB = 1024**2


def test_usage_tag_names_match_the_launchers() -> None:
    assert usage_tags.PROFILE_TAG == profiles.PROFILE_TAG
    assert usage_tags.MEMORY_LIMIT_TAG == profiles.MEMORY_LIMIT_TAG


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def _run_worker_command(
    instance: dg.DagsterInstance, mib: int, fail: bool, tags: Mapping[str, str]
) -> tuple[str, list[str]]:
    """A run of the allocating job in ``instance`` and the command dagster-k8s would give its pod."""
    recon = ReconstructableJob.for_file(str(JOB_FILE), "allocating_job")
    run = instance.create_run_for_job(
        job_def=recon.get_definition(),
        run_config={"ops": {"allocate": {"config": {"mib": mib, "fail": fail}}}},
        job_code_origin=recon.get_python_origin(),
        tags=dict(tags),
    )
    args = ExecuteRunArgs(
        job_origin=recon.get_python_origin(),
        run_id=run.run_id,
        instance_ref=instance.get_ref(),
        set_exit_code_on_failure=True,
    ).get_command_args()
    return run.run_id, list(args)


def _wrapper_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "KUBERNETES_SERVICE_HOST"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # the run pod has `dagster` on PATH
    return env


def _floe_tags(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return {key: value for key, value in run.tags.items() if key.startswith("floe/")}


def test_run_worker_records_the_process_trees_usage_and_keeps_the_exit_code(dagster_home: Path) -> None:
    """Outside a pod (no cgroup of its own) the wrapper measures the run worker's process tree; a failed
    run is recorded too, and the wrapper exits with the run worker's exit code."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        ok_id, ok_command = _run_worker_command(instance, 256, False, {profiles.PROFILE_TAG: "small"})
        bad_id, bad_command = _run_worker_command(instance, 32, True, {profiles.PROFILE_TAG: "small"})
        ok = subprocess.run(
            [str(RUN_WORKER), "--", *ok_command],
            env=_wrapper_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        bad = subprocess.run(
            [str(RUN_WORKER), "--", *bad_command],
            env=_wrapper_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert ok.returncode == 0, ok.stderr[-2000:]
        assert bad.returncode == 1, bad.stderr[-2000:]
        assert "could not record" not in ok.stderr + bad.stderr
        ok_tags, bad_tags = _floe_tags(instance, ok_id), _floe_tags(instance, bad_id)
        assert instance.get_run_by_id(ok_id).status == dg.DagsterRunStatus.SUCCESS  # type: ignore[union-attr]
        assert instance.get_run_by_id(bad_id).status == dg.DagsterRunStatus.FAILURE  # type: ignore[union-attr]
    assert ok_tags[usage_tags.USAGE_SOURCE_TAG] == "process-tree"
    assert int(ok_tags[usage_tags.PEAK_MEMORY_TAG]) >= 256 * MiB
    assert float(ok_tags[usage_tags.CPU_SECONDS_TAG]) > 0
    assert (
        float(ok_tags[usage_tags.WALL_SECONDS_TAG])
        >= float(ok_tags[usage_tags.CPU_SECONDS_TAG]) / os.cpu_count()
    )  # type: ignore[operator]
    assert ok_tags[usage_tags.EXIT_CODE_TAG] == "0"
    assert bad_tags[usage_tags.EXIT_CODE_TAG] == "1"
    assert int(bad_tags[usage_tags.PEAK_MEMORY_TAG]) < int(ok_tags[usage_tags.PEAK_MEMORY_TAG])


@pytest.fixture
def container_cgroup_v1(tmp_path: Path) -> Iterator[tuple[Path, list[Path]]]:
    """A fresh v1 memory+cpuacct child cgroup, and a root laid out as a container sees /sys/fs/cgroup."""
    with child_cgroup_v1(f"floe-test-recording-{os.getpid()}") as (memory, cpuacct):
        root = tmp_path / "cgroup-root"
        root.mkdir()
        (root / "memory").symlink_to(memory)
        (root / "cpuacct").symlink_to(cpuacct)
        yield root, [memory / "cgroup.procs", cpuacct / "cgroup.procs"]


def test_run_worker_in_a_pod_reads_its_containers_cgroup(
    dagster_home: Path, container_cgroup_v1: tuple[Path, list[Path]]
) -> None:
    """The wrapper, started inside a fresh cgroup as a run pod's PID 1 is, records that cgroup's peak and
    CPU time (which cover the run worker and every process it starts)."""
    root, procs_files = container_cgroup_v1

    def enter_cgroup() -> None:
        for procs in procs_files:
            procs.write_text(str(os.getpid()))

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run_id, command = _run_worker_command(instance, 384, False, {profiles.PROFILE_TAG: "medium"})
        env = {**_wrapper_env(), "KUBERNETES_SERVICE_HOST": "10.0.0.1"}  # what every pod has: auto -> cgroup
        done = subprocess.run(
            [str(RUN_WORKER), "--cgroup-root", str(root), "--", *command],
            env=env,
            preexec_fn=enter_cgroup,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        tags = _floe_tags(instance, run_id)
    assert tags[usage_tags.USAGE_SOURCE_TAG] == "cgroup-v1"
    peak = int(tags[usage_tags.PEAK_MEMORY_TAG])
    assert peak >= 384 * MiB
    assert float(tags[usage_tags.CPU_SECONDS_TAG]) > 0.5


# In-process runs, as `make demo` makes them, and the report over them.

ALLOCATE_MIB = {"light": 32, "heavy": 1024}


@dg.asset(config_schema={"mib": int})
def allocation(context) -> None:
    """Holds ``mib`` MiB of int64 from a DuckDB query until the step ends."""
    import duckdb

    values = duckdb.sql(
        f"SELECT range AS i FROM range({context.op_execution_context.op_config['mib'] * MiB // 8})"
    ).fetchnumpy()["i"]
    context.log.info("sum %s", int(values.sum()))


def _platform_yaml(path: Path, base: int) -> Path:
    """Three profiles sized around this process's current RSS ``base`` (pytest's own memory counts, as
    the run worker's does in a pod): small holds the light runs, medium not the heavy ones, large does."""
    small = base + 400 * MiB
    medium = small + 256 * MiB
    large = base + 3500 * MiB
    lines = ["infrastructure:", "  resource_profiles:"]
    for name, limit in (("small", small), ("medium", medium), ("large", large)):
        limit_mi = -(-int(limit * 1.25) // MiB)
        lines += [
            f"    {name}:",
            "      requests: {cpu: 500m, memory: 256Mi}",
            f"      limits: {{cpu: '2', memory: {limit_mi}Mi}}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _materialize(instance: dg.DagsterInstance, platform: Path, mib: int) -> str:
    from floe_demo.rightsizing import measured_materialize, profile_tags

    result = measured_materialize(
        [allocation],
        instance=instance,
        tags=profile_tags(platform, "large"),
        run_config={"ops": {"allocation": {"config": {"mib": mib}}}},
        raise_on_error=True,
    )
    return str(result.run_id)


def _report(dagster_home: Path, platform: Path, *extra: str) -> Any:
    result = CliRunner().invoke(
        floe,
        [
            "rightsize",
            "--dagster-home",
            str(dagster_home),
            "--platform",
            str(platform),
            "--format",
            "json",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _usage_scenario(dagster_home: str, workdir: str, out: str) -> None:
    """Light runs, a report, heavy runs, a report: in a fresh interpreter, as a run worker is its own
    process (the test process has grown with every test before it, and its memory is no run's)."""
    base = (status_kib(os.getpid(), "VmRSS", PROC) or 0) * 1024
    platform = _platform_yaml(Path(workdir) / "platform.yaml", base)
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        for _ in range(2):
            _materialize(instance, platform, ALLOCATE_MIB["light"])
        light = _report(Path(dagster_home), platform)["jobs"]
        for _ in range(2):
            _materialize(instance, platform, ALLOCATE_MIB["heavy"])
        heavy = _report(Path(dagster_home), platform)["jobs"]
    Path(out).write_text(json.dumps({"light": light, "heavy": heavy}))


def test_report_suggestion_moves_when_the_usage_moves(dagster_home: Path, tmp_path: Path) -> None:
    """Light runs of a job are suggested the small profile; after heavy runs of it, the large one."""
    out = tmp_path / "reports.json"
    child = multiprocessing.get_context("spawn").Process(
        target=_usage_scenario, args=(str(dagster_home), str(tmp_path), str(out))
    )
    child.start()
    child.join(timeout=300)
    assert child.exitcode == 0, f"the scenario's process exited {child.exitcode}"
    reports = json.loads(out.read_text())
    light, heavy = reports["light"], reports["heavy"]
    assert len(light) == 1
    assert light[0]["runs"] == 2
    assert light[0]["current_profile"] == "large"
    assert light[0]["suggestion"]["profile"] == "small"
    assert light[0]["verdict"] == "over-provisioned"
    assert heavy[0]["runs"] == 4
    assert heavy[0]["peak_max_bytes"] >= heavy[0]["peak_p50_bytes"] + 900 * MiB
    assert heavy[0]["suggestion"]["profile"] == "large"


def test_report_bad_input_is_one_line_and_exit_1(dagster_home: Path, tmp_path: Path) -> None:
    """No DAGSTER_HOME, a window without runs, an instance that cannot be read: one line each, exit 1."""
    runner = CliRunner()
    env_without_home = {"DAGSTER_HOME": ""}
    missing = runner.invoke(floe, ["rightsize"], env=env_without_home)
    empty = runner.invoke(floe, ["rightsize", "--dagster-home", str(dagster_home), "--since", "1h"])
    broken_home = tmp_path / "broken"
    broken_home.mkdir()
    (broken_home / "dagster.yaml").write_text("run_storage: {module: nowhere.at.all, class: Nope}\n")
    broken = runner.invoke(floe, ["rightsize", "--dagster-home", str(broken_home)])
    for result, expected in (
        (missing, "set DAGSTER_HOME or pass --dagster-home"),
        (empty, "no runs launched on a resource profile in the last 1h"),
        (broken, f"cannot read the Dagster instance at {broken_home}"),
    ):
        assert result.exit_code == 1
        assert expected in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output

"""The images' commands, read from their Dockerfiles, run as local processes from the image's own install.

Each image's builder stage is replayed on this host (``builder_replay.py``): its ``uv export`` of uv.lock,
the hashed install, the project wheel, the dbt ``prepare-and-package`` step and the DuckDB extension
install, into a local /opt/venv.
Then the runtime stage's CMD/ENTRYPOINT runs from that venv with the runtime stage's ENV. Real
components: uv, Dagster's code server and its own gRPC client, dagster-dbt with dbt-duckdb, DuckDB with
the installed extensions, the floe CLI.
What this cannot show: the base image's files and the uid 1000 user (the kind e2e suite runs the images).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from builder_replay import BuilderReplay
from dockerfile_rules import Dockerfile

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools/uv-venv/bin/uv"
OPERATOR_DOCKERFILE = ROOT / "images/operator/Dockerfile"
USER_CODE_DOCKERFILE = ROOT / "images/user-code/Dockerfile"
E2E_DOCKERFILE = ROOT / "tests/e2e/image/Dockerfile"
CODE_SERVER_START_TIMEOUT_S = 180


@dataclass(frozen=True)
class CodeServer:
    port: int
    manifest: Path
    manifest_mtime_ns: int
    """mtime of the build-time dbt manifest just before the server started."""


def replace_option(argv: list[str], option: str, value: str) -> list[str]:
    index = argv.index(option)
    return [*argv[: index + 1], value, *argv[index + 2 :]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def user_code_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user-code image's /opt/venv, made by its own builder steps (dbt manifest prepared included)."""
    venv = BuilderReplay(USER_CODE_DOCKERFILE, ROOT, tmp_path_factory.mktemp("user-code"), UV).run()
    # Present before anything imports the demo, which would otherwise parse the dbt project itself.
    assert len(installed_manifests(venv)) == 1, (
        "the Dockerfile's prepare-and-package step made no dbt manifest"
    )
    return venv


def installed_manifests(venv: Path) -> list[Path]:
    return list(venv.glob("lib/python3.*/site-packages/floe_demo/**/target/manifest.json"))


def runtime_env(dockerfile: Path, venv: Path, *python_path: Path) -> dict[str, str]:
    """The runtime stage's ENV, with its paths pointed at local directories next to ``venv``."""
    scratch = venv.parent / "runtime"
    (scratch / "dagster_home").mkdir(parents=True, exist_ok=True)
    image = Dockerfile.read(dockerfile).final_env()
    local = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(scratch),
        "DAGSTER_HOME": str(scratch / "dagster_home"),
        "DBT_TARGET_PATH": str(scratch / "dbt-target"),
    }
    env = os.environ | image | {name: value for name, value in local.items() if name in image}
    env.pop("VIRTUAL_ENV", None)
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(str(path) for path in python_path)
    else:
        env.pop("PYTHONPATH", None)
    return env


def venv_argv(venv: Path, argv: list[str]) -> list[str]:
    executable = venv / "bin" / argv[0]
    assert executable.exists(), f"{argv[0]} is not installed in the image's venv"
    return [str(executable), *argv[1:]]


@pytest.fixture
def code_server(user_code_venv: Path) -> Iterator[CodeServer]:
    """The user-code image's CMD, on 127.0.0.1 and a free port; it and its children are stopped by pid."""
    port = free_port()
    argv = Dockerfile.read(USER_CODE_DOCKERFILE).exec_form("CMD")
    argv = replace_option(replace_option(argv, "-h", "127.0.0.1"), "-p", str(port))
    env = runtime_env(USER_CODE_DOCKERFILE, user_code_venv)
    manifest = installed_manifests(user_code_venv)[0]
    built = manifest.stat().st_mtime_ns
    process = subprocess.Popen(
        venv_argv(user_code_venv, argv),
        env=env,
        cwd=user_code_venv.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield CodeServer(port, manifest, built)
    finally:
        stop_process_tree(process)


def stop_process_tree(process: subprocess.Popen[bytes]) -> None:
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    for child in children:
        if child.is_running():
            child.terminate()
    psutil.wait_procs(children, timeout=10)


@pytest.mark.slow
def test_user_code_cmd_serves_the_demo_location_over_grpc(code_server: CodeServer) -> None:
    """dagster's own gRPC client: the health check answers SERVING and the location lists its repository,
    using the build-time manifest as it is (a pod cannot rewrite the installed package)."""
    from dagster._api.list_repositories import sync_list_repositories_grpc
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=code_server.port, host="127.0.0.1")
    deadline = time.monotonic() + CODE_SERVER_START_TIMEOUT_S
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            assert client.health_check_query() == "SERVING"
            response = sync_list_repositories_grpc(client)
        except Exception as error:  # the server is still starting or still loading the code
            last_error = error
            time.sleep(1)
            continue
        assert [symbol.repository_name for symbol in response.repository_symbols] == ["__repository__"]
        assert code_server.manifest.stat().st_mtime_ns == code_server.manifest_mtime_ns, (
            "the code server re-parsed the dbt project at start"
        )
        return
    pytest.fail(
        f"code server did not serve floe_demo.definitions in {CODE_SERVER_START_TIMEOUT_S} s: {last_error}"
    )


@pytest.mark.slow
def test_e2e_layer_adds_the_oom_probe_to_the_demo_definitions(user_code_venv: Path) -> None:
    """The kind suite's code location (tests/e2e/image) loads on the user-code venv, as in its image."""
    module = Dockerfile.read(E2E_DOCKERFILE).exec_form("CMD")[-1]
    script = (
        f"import importlib; defs = importlib.import_module({module!r}).defs; "
        "job = defs.resolve_job_def('e2e_memory_hog'); print(job.executor_def.name); "
        "print(len(defs.resolve_all_job_defs()))"
    )
    result = subprocess.run(
        venv_argv(user_code_venv, ["python", "-c", script]),
        env=runtime_env(USER_CODE_DOCKERFILE, user_code_venv, E2E_DOCKERFILE.parent),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    executor, job_count = result.stdout.split()
    assert executor == "in_process"
    assert int(job_count) >= 2  # the demo's jobs besides the probe


EXTENSION_FILES = {
    "ducklake.duckdb_extension",
    "httpfs.duckdb_extension",
    "postgres_scanner.duckdb_extension",
}
OFFLINE_ATTACH = """
import json, sys, duckdb
from floe_platform.dagster.catalog import extension_directory, offline_config
directory = extension_directory()
with duckdb.connect(config=offline_config(directory)) as conn:
    conn.execute(f"ATTACH 'ducklake:{sys.argv[1]}/meta.ducklake' AS lake (DATA_PATH '{sys.argv[1]}/data/')")
    conn.execute("CREATE TABLE lake.t AS SELECT 42 AS answer")
    conn.execute("LOAD httpfs; LOAD postgres_scanner")
    loaded = dict(conn.execute(
        "SELECT extension_name, install_path FROM duckdb_extensions() WHERE loaded "
        "AND extension_name IN ('ducklake', 'httpfs', 'postgres_scanner')"
    ).fetchall())
    answer = conn.execute("SELECT answer FROM lake.t").fetchone()[0]
report = {"directory": str(directory), "version": duckdb.__version__, "answer": answer, "loaded": loaded}
print(json.dumps(report))
"""


@pytest.mark.slow
def test_the_builder_installs_the_duckdb_extensions_run_pods_load_offline(
    user_code_venv: Path, tmp_path: Path
) -> None:
    """The builder's ``python -m floe_platform.dagster.catalog`` leaves ducklake, httpfs and postgres in
    the venv's extension directory; a process with the runtime env loads them from there, with
    autoinstall off and no repository to download from, and attaches a local DuckLake catalog."""
    directory = user_code_venv / "share" / "floe-platform" / "duckdb-extensions"
    installed = sorted(directory.glob("v*/*/*.duckdb_extension"))
    assert {path.name for path in installed} == EXTENSION_FILES
    before = {path: path.stat().st_mtime_ns for path in installed}
    result = subprocess.run(
        venv_argv(user_code_venv, ["python", "-c", OFFLINE_ATTACH, str(tmp_path)]),
        env=runtime_env(USER_CODE_DOCKERFILE, user_code_venv),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert Path(report["directory"]) == directory
    assert {path.parent.parent.name for path in installed} == {f"v{report['version']}"}
    assert report["answer"] == 42
    assert {Path(path) for path in report["loaded"].values()} == set(installed)  # each from the directory
    assert {path: path.stat().st_mtime_ns for path in installed} == before  # loaded, not installed again


@pytest.mark.slow
def test_operator_entrypoint_runs_from_the_operator_images_install(tmp_path: Path) -> None:
    """The operator image's ENTRYPOINT with --help, from the venv its builder stage makes: it exits 0."""
    venv = BuilderReplay(OPERATOR_DOCKERFILE, ROOT, tmp_path, UV).run()
    argv = Dockerfile.read(OPERATOR_DOCKERFILE).exec_form("ENTRYPOINT")
    assert argv == ["floe", "operator"]
    result = subprocess.run(
        [*venv_argv(venv, argv), "--help"],
        env=runtime_env(OPERATOR_DOCKERFILE, venv),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--namespace" in result.stdout
    assert "--all-namespaces" in result.stdout
    installed = subprocess.run(
        [str(venv / "bin/python"), "-c", "import dagster"], capture_output=True, check=False
    )
    assert installed.returncode != 0, "the operator image must not contain Dagster"

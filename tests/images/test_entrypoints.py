"""The images' commands, read from their Dockerfiles, work as local processes from the same locked install.

Real components: the project's .venv (synced from the same uv.lock the images export), Dagster's code
server and its own gRPC client, dagster-dbt's ``prepare-and-package`` with dbt-duckdb, and the ``floe`` CLI.
What this cannot show: the image's filesystem layout, user and base image (the kind e2e suite runs those).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from dockerfile_rules import Dockerfile

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv/bin"
OPERATOR_DOCKERFILE = ROOT / "images/operator/Dockerfile"
USER_CODE_DOCKERFILE = ROOT / "images/user-code/Dockerfile"
E2E_DOCKERFILE = ROOT / "tests/e2e/image/Dockerfile"
DEMO_PACKAGE = ROOT / "images/user-code/floe_demo"
SITE_PACKAGES = "/opt/venv/lib/python3.11/site-packages/"
CODE_SERVER_START_TIMEOUT_S = 180


def local_argv(argv: list[str]) -> list[str]:
    """The image's argv with its executable taken from the local .venv."""
    executable = shutil.which(argv[0], path=str(VENV_BIN))
    assert executable is not None, f"{argv[0]} is not installed in .venv"
    return [executable, *argv[1:]]


def replace_option(argv: list[str], option: str, value: str) -> list[str]:
    index = argv.index(option)
    return [*argv[: index + 1], value, *argv[index + 2 :]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare_command() -> list[str]:
    """The Dockerfile's build-time ``dagster-dbt project prepare-and-package`` step, as argv."""
    found = [argv for _, argv in Dockerfile.read(USER_CODE_DOCKERFILE).commands() if argv[0] == "dagster-dbt"]
    assert len(found) == 1, "the user-code Dockerfile must prepare the dbt manifest exactly once"
    return found[0]


@pytest.fixture(scope="module")
def prepared_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of floe_demo with its manifest prepared by the Dockerfile's own command, as the image has it.

    The copy keeps the source tree free of dbt's target/ and stands where site-packages stands in the image.
    """
    site = tmp_path_factory.mktemp("site-packages")
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "__pycache__", "*.duckdb*")
    shutil.copytree(DEMO_PACKAGE, site / "floe_demo", ignore=ignore)
    argv = prepare_command()
    argv = [arg.replace(SITE_PACKAGES, f"{site}/") for arg in argv]
    assert any(str(site) in arg for arg in argv), f"prepare step does not use {SITE_PACKAGES}: {argv}"
    subprocess.run(
        local_argv(argv),
        cwd=site,
        env=image_env(site),
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return site


def image_env(site: Path, *extra_paths: Path) -> dict[str, str]:
    """The user-code image's runtime ENV, with its paths pointed at local directories."""
    home = site.parent / "dagster_home"
    home.mkdir(exist_ok=True)
    image = Dockerfile.read(USER_CODE_DOCKERFILE).final_env()
    local_paths = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(site.parent),
        "DAGSTER_HOME": str(home),
        "DBT_TARGET_PATH": str(site.parent / "dbt-target"),
    }
    assert local_paths.keys() <= image.keys(), "the user-code image no longer sets these variables"
    python_path = os.pathsep.join(str(path) for path in (site, *extra_paths))
    return os.environ | image | local_paths | {"PYTHONPATH": python_path}


@pytest.fixture
def code_server(prepared_demo: Path) -> Iterator[int]:
    """The user-code image's CMD, on 127.0.0.1 and a free port; it and its children are stopped by pid."""
    port = free_port()
    argv = Dockerfile.read(USER_CODE_DOCKERFILE).exec_form("CMD")
    argv = replace_option(replace_option(argv, "-h", "127.0.0.1"), "-p", str(port))
    process = subprocess.Popen(
        local_argv(argv),
        env=image_env(prepared_demo),
        cwd=prepared_demo.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
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
def test_user_code_cmd_serves_the_demo_location_over_grpc(code_server: int) -> None:
    """dagster's own gRPC client: the health check answers SERVING and the location lists its repository."""
    from dagster._api.list_repositories import sync_list_repositories_grpc
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=code_server, host="127.0.0.1")
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
        return
    pytest.fail(
        f"code server did not serve floe_demo.definitions in {CODE_SERVER_START_TIMEOUT_S} s: {last_error}"
    )


@pytest.mark.slow
def test_e2e_layer_adds_the_oom_probe_to_the_demo_definitions(prepared_demo: Path) -> None:
    """The kind suite's code location (tests/e2e/image) loads on top of the prepared demo, as in its image."""
    module = Dockerfile.read(E2E_DOCKERFILE).exec_form("CMD")[-1]
    script = (
        f"import importlib; defs = importlib.import_module({module!r}).defs; "
        "job = defs.resolve_job_def('e2e_memory_hog'); print(job.executor_def.name); "
        "print(len(defs.resolve_all_job_defs()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=image_env(prepared_demo, E2E_DOCKERFILE.parent),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    executor, job_count = result.stdout.split()
    assert executor == "in_process"
    assert int(job_count) >= 2  # the demo's jobs besides the probe


def test_operator_entrypoint_runs_from_the_locked_install() -> None:
    """The operator image's ENTRYPOINT with --help, from .venv: it parses its options and exits 0."""
    argv = Dockerfile.read(OPERATOR_DOCKERFILE).exec_form("ENTRYPOINT")
    assert argv == ["floe", "operator"]
    result = subprocess.run(
        [*local_argv(argv), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "--namespace" in result.stdout
    assert "--all-namespaces" in result.stdout

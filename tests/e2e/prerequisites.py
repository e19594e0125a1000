"""Whether this machine can run the kind e2e suite, and why not.

The suite needs a container engine: ``docker`` on PATH *and* answering (``docker info``), plus ``kind``;
helm and kubectl come from ``make install``. Every missing piece is named, with what to do about it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

NO_DOCKER = "`docker` is not on PATH (install Docker)"
NO_ENGINE = "`docker info` failed: {detail} (start the Docker engine)"
NO_KIND = "`kind` is not on PATH (install kind: https://kind.sigs.k8s.io)"
NO_TOOL = "`{tool}` is not on PATH (run `make install`)"
DOCKER_INFO_TIMEOUT_S = 20
# Where `make install` puts helm and kubectl when they are not on PATH.
PROJECT_TOOLS = Path(__file__).resolve().parents[2] / ".tools/bin"


def find_tool(name: str, path: str | None = None) -> str | None:
    """``name`` on ``path`` (default $PATH), else in the project's .tools/bin."""
    search = os.environ.get("PATH", "") if path is None else path
    return shutil.which(name, path=f"{search}{os.pathsep}{PROJECT_TOOLS}")


def _engine_problem(docker: str) -> str | None:
    try:
        info = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=DOCKER_INFO_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return NO_ENGINE.format(detail=f"no answer within {DOCKER_INFO_TIMEOUT_S} s")
    if info.returncode == 0:
        return None
    lines = (info.stderr or info.stdout).strip().splitlines()
    return NO_ENGINE.format(detail=lines[-1] if lines else f"exit code {info.returncode}")


def missing_prerequisites(path: str | None = None) -> list[str]:
    """What stops the suite here: empty when Docker with a running engine, kind, helm and kubectl are all
    available. ``path`` replaces $PATH for the lookups (the tests of this function use it)."""
    search = os.environ.get("PATH", "") if path is None else path
    problems = []
    docker = shutil.which("docker", path=search)
    if docker is None:
        problems.append(NO_DOCKER)
    elif (engine := _engine_problem(docker)) is not None:
        problems.append(engine)
    if shutil.which("kind", path=search) is None:
        problems.append(NO_KIND)
    problems += [NO_TOOL.format(tool=tool) for tool in ("helm", "kubectl") if find_tool(tool, search) is None]
    return problems


def skip_reason(problems: list[str]) -> str:
    return (
        "the e2e suite runs on real pods here with `make e2e` (root), or on kind with `make e2e-kind`, "
        "which needs Docker and kind: " + "; ".join(problems)
    )

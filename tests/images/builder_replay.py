"""Replay a Dockerfile's builder stage on this host: its own WORKDIR, ENV, COPY and RUN steps, in order.

Image paths (``/opt/venv``, ``/src``, ``/tmp/...``) are mapped under a temporary root, so the result is the
image's ``/opt/venv`` built by the image's own commands from the same uv.lock. Differences from a real
build, each on purpose:

- The host's Python 3.11 stands in for the base image's ``/usr/local/bin/python3.11``, and the pinned uv
  in ``.tools`` stands in for the ``pip install uv==...`` step; test_dockerfiles.py checks that both are
  the versions the Dockerfile pins.
- uv's cache is used instead of ``UV_NO_CACHE``, links instead of ``UV_LINK_MODE=copy``, and bytecode is
  not compiled: these change speed and size, not which packages get installed.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from dockerfile_rules import Dockerfile, Instruction

BASE_PYTHON = "/usr/local/bin/python3.11"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "target", "logs", "dbt_packages", "*.duckdb*")
HOST_ONLY_SETTINGS = ("UV_NO_CACHE", "UV_LINK_MODE", "UV_COMPILE_BYTECODE")


class BuilderReplay:
    """The first stage of a Dockerfile, replayed under ``root`` with ``context`` as the build context."""

    def __init__(self, dockerfile: Path, context: Path, root: Path, uv: Path) -> None:
        self.dockerfile = Dockerfile.read(dockerfile)
        self.context = context
        self.root = root
        self.uv = uv
        self.cwd = root
        self.env: dict[str, str] = {}

    def host_path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def run(self) -> Path:
        """Replay every instruction of the builder stage; the path of its /opt/venv on this host."""
        steps = {"WORKDIR": self._workdir, "ENV": self._env, "COPY": self._copy, "RUN": self._run}
        for item in self.dockerfile.instructions:
            if item.stage < 0:
                continue  # a global ARG (BASE_IMAGE) before the first FROM: substituted, never run
            if item.stage > 0:
                break
            if item.keyword in steps:
                steps[item.keyword](item)
        return self.host_path("/opt/venv")

    def _workdir(self, item: Instruction) -> None:
        self.cwd = self.host_path(item.arguments)
        self.cwd.mkdir(parents=True, exist_ok=True)

    def _env(self, item: Instruction) -> None:
        for part in shlex.split(item.arguments):
            name, _, value = part.partition("=")
            if name == "PATH":
                value = value.replace("$PATH", os.environ["PATH"]).replace(
                    "/opt/venv", str(self.root / "opt/venv")
                )
            if name not in HOST_ONLY_SETTINGS:
                self.env[name] = value

    def _copy(self, item: Instruction) -> None:
        *sources, destination = shlex.split(item.arguments)
        target = self.cwd / destination
        for source in sources:
            origin = self.context / source
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=IGNORED, dirs_exist_ok=True)
            elif destination.endswith("/") or len(sources) > 1:  # Docker: a directory to copy into
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, target / origin.name)
            else:  # Docker: one file to one file path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, target)

    def _run(self, item: Instruction) -> None:
        for argv in self.dockerfile.shell_commands(item):
            self._execute(argv)

    def _map_argument(self, argument: str) -> list[str]:
        if argument == BASE_PYTHON:
            return [os.path.realpath(sys.executable)]
        if not argument.startswith("/"):
            return [argument]
        mapped = str(self.host_path(argument))
        return (sorted(glob.glob(mapped)) or [mapped]) if "*" in mapped else [mapped]

    def _execute(self, argv: list[str]) -> None:
        if argv[:2] == ["pip", "install"]:
            return  # the pinned uv from .tools stands in for the image's `pip install uv==...`
        mapped = [part for argument in argv for part in self._map_argument(argument)]
        executable = str(self.uv) if mapped[0] == "uv" else shutil.which(mapped[0], path=self.env.get("PATH"))
        if executable is None:
            raise FileNotFoundError(f"{mapped[0]} (from the Dockerfile) is not on the replayed PATH")
        result = subprocess.run(
            [executable, *mapped[1:]],
            cwd=self.cwd,
            env=os.environ | self.env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"`{shlex.join(argv)}` failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
            )

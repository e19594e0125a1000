"""Read a Dockerfile into instructions and check that it installs exactly the uv lock.

The rules encode how our images install Python packages: the builder exports the lock's hashed pins for one
extra (``uv export --frozen --no-dev --extra X``), installs them with ``--require-hashes --no-deps``, then
adds the project wheel with ``--no-deps``. Anything else that installs a package is a problem, because it
would put a version into the image that the lock and the tests never saw.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

PYTHON_BASE = re.compile(r"^python:(?P<version>\d+\.\d+\.\d+)-slim-(?P<distro>[a-z]+)$")
# The project's own wheels: the product (floe-platform) and, in the user-code image, the demo (floe-demo).
PROJECT_WHEEL = re.compile(r"^/\S+/floe_(platform|demo)-\*\.whl$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: int
    # A RUN's own flags (``--mount=...``, ``--network=...``), kept apart from its shell command.
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dockerfile:
    instructions: tuple[Instruction, ...]

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        return cls(tuple(_instructions(text)))

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        return cls.parse(path.read_text())

    def all(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.keyword == keyword]

    def arg_defaults(self) -> dict[str, str]:
        defaults: dict[str, str] = {}
        for item in self.all("ARG"):
            name, _, value = item.arguments.partition("=")
            defaults[name.strip()] = value.strip()
        return defaults

    def final_env(self) -> dict[str, str]:
        """ENV of the runtime (last) stage, in ``KEY=value`` form."""
        final_stage = len(self.all("FROM")) - 1
        env: dict[str, str] = {}
        for item in self.all("ENV"):
            if item.stage == final_stage:
                env |= dict(part.split("=", 1) for part in shlex.split(item.arguments))
        return env

    def exec_form(self, keyword: str) -> list[str]:
        """The argv of the last ENTRYPOINT or CMD, which must be written in exec (JSON) form."""
        found = self.all(keyword)
        if not found:
            raise LookupError(f"no {keyword} instruction")
        argv = json.loads(found[-1].arguments)
        if not isinstance(argv, list) or not all(isinstance(part, str) for part in argv):
            raise ValueError(f"{keyword} is not in exec form: {found[-1].arguments}")
        return argv

    def shell_commands(self, item: Instruction) -> list[list[str]]:
        """The commands of one RUN (split on ``&&`` and ``;``) as argv lists, ARG defaults substituted."""
        defaults = self.arg_defaults()
        text = re.sub(
            r"\$\{(\w+)\}", lambda match: defaults.get(match.group(1), match.group(0)), item.arguments
        )
        return [argv for part in re.split(r"&&|;", text) if (argv := shlex.split(part))]

    def commands(self) -> list[tuple[int, list[str]]]:
        """Each shell command of every RUN as (stage, argv)."""
        return [(item.stage, argv) for item in self.all("RUN") for argv in self.shell_commands(item)]


def _logical_lines(text: str) -> list[str]:
    """Join backslash continuations; drop comments and blank lines (also inside a continuation)."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def _instructions(text: str) -> list[Instruction]:
    instructions = []
    stage = -1
    for line in _logical_lines(text):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        flags: list[str] = []
        arguments = arguments.strip()
        while keyword == "RUN" and arguments.startswith("--"):
            flag, _, arguments = arguments.partition(" ")
            flags.append(flag)
            arguments = arguments.strip()
        instructions.append(Instruction(keyword, arguments, stage, tuple(flags)))
    return instructions


def _option(argv: list[str], name: str) -> str | None:
    for index, part in enumerate(argv):
        if part == name and index + 1 < len(argv):
            return argv[index + 1]
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
    return None


def _options(argv: list[str], name: str) -> list[str]:
    values = []
    for index, part in enumerate(argv):
        if part == name and index + 1 < len(argv):
            values.append(argv[index + 1])
        elif part.startswith(name + "="):
            values.append(part.split("=", 1)[1])
    return values


def uv_export_command(dockerfile: Dockerfile) -> list[str]:
    """The one ``uv export`` of the Dockerfile, as argv."""
    exports = [argv for _, argv in dockerfile.commands() if argv[:2] == ["uv", "export"]]
    if len(exports) != 1:
        raise LookupError(f"expected exactly one `uv export`, found {len(exports)}")
    return exports[0]


def _base_image_problems(dockerfile: Dockerfile, python_version: tuple[int, int]) -> list[str]:
    problems = []
    stages = dockerfile.all("FROM")
    # `FROM ${BASE_IMAGE}`: the default is what a plain `docker build` uses, so that is what must be pinned.
    defaults = dockerfile.arg_defaults()
    images = {
        re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), item.arguments.split()[0])
        for item in stages
    }
    for image in sorted(images):
        match = PYTHON_BASE.match(image)
        if not match:
            problems.append(f"FROM {image}: use a pinned python:<major.minor.patch>-slim-<distro> base")
        elif tuple(int(part) for part in match["version"].split(".")[:2]) != python_version:
            wanted = ".".join(map(str, python_version))
            problems.append(f"FROM {image}: the lock is installed and tested on Python {wanted}")
    if len(images) > 1:
        problems.append(f"stages use different bases {sorted(images)}; the venv needs the same interpreter")
    if len(stages) < 2:
        problems.append("single stage: build in a builder stage and copy /opt/venv into the runtime stage")
    return problems


def _export_problems(export: list[str], extra: str) -> list[str]:
    problems = []
    for flag in ("--frozen", "--no-dev", "--no-emit-project"):
        if flag not in export:
            problems.append(f"`uv export` lacks {flag}")
    extras = _options(export, "--extra")
    if extras != [extra] or "--all-extras" in export:
        problems.append(f"`uv export` must select exactly --extra {extra}, found {extras or export}")
    if "--no-hashes" in export:
        problems.append("`uv export --no-hashes` drops the hashes the install must check")
    if _option(export, "--output-file") is None:
        problems.append("`uv export` must write a requirements file with --output-file")
    return problems


def _uv_install_problem(argv: list[str], requirements: str | None) -> str | None:
    """Why this ``uv pip install`` is neither the hashed lock install nor the project's wheels, or None."""
    command = " ".join(argv)
    if "--no-config" not in argv:
        return f"`{command}`: add --no-config, or pyproject's unhashed constraints join the install"
    if "--no-deps" not in argv:
        return f"`{command}`: add --no-deps, so that nothing outside the lock gets resolved"
    requirement_files = _options(argv, "--requirement") + _options(argv, "-r")
    if requirement_files:
        hashed = requirement_files == [requirements] and "--require-hashes" in argv
        return None if hashed else f"`{command}`: install the exported {requirements} with --require-hashes"
    packages = [part for part in argv[3:] if not part.startswith("-") and part != _option(argv, "--python")]
    if packages and all(PROJECT_WHEEL.match(package) for package in packages):
        return None
    return f"`{command}`: only the project's own wheels may be installed outside the lock"


def _install_problem(argv: list[str], requirements: str | None, uv_version: str | None) -> str | None:
    """Why this install command is not one of the three allowed forms, or None when it is."""
    if argv == ["pip", "install", "--no-cache-dir", f"uv=={uv_version}"]:
        return None
    if argv[:3] != ["uv", "pip", "install"]:
        return f"`{' '.join(argv)}`: install only through `uv pip install` from the exported lock"
    return _uv_install_problem(argv, requirements)


def install_problems(
    dockerfile: Dockerfile, *, extra: str, uv_version: str, python_version: tuple[int, int]
) -> list[str]:
    """Every way in which ``dockerfile`` does not install exactly the lock's ``extra``; empty when it does."""
    problems = _base_image_problems(dockerfile, python_version)
    if dockerfile.arg_defaults().get("UV_VERSION") != uv_version:
        problems.append(f"ARG UV_VERSION must be {uv_version}, the version pyproject.toml requires")
    try:
        export = uv_export_command(dockerfile)
    except LookupError as error:
        return [*problems, str(error)]
    problems += _export_problems(export, extra)
    requirements = _option(export, "--output-file")
    installs = [
        (stage, argv)
        for stage, argv in dockerfile.commands()
        if "install" in argv[:4] and argv[0] in {"pip", "pip3", "uv", "python", "python3"}
    ]
    final_stage = len(dockerfile.all("FROM")) - 1
    for stage, argv in installs:
        if stage == final_stage:
            problems.append(f"`{' '.join(argv)}`: install in the builder; the runtime stage copies /opt/venv")
        elif (problem := _install_problem(argv, requirements, uv_version)) is not None:
            problems.append(problem)
    if not any(
        item.stage == final_stage and item.arguments.startswith("--from=") and "/opt/venv" in item.arguments
        for item in dockerfile.all("COPY")
    ):
        problems.append("the runtime stage must COPY --from=<builder> /opt/venv")
    for _, argv in dockerfile.commands():
        if argv[:2] == ["uv", "sync"] or argv[:2] == ["uv", "add"] or argv[:2] == ["uv", "lock"]:
            problems.append(f"`{' '.join(argv)}`: the image must not resolve or change the lock")
    return problems

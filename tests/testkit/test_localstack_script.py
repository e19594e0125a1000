"""scripts/localstack.sh finds Python 3.13 wherever pyenv, uv or the system has it, and says what to install
when none has it.

Runs the real script (`--find-python`, which stops after the search) with bash, a PATH of stand-in
interpreters (shell scripts that answer the version check) and an empty HOME; the uv case runs the project's
pinned uv against a real Python 3.13 when this machine has one. What it cannot show: that LocalStack then
installs; the S3 tests do that (testkit/localstack.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "localstack.sh"
UV = ROOT / ".tools" / "uv-venv" / "bin" / "uv"
TOOLS = ("ls", "sort", "dirname")


def _fake_python(path: Path, *, is_313: bool) -> Path:
    """An executable that answers the script's version check like a Python 3.13 (or another version)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nexit {0 if is_313 else 1}\n")
    path.chmod(0o755)
    return path


def _find(tmp_path: Path, *bins: Path, **env: str) -> subprocess.CompletedProcess[str]:
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        if not (tools / tool).exists():
            (tools / tool).symlink_to(found)
    (tmp_path / "home").mkdir(exist_ok=True)
    base = {
        "PATH": os.pathsep.join([*map(str, bins), str(tools)]),
        "HOME": str(tmp_path / "home"),
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv-pythons"),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
    }
    bash = shutil.which("bash")
    assert bash
    return subprocess.run(
        [bash, str(SCRIPT), "--find-python"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**base, **env},
    )


def test_python313_on_path_is_found(tmp_path: Path) -> None:
    python = _fake_python(tmp_path / "bin" / "python3.13", is_313=True)
    result = _find(tmp_path, python.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(python)


def test_newest_pyenv_313_comes_first(tmp_path: Path) -> None:
    pyenv = tmp_path / "pyenv"
    _fake_python(pyenv / "versions" / "3.13.0" / "bin" / "python", is_313=True)
    newest = _fake_python(pyenv / "versions" / "3.13.10" / "bin" / "python", is_313=True)
    on_path = _fake_python(tmp_path / "bin" / "python3.13", is_313=True)
    result = _find(tmp_path, on_path.parent, PYENV_ROOT=str(pyenv))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(newest)


def test_a_pyenv_shim_that_does_not_run_is_skipped(tmp_path: Path) -> None:
    """A pyenv shim named python3.13 fails unless a 3.13 is selected; it must not be taken for one."""
    shim = _fake_python(tmp_path / "shims" / "python3.13", is_313=False)
    real = _fake_python(tmp_path / "bin" / "python3.13", is_313=True)
    result = _find(tmp_path, shim.parent, real.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(real)


def test_no_python313_anywhere_is_one_line_saying_what_to_install(tmp_path: Path) -> None:
    shim = _fake_python(tmp_path / "shims" / "python3.13", is_313=False)
    result = _find(tmp_path, shim.parent)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "no Python 3.13 found" in lines[0]
    assert "pyenv install 3.13" in lines[0]
    assert "python install 3.13" in lines[0]


def test_localstack_python_wins_and_a_wrong_one_is_refused(tmp_path: Path) -> None:
    chosen = _fake_python(tmp_path / "chosen" / "python", is_313=True)
    on_path = _fake_python(tmp_path / "bin" / "python3.13", is_313=True)
    assert _find(tmp_path, on_path.parent, LOCALSTACK_PYTHON=str(chosen)).stdout.strip() == str(chosen)
    wrong = _fake_python(tmp_path / "wrong" / "python", is_313=False)
    result = _find(tmp_path, on_path.parent, LOCALSTACK_PYTHON=str(wrong))
    assert result.returncode == 1
    assert "is not a working Python 3.13" in result.stderr


def test_uv_finds_a_313_that_pyenv_and_python313_on_path_do_not(tmp_path: Path) -> None:
    """A real Python 3.13 named only `python3`: neither pyenv nor python3.13 on PATH sees it, uv does."""
    real = subprocess.run(
        ["bash", str(SCRIPT), "--find-python"], capture_output=True, text=True, timeout=60, check=False
    )
    if real.returncode != 0 or not UV.exists():
        pytest.skip("no Python 3.13 or no pinned uv on this machine")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(real.stdout.strip())
    result = _find(tmp_path, bin_dir)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve() == Path(real.stdout.strip()).resolve()

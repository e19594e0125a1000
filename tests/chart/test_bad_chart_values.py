"""Bad chart values are refused by the real helm v4 (`helm template`) naming the key, with nothing rendered.

Each file in ``bad_chart_values/`` starts with ``# expect: <text>``, which helm's error must contain.
helm validates values against the chart's ``values.schema.json`` and runs its ``fail`` checks before it
prints anything, so a refused install leaves nothing half-applied.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "floe-platform"
CORPUS = sorted((Path(__file__).parent / "bad_chart_values").glob("*.yaml"))


def _helm() -> str:
    found = shutil.which("helm") or str(ROOT / ".tools" / "bin" / "helm")
    if not Path(found).exists():
        pytest.skip("helm v4 not installed; run `make install`")
    return found


def _expected(path: Path) -> str:
    first_line = path.read_text().split("\n", 1)[0]
    assert first_line.startswith("# expect: "), f"{path.name} must start with '# expect: <text>'"
    return first_line.removeprefix("# expect: ")


@pytest.mark.parametrize("path", CORPUS, ids=[path.stem for path in CORPUS])
def test_bad_values_are_refused_naming_the_key_and_render_nothing(path: Path) -> None:
    result = subprocess.run(
        [_helm(), "template", "floe", str(CHART), "--namespace", "floe", "--values", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0, f"{path.name} was accepted"
    assert result.stdout == "", "helm printed manifests for refused values"
    assert _expected(path) in result.stderr, result.stderr

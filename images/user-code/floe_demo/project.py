"""The demo's dbt project, alone in its module so `dagster-dbt project prepare-and-package --file` can
import it before a manifest exists (importing ``@dbt_assets`` needs the manifest already)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parent / "dbt"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def dbt_executable() -> str:
    """``dbt`` on PATH, else the one installed next to this Python (a venv used without activation)."""
    return shutil.which("dbt") or str(Path(sys.executable).parent / "dbt")


def ensure_manifest() -> Path:
    """Parse the project when its manifest is missing (dev and tests; images prepare it at build time)."""
    if not dbt_project.manifest_path.exists():
        from dagster_dbt import DbtCliResource

        DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()).cli(
            ["parse", "--quiet"], target_path=dbt_project.target_path
        ).wait()
    return dbt_project.manifest_path

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


def _sources_newer_than(manifest: Path) -> bool:
    built = manifest.stat().st_mtime
    sources = [
        path
        for path in DBT_PROJECT_DIR.rglob("*")
        if path.suffix in (".sql", ".yml", ".yaml")
        and "target" not in path.relative_to(DBT_PROJECT_DIR).parts
    ]
    return any(path.stat().st_mtime > built for path in sources)


def ensure_manifest() -> Path:
    """Parse the project when its manifest is missing or older than a model, macro or YAML file.

    For `make demo` and tests; images prepare the manifest at build time and never parse at import.
    """
    manifest = dbt_project.manifest_path
    if not manifest.exists() or _sources_newer_than(manifest):
        from dagster_dbt import DbtCliResource

        DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()).cli(
            ["parse", "--quiet"], target_path=dbt_project.target_path
        ).wait()
    return dbt_project.manifest_path

"""The demo code location, run as `make demo` runs it: real Dagster, real dbt-core with dbt-duckdb, DuckDB.

One materialization of every asset (about 20 s, most of it importing Dagster and starting dbt) is shared by
the assertions of this module. The profile is a test platform.yaml's, whose values differ from DuckDB's
defaults, so ``current_setting`` can only match if the settings were really applied.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.instance.ref import InstanceRef

from floe_platform.config.quantity import parse_quantity
from floe_platform.render.duckdb_env import derived_memory_limit

pytestmark = pytest.mark.slow  # the demo pipeline and its fixtures run dbt (tens of seconds)

PLATFORM_YAML = """
infrastructure:
  resource_profiles:
    transform:
      requests: {cpu: "1", memory: 1Gi}
      limits: {cpu: "2", memory: 3Gi}
      env:
        DUCKDB_THREADS: "3"
        DUCKDB_TEMP_DIRECTORY: "{temp}"
"""


@dataclass(frozen=True)
class DemoRun:
    exit_code: int
    output: str
    workdir: Path
    temp_directory: Path

    @property
    def catalog_file(self) -> Path:
        return self.workdir / "lake" / "catalog.ducklake"

    def catalog(self) -> duckdb.DuckDBPyConnection:
        """The demo's local DuckLake catalog, attached and in use, as the demo's own connections see it."""
        from floe_platform.dagster.catalog import (
            CatalogSettings,
            S3Settings,
            attach_catalog,
            install_bundled_extensions,
            offline_config,
        )

        conn = duckdb.connect(":memory:", config=offline_config(install_bundled_extensions()))
        no_s3 = S3Settings(None, "us-east-1", False, None, None)
        lake = self.workdir / "lake"
        attach_catalog(
            conn, CatalogSettings("lake", str(lake / "catalog.ducklake"), f"{lake / 'data'}/", no_s3)
        )
        return conn


@contextlib.contextmanager
def restored_environment() -> Iterator[None]:
    """The runner points DAGSTER_HOME and DUCKDB_* at its workdir; put the test process's env back."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_demo(workdir: Path, platform_file: Path) -> tuple[int, str]:
    from floe_demo import run

    output = io.StringIO()
    with restored_environment(), contextlib.redirect_stdout(output):
        code = run.main(["--workdir", str(workdir), "--platform", str(platform_file)])
    return code, output.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    root = tmp_path_factory.mktemp("demo")
    temp_directory = root / "spill"
    platform_file = root / "platform.yaml"
    platform_file.write_text(PLATFORM_YAML.replace("{temp}", str(temp_directory)))
    code, output = run_demo(root / "work", platform_file)
    return DemoRun(code, output, root / "work", temp_directory)


def _as_duckdb_reports(memory_limit: str) -> str:
    with duckdb.connect(":memory:", config={"memory_limit": memory_limit}) as conn:
        return str(conn.execute("SELECT current_setting('memory_limit')").fetchone()[0])  # type: ignore[index]


@pytest.mark.slow
def test_demo_materializes_every_asset_and_every_partition(demo: DemoRun) -> None:
    """Every asset of the code location has a materialization, partitioned ones in every partition."""
    from floe_demo.definitions import defs

    assert demo.exit_code == 0, demo.output
    home = InstanceRef.from_dir(str(demo.workdir / "dagster_home"))
    with dg.DagsterInstance.from_ref(home) as instance:
        for key in defs.resolve_asset_graph().get_all_asset_keys():
            spec = defs.resolve_assets_def(key).specs_by_key[key]
            if spec.partitions_def is None:
                assert instance.get_latest_materialization_event(key) is not None, key
            else:
                expected = set(spec.partitions_def.get_partition_keys())
                assert instance.get_materialized_partitions(key) == expected, key


@pytest.mark.slow
def test_demo_prints_a_table_of_assets_rows_and_seconds_and_the_warehouse(demo: DemoRun) -> None:
    """The runner's last lines: one row per asset with its real row count, then the warehouse path."""
    lines = demo.output.splitlines()
    header = next(
        i for i, line in enumerate(lines) if line.split()[:4] == ["asset", "table", "rows", "seconds"]
    )
    rows = {
        line.split()[0]: line.split() for line in lines[header + 1 :] if line and not line.startswith(" ")
    }
    assert rows["silver/stg_orders"][1:3] == ["silver.stg_orders", "5,000"]
    assert rows["orders"][1] == "bronze.orders"
    assert rows["regions"][1] == "public.regions"
    assert rows["regional_sales"][2] == "90"
    assert f"catalog lake: metadata {demo.catalog_file.resolve()}" in lines
    assert rows["order_amount_histogram"][1] == "(blob)"


@pytest.mark.slow
def test_demo_leaves_the_catalog_file_its_data_files_and_the_blob_in_the_workdir(demo: DemoRun) -> None:
    """After `make demo` the workdir shows the catalog: its metadata file, Parquet files, and the blob."""
    assert demo.catalog_file.is_file()
    assert list((demo.workdir / "lake" / "data" / "bronze" / "orders").glob("*.parquet"))
    # dbt's small gold table may stay inlined in the catalog's metadata (DuckLake's data inlining), so it
    # is read through the catalog rather than looked for as a Parquet file.
    with demo.catalog() as conn:
        (rows,) = conn.execute("SELECT count(*) FROM gold.customer_revenue").fetchone() or (0,)
    assert rows > 0
    assert (demo.workdir / "blobs" / "order_amount_histogram").is_file()


@pytest.mark.slow
def test_profile_duckdb_settings_are_applied_in_python_asset_and_dbt_model(demo: DemoRun) -> None:
    """current_setting() inside the Python asset and inside the dbt model equals the profile's values."""
    expected_memory = _as_duckdb_reports(derived_memory_limit(int(parse_quantity("3Gi"))))
    with demo.catalog() as conn:
        python = conn.execute("SELECT * FROM ops.python_duckdb_settings").fetchall()
        dbt = conn.execute("SELECT * FROM ops.dbt_duckdb_settings").fetchall()
    assert [tuple(map(str, row)) for row in python] == [(expected_memory, "3", str(demo.temp_directory))]
    assert [tuple(map(str, row)) for row in dbt] == [(expected_memory, "3", str(demo.temp_directory))]


@pytest.mark.slow
def test_schema_rules_and_column_selection_land_where_the_reference_says(demo: DemoRun) -> None:
    """key_prefix, metadata["schema"], the I/O manager's schema and the default each pick a schema."""
    with demo.catalog() as conn:
        tables = set(
            conn.execute(
                "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = 'lake'"
            ).fetchall()
        )
        columns = conn.execute("SELECT * FROM public.customer_regions ORDER BY region").df()
        partitions = conn.execute(
            "SELECT count(DISTINCT region), count(DISTINCT event_date::DATE) "
            "FROM bronze.regional_daily_events"
        ).fetchone()
    for table in ("bronze.customers", "bronze.orders", "bronze.events", "public.regions"):
        assert (table,) in tables
    assert list(columns.columns) == ["region", "customers"]
    assert int(columns["customers"].sum()) == 500
    assert partitions == (2, 3)


@pytest.mark.slow
def test_demo_exits_1_with_the_failing_assets_error(tmp_path: Path, repo_root: Path) -> None:
    """A catalog file DuckDB cannot open (a directory) fails the first asset; the runner says which."""
    workdir = tmp_path / "work"
    (workdir / "lake" / "catalog.ducklake").mkdir(parents=True)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code, _ = run_demo(workdir, repo_root / "platform-config/platform/local/platform.yaml")
    assert code == 1
    assert "failed:" in stderr.getvalue()
    assert "cannot attach the catalog 'lake'" in stderr.getvalue()
    assert "catalog.ducklake" in stderr.getvalue()

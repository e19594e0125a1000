"""`make demo`: run the whole demo pipeline in-process on embedded defaults and print what it built.

The tables go to a local DuckLake catalog (the same format run pods share through PostgreSQL and S3):
metadata in ``.demo/lake/catalog.ducklake``, Parquet files under ``.demo/lake/data/``; the blob asset
goes to ``.demo/blobs/``. A FLOE_CATALOG_METADATA already in the env (a PostgreSQL catalog) is used
instead. ``DAGSTER_HOME`` is ``.demo/dagster_home`` (sqlite), and the DuckDB settings are those of the
``transform`` profile of ``platform-config/platform/local/platform.yaml``, applied to the Python assets and
to dbt through the same DUCKDB_* variables a run pod gets. Exit status 1 with the failing asset's error
when anything fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PLATFORM = Path("platform-config/platform/local/platform.yaml")
DEFAULT_PROFILE = "transform"
# Dagster's console logger prints every event at DEBUG; the demo prints its own progress instead.
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class AssetRow:
    asset: str
    table: str
    rows: int
    seconds: float


def profile_duckdb_env(platform_file: Path, profile_name: str) -> dict[str, str]:
    """The DUCKDB_* variables a run pod of ``profile_name`` gets (explicit or derived), as rendered."""
    from floe_platform.config import load_platform
    from floe_platform.render.duckdb_env import DUCKDB_ENV_NAMES
    from floe_platform.render.podtemplate import container_env

    profiles = load_platform(platform_file).infrastructure.resource_profiles
    if profile_name not in profiles:
        raise SystemExit(
            f"{platform_file}: no resource profile {profile_name!r} (have: {', '.join(profiles)})"
        )
    env = {entry["name"]: entry["value"] for entry in container_env(profiles[profile_name])}
    return {name: env[name] for name in DUCKDB_ENV_NAMES}


def local_catalog_env(workdir: Path) -> dict[str, str]:
    """The catalog env of ``make demo``: a DuckLake catalog in a file and a folder under ``workdir``."""
    from floe_platform.render.catalog_env import BLOB_PATH, CATALOG_DATA_PATH, CATALOG_METADATA, CATALOG_NAME

    lake = (workdir / "lake").resolve()
    lake.mkdir(parents=True, exist_ok=True)
    return {
        CATALOG_NAME: "lake",
        CATALOG_METADATA: str(lake / "catalog.ducklake"),
        CATALOG_DATA_PATH: f"{lake / 'data'}/",
        BLOB_PATH: str((workdir / "blobs").resolve()),
    }


def prepare_environment(workdir: Path, duckdb_env: Mapping[str, str], scale: int) -> Path:
    """Point Dagster, DuckDB and dbt at ``workdir``, the catalog and the profile's settings; returns the
    fallback warehouse file (used only by a process without a catalog)."""
    from floe_platform.render.catalog_env import CATALOG_METADATA

    warehouse = (workdir / "warehouse.duckdb").resolve()
    dagster_home = (workdir / "dagster_home").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_file = dagster_home / "dagster.yaml"
    if not instance_file.exists():  # sqlite storage is the default; say so, and keep the demo offline
        instance_file.write_text("telemetry:\n  enabled: false\n")
    Path(duckdb_env["DUCKDB_TEMP_DIRECTORY"]).mkdir(parents=True, exist_ok=True)
    os.environ.update(duckdb_env)
    if not os.environ.get(CATALOG_METADATA):
        os.environ.update(local_catalog_env(workdir))
    os.environ.update(
        {"DAGSTER_HOME": str(dagster_home), "DUCKDB_DATABASE": str(warehouse), "FLOE_DEMO_SCALE": str(scale)}
    )
    return warehouse


def _say(message: str) -> None:
    print(message, flush=True)


def materialize_all(
    instance: Any, scale: int, warehouse: Path, tags: Mapping[str, str] | None = None
) -> list[Any]:
    """Every asset: one run for the unpartitioned ones, one run per partition of the partitioned ones."""

    from floe_demo import definitions
    from floe_demo.rightsizing import measured_materialize

    resources = definitions.build_resources(str(warehouse), scale)
    all_assets = [
        *definitions.UNPARTITIONED_ASSETS,
        *definitions.PER_STEP_ASSETS,
        *definitions.PARTITIONED_ASSETS,
    ]
    plans: list[tuple[str, Sequence[Any], str | None]] = [
        ("bronze assets and dbt models", definitions.UNPARTITIONED_ASSETS, None),
        # per_step_job's own Python step (in-process here: one process, one set of DUCKDB_* values)
        ("the per-step job's light Python step", definitions.PER_STEP_ASSETS, None),
    ]
    for partitioned in definitions.PARTITIONED_ASSETS:
        partitions = partitioned.partitions_def
        assert partitions is not None
        for key in partitions.get_partition_keys():
            plans.append((f"{partitioned.key.to_user_string()} [{key}]", [partitioned], key))
    results = []
    for label, selection, partition_key in plans:
        _say(f"  materializing {label} ...")
        started = time.perf_counter()
        result = measured_materialize(  # dg.materialize, measured for `floe rightsize`
            all_assets,
            tags=dict(tags or {}),
            selection=selection,
            partition_key=partition_key,
            resources=resources,
            instance=instance,
            run_config=QUIET_RUN,
            raise_on_error=False,
        )
        if not result.success:
            raise DemoFailed(_failure_text(result))
        _say(f"  done in {time.perf_counter() - started:.1f} s")
        results.append(result)
    return results


class DemoFailed(Exception):
    """A step failed; the message holds each failed step and its error."""


def _failure_text(result: Any) -> str:
    lines = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            lines.append(f"{event.step_key} failed: {error.message.strip() if error else 'unknown error'}")
    return "\n".join(lines) or "the run failed before any step ran"


def summarize(results: Sequence[Any], warehouse: Path) -> list[AssetRow]:
    """Asset, table, rows and seconds, from the materialization events and the catalog itself."""
    from floe_platform.dagster.resources import connect_to_warehouse, connection_config

    seconds: dict[str, float] = {}
    step_seconds: dict[str, float] = {}
    step_of_asset: dict[str, str] = {}
    for result in results:
        for event in result.all_events:
            if event.is_step_success:
                step_seconds[event.step_key] = step_seconds.get(event.step_key, 0.0) + (
                    event.event_specific_data.duration_ms / 1000
                )
            if event.is_step_materialization:
                materialization = event.step_materialization_data.materialization
                asset = materialization.asset_key.to_user_string()
                duration = materialization.metadata.get("Execution Duration")
                if duration is not None:
                    seconds[asset] = seconds.get(asset, 0.0) + float(duration.value)
                else:
                    step_of_asset[asset] = event.step_key
    for asset, step in step_of_asset.items():
        seconds.setdefault(asset, step_seconds.get(step, 0.0))
    rows: list[AssetRow] = []
    with connect_to_warehouse(str(warehouse), connection_config()) as conn:
        listed = conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
        for asset in sorted(seconds):
            table = table_of_asset(asset, listed)
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if table else 0  # type: ignore[index]
            rows.append(AssetRow(asset, table or "(blob)", int(count), seconds[asset]))
    return rows


def table_of_asset(asset: str, tables: Sequence[tuple[str, str]]) -> str:
    """``schema.table`` of an asset: its key's last two parts, else the one table named like its last part."""
    parts = asset.split("/")
    qualified = {f"{schema}.{name}" for schema, name in tables}
    if ".".join(parts[-2:]) in qualified:
        return ".".join(parts[-2:])
    named = [f"{schema}.{name}" for schema, name in tables if name == parts[-1]]
    return named[0] if len(named) == 1 else ""


def print_table(rows: Sequence[AssetRow], warehouse: Path) -> None:
    header = ("asset", "table", "rows", "seconds")
    widths = [
        max(len(header[0]), *(len(r.asset) for r in rows)),
        max(len(header[1]), *(len(r.table) for r in rows)),
    ]
    _say("")
    _say(f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]:>9}  {header[3]:>7}")
    for row in rows:
        _say(f"{row.asset:<{widths[0]}}  {row.table:<{widths[1]}}  {row.rows:>9,}  {row.seconds:>7.2f}")
    _say("")
    from floe_platform.dagster.catalog import blob_path_from_env, catalog_from_env

    catalog = catalog_from_env()
    if catalog is None:
        _say(f"warehouse: {warehouse}")
    else:
        _say(f"catalog {catalog.name}: metadata {catalog.metadata}")
        _say(f"catalog {catalog.name}: data files {catalog.data_path}")
    _say(f"blobs: {blob_path_from_env()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m floe_demo.run", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(".demo"))
    parser.add_argument("--platform", type=Path, default=DEFAULT_PLATFORM)
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--scale", type=int, default=1, help="data size: 1 for the demo, larger to benchmark")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    duckdb_env = profile_duckdb_env(args.platform, args.profile)
    _say(
        f"floe demo: profile {args.profile!r} of {args.platform}: "
        + ", ".join(f"{k}={v}" for k, v in duckdb_env.items())
    )
    warehouse = prepare_environment(args.workdir, duckdb_env, args.scale)

    import dagster as dg

    from floe_demo.project import ensure_manifest
    from floe_demo.rightsizing import profile_tags, rightsizing_table

    _say("  preparing the dbt manifest ...")
    ensure_manifest()
    _say("  loading definitions ...")
    with dg.DagsterInstance.get() as instance:
        try:
            results = materialize_all(
                instance, args.scale, warehouse, profile_tags(args.platform, args.profile)
            )
        except DemoFailed as failure:
            print(f"floe demo failed:\n{failure}", file=sys.stderr)
            return 1
        rightsizing = rightsizing_table(instance, [result.run_id for result in results], args.platform)
    print_table(summarize(results, warehouse), warehouse)
    _say(f"\nright-sizing of these runs (`floe rightsize` reads any instance):\n{rightsizing}")
    _say(f"total: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

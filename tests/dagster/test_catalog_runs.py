"""Run pods share one catalog: each run is a process of its own with only its PodTemplate's env.

Real: PostgreSQL 15 (Debian's server, started by the test session) holds DuckLake's metadata; open-source
LocalStack on the host holds the Parquet data files and the blob; DuckDB 1.5.5 with the ducklake, postgres
and httpfs extensions from their PyPI packages; dagster 1.13 and dbt-core with dbt-duckdb, running the demo
code location. The env of each process is the one our renderer writes into the ``transform`` PodTemplate,
with its secretKeyRefs resolved as the kubelet would; each process has its own HOME, TMPDIR, dbt target
and DuckDB temp directory, so no local file is shared: what one run wrote, the next sees only through the
catalog. Not shown here: a real kubelet and container (the pod spec on a real API server:
tests/dagster/test_launcher_on_apiserver.py::test_chart_catalog_env_reaches_the_run_pods_container).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from testkit.lakehouse import create_bucket, keys_under, lakehouse_platform_yaml, run_pod
from testkit.postgres import Postgres

pytestmark = pytest.mark.slow  # each stand-in run pod imports Dagster; the dbt one starts dbt


@dataclass(frozen=True)
class Lakehouse:
    platform_yaml: str
    endpoint: str
    bucket: str
    root: Path

    def run_pod(self, step: str) -> dict[str, Any]:
        """One stand-in run pod of ``step`` with the PodTemplate's env only (testkit/run_pod.py)."""
        return run_pod(self.platform_yaml, step, self.root / f"pod-{step}-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def lakehouse(
    postgres_server: Postgres, localstack_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Lakehouse:
    database = f"catalog_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(database)
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    create_bucket(localstack_endpoint, bucket)
    root = tmp_path_factory.mktemp("run-pods")
    return Lakehouse(
        lakehouse_platform_yaml(postgres_server, localstack_endpoint, database, bucket),
        localstack_endpoint,
        bucket,
        root,
    )


@pytest.fixture(scope="module")
def bronze_run(lakehouse: Lakehouse) -> dict[str, Any]:
    return lakehouse.run_pod("bronze")


@pytest.fixture(scope="module")
def dbt_run(lakehouse: Lakehouse, bronze_run: dict[str, Any]) -> dict[str, Any]:
    return lakehouse.run_pod("dbt")


def test_first_run_pod_materializes_bronze_into_the_catalog_on_s3(
    lakehouse: Lakehouse, bronze_run: dict[str, Any]
) -> None:
    """The bronze run succeeds and its tables' Parquet files are on S3 under the catalog's data prefix."""
    assert bronze_run["success"], bronze_run["failures"] or bronze_run["stderr"][-3000:]
    assert {"bronze/customers", "orders", "events"} <= set(bronze_run["materialized"])
    data_files = keys_under(lakehouse.endpoint, lakehouse.bucket, "lake/")
    for table in ("bronze/customers/", "bronze/orders/", "bronze/events/"):
        assert any(key.startswith(f"lake/{table}") and key.endswith(".parquet") for key in data_files), table


def test_next_run_pod_runs_dbt_on_bronze_through_the_catalog(dbt_run: dict[str, Any]) -> None:
    """The dbt run (another process, no shared file) reads bronze through the catalog, builds silver, gold."""
    assert dbt_run["success"], dbt_run["failures"] or dbt_run["stderr"][-3000:]
    assert {"silver/stg_orders", "gold/customer_revenue", "gold/region_activity"} <= set(
        dbt_run["materialized"]
    )


def test_third_run_pod_reads_gold_that_matches_bronze(lakehouse: Lakehouse, dbt_run: dict[str, Any]) -> None:
    """A third process sees gold in the catalog, built from exactly the bronze rows the first run wrote."""
    assert dbt_run["success"]
    gold = lakehouse.run_pod("read-gold")
    assert gold["returncode"] == 0, gold["stderr"][-3000:]
    assert gold["database"] == "lake"
    assert gold["customer_revenue_rows"] == 500
    assert gold["bronze_orders"][0] == 5000
    # every order belongs to a demo customer, so gold's revenue is bronze's total
    assert gold["revenue"] == pytest.approx(gold["bronze_orders"][1])
    assert gold["region_activity_rows"] > 0


def test_blob_asset_round_trips_through_s3(lakehouse: Lakehouse, bronze_run: dict[str, Any]) -> None:
    """The blob asset's pickle is on S3 under the blob prefix, and another process loads the same value."""
    assert bronze_run["success"]
    assert "order_amount_histogram" in bronze_run["materialized"]
    assert keys_under(lakehouse.endpoint, lakehouse.bucket, "blobs/") == ["blobs/order_amount_histogram"]
    loaded = lakehouse.run_pod("blob")
    assert loaded["returncode"] == 0, loaded["stderr"][-3000:]
    from floe_demo import data

    counts, _ = np.histogram(data.orders(1)["amount"].to_numpy(), bins=10)
    assert loaded["histogram"]["counts"] == [float(c) for c in counts]

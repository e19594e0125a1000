"""The catalog's metadata connection carries ``catalog.database.params`` to PostgreSQL.

Real: PostgreSQL 15 (Debian's server, the test session's) and open-source LocalStack, DuckDB 1.5.5 with the
bundled ducklake/postgres/httpfs extensions. The env is the one our renderer writes into the PodTemplate
for a platform.yaml with params, with its secretKeyRefs resolved; PostgreSQL itself reports the
connection's application_name (pg_stat_activity), so the param went through DuckLake and libpq.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import pytest

from floe_platform.dagster.catalog import (
    attach_catalog,
    catalog_from_env,
    install_bundled_extensions,
    offline_config,
)
from testkit.lakehouse import DATABASE_SECRET, create_bucket, lakehouse_platform_yaml, run_pod_env
from testkit.postgres import Postgres

pytestmark = pytest.mark.slow  # loads DuckDB's extensions and talks to PostgreSQL and LocalStack

APPLICATION = "floe_catalog_probe"


def test_libpq_params_reach_the_catalogs_postgresql_connection(
    postgres_server: Postgres, localstack_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = f"catalog_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(database)
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    create_bucket(localstack_endpoint, bucket)
    password_line = f"    password: {{secret_name: {DATABASE_SECRET}, key: password}}\n"
    platform_yaml = lakehouse_platform_yaml(postgres_server, localstack_endpoint, database, bucket).replace(
        password_line,
        f'    params: {{application_name: {APPLICATION}, connect_timeout: "5"}}\n' + password_line,
    )
    env = run_pod_env(platform_yaml, "transform", tmp_path / "pod")
    assert f"application_name={APPLICATION} connect_timeout=5" in env["FLOE_CATALOG_METADATA"]
    for name, value in env.items():
        if name.startswith(("FLOE_", "PG")):
            monkeypatch.setenv(name, value)
    catalog = catalog_from_env()
    assert catalog is not None

    with duckdb.connect(":memory:", config=offline_config(install_bundled_extensions())) as conn:
        attach_catalog(conn, catalog)
        conn.execute("CREATE TABLE probe AS SELECT 1 AS answer")
        sessions = postgres_server.psql(
            f"SELECT application_name FROM pg_stat_activity WHERE datname = '{database}'"
        )
        assert conn.execute("SELECT answer FROM probe").fetchone() == (1,)
    assert APPLICATION in sessions.split()

"""DuckDB for Dagster assets, configured by the run pod's DUCKDB_* variables.

The profile's PodTemplate sets ``DUCKDB_MEMORY_LIMIT``, ``DUCKDB_THREADS`` and ``DUCKDB_TEMP_DIRECTORY``;
``FloeDuckDBResource`` and ``FloeDuckDBPandasIOManager`` apply them to every connection they open, so
Python assets and I/O managers obey the profile just as dbt-duckdb does (its profile reads the same
variables). Both build their configuration with ``connection_config`` below, because DuckDB refuses a
second connection to a file in one process with a different configuration.

With a shared catalog in the env (``floe_platform.dagster.catalog``), every connection is an in-memory
DuckDB that ATTACHes the catalog and USEs it: tables land in the catalog, not in ``database``, and
extensions load offline. The I/O manager writes each output in one transaction, so a failed write (the
catalog database or S3 down) leaves the table as it was, and says so.

Opening a file another process is writing fails with a lock error. Dagster's stock backoff retries at
fixed, identical delays, so writers that collided once collide again (dagster#16248, #19068); here the
delay is exponential with full jitter. Every retry is logged as a warning of this module's logger
(``LOCK_RETRY_MESSAGE``).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import duckdb
from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]
from dagster import (
    FilesystemIOManager,
    InitResourceContext,
    InputContext,
    OutputContext,
)
from dagster._core.storage.db_io_manager import DbIOManager, TableSlice
from dagster_aws.s3 import S3PickleIOManager, S3Resource
from dagster_duckdb import DuckDBResource
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager
from pydantic import Field

from floe_platform.dagster.catalog import (
    CatalogSettings,
    CatalogUnavailable,
    attach_catalog,
    blob_path_from_env,
    catalog_from_env,
    describe,
    extension_directory,
    install_bundled_extensions,
    offline_config,
    s3_from_env,
)
from floe_platform.render.duckdb_env import MEMORY_LIMIT, TEMP_DIRECTORY, THREADS

LOGGER = logging.getLogger(__name__)
LOCK_RETRY_MESSAGE = "DuckDB %s is locked (%s); retry %d/%d in %.2f s"
SETTING_OF_ENV = {MEMORY_LIMIT: "memory_limit", THREADS: "threads", TEMP_DIRECTORY: "temp_directory"}
USER_AGENT = "floe-platform"


def is_lock_contention(error: Exception) -> bool:
    """Another process holds the file's write lock: an IOException "Could not set lock on file ...".

    Other IOExceptions (a missing directory, a path that is a directory) and ConnectionExceptions (a
    configuration mismatch) will not go away by waiting, so they are raised at once.
    """
    return isinstance(error, duckdb.IOException) and "could not set lock on file" in str(error).lower()


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """DuckDB settings named by the DUCKDB_* variables that are set (empty values are ignored)."""
    environ = os.environ if environ is None else environ
    return {setting: environ[name] for name, setting in SETTING_OF_ENV.items() if environ.get(name)}


def connection_config(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The one configuration used for every connection: offline extensions, the environment's settings,
    then ``overrides``."""
    return {
        "custom_user_agent": USER_AGENT,
        **offline_config(extension_directory(environ)),
        **settings_from_env(environ),
        **(overrides or {}),
    }


def backoff_delays(max_retries: int, base_seconds: float, cap_seconds: float) -> Iterator[float]:
    """Full-jitter exponential backoff: the n-th delay is uniform in [0, min(cap, base * 2**n)]."""
    for attempt in range(max_retries):
        yield random.uniform(0, min(cap_seconds, base_seconds * 2**attempt))


def connect(
    database: str,
    config: Mapping[str, Any],
    *,
    read_only: bool = False,
    max_retries: int = 10,
    base_seconds: float = 0.05,
    cap_seconds: float = 5.0,
) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` that waits out another writer's lock with jittered exponential backoff."""
    delays = backoff_delays(max_retries, base_seconds, cap_seconds)
    attempt = 0
    while True:
        try:
            return duckdb.connect(database=database, read_only=read_only, config=dict(config))
        except duckdb.IOException as error:
            delay = next(delays, None)
            if delay is None or not is_lock_contention(error):
                raise
            attempt += 1
            LOGGER.warning(
                LOCK_RETRY_MESSAGE,
                database,
                error,
                attempt,
                max_retries,
                delay,
            )
            time.sleep(delay)


_ATTACHED: dict[tuple[Any, ...], duckdb.DuckDBPyConnection] = {}
"""One in-memory DuckDB per process, catalog and configuration with the catalog attached: loading the
extensions and attaching take about a second, so every later connection is a cursor of it (a connection
of its own to the same instance, with its own transactions)."""


def connect_to_warehouse(
    database: str, config: Mapping[str, Any], *, max_retries: int = 10
) -> duckdb.DuckDBPyConnection:
    """A connection to where the tables live: the catalog the env names (attached and in use), else
    ``database``."""
    catalog = catalog_from_env()
    if catalog is None:
        return connect(database, config, max_retries=max_retries)
    if not catalog.metadata.startswith("postgres:"):
        # A catalog whose metadata is a local DuckDB file (make demo) allows one process at a time (dbt runs
        # in another): attach it per connection, so closing the connection lets the file go.
        conn = _attached_instance(catalog, config)
        conn.execute(f"USE {catalog.name}")
        return conn
    key = (catalog, tuple(sorted((name, str(value)) for name, value in config.items())))
    instance = _ATTACHED.get(key)
    if instance is None:
        instance = _ATTACHED[key] = _attached_instance(catalog, config)
    conn = instance.cursor()
    conn.execute(f"USE {catalog.name}")
    return conn


def _attached_instance(catalog: CatalogSettings, config: Mapping[str, Any]) -> duckdb.DuckDBPyConnection:
    install_bundled_extensions(Path(config["extension_directory"]))
    instance = duckdb.connect(":memory:", config=dict(config))
    try:
        attach_catalog(instance, catalog, use=False)
    except BaseException:
        instance.close()
        raise
    return instance


class FloeDuckDBResource(DuckDBResource):
    """``DuckDBResource`` that applies the DUCKDB_* settings, attaches the shared catalog when the env
    names one, and retries lock contention with jitter."""

    max_retries: int = Field(default=10, description="Lock-contention retries before giving up.")

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection in DuckDB's autocommit mode: each statement commits on its own."""
        conn = connect_to_warehouse(
            self.database, connection_config(self.connection_config), max_retries=self.max_retries
        )
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection whose statements commit together at the end of the block, or not at all.

        ``what`` says what the block writes (e.g. ``"bronze.orders"``): a DuckDB error (the catalog's
        database or S3 gone) rolls everything back and fails with what, where and that nothing was kept.
        """
        with self.get_connection() as conn, one_transaction(conn, lambda error: _failed_write(what, error)):
            yield conn


class FloeDuckDbClient(DuckDbClient):
    """The I/O manager's client: the resource's configuration, catalog and backoff, and one transaction
    per output, so that a failed write leaves no half-written table behind."""

    @staticmethod
    @contextmanager
    def connect(context: OutputContext | InputContext, table_slice: TableSlice) -> Iterator[Any]:
        resource_config: Mapping[str, Any] = context.resource_config or {}
        conn = connect_to_warehouse(
            str(resource_config["database"]), connection_config(resource_config.get("connection_config"))
        )
        try:
            with one_transaction(conn, lambda error: _failed(context, table_slice, error)):
                yield conn
        finally:
            conn.close()

    @staticmethod
    def delete_table_slice(context: OutputContext, table_slice: TableSlice, connection: Any) -> None:
        # DuckDbClient tries the DELETE and ignores "no such table"; inside a transaction a failed
        # statement aborts the whole transaction, so ask first.
        if table_exists(connection, table_slice.schema, table_slice.table):
            DuckDbClient.delete_table_slice(context, table_slice, connection)


def table_exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


@contextmanager
def one_transaction(
    conn: duckdb.DuckDBPyConnection, failure: Callable[[duckdb.Error], Exception]
) -> Iterator[None]:
    """BEGIN, then COMMIT after the block; on any error ROLLBACK, and a DuckDB error becomes ``failure``."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
        conn.execute("COMMIT")
    except duckdb.Error as error:
        _rollback(conn)
        raise failure(error) from error
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    # A failure means the transaction went with its connection (or never opened): nothing was committed.
    with suppress(duckdb.Error):
        conn.execute("ROLLBACK")


def _where() -> str:
    catalog = catalog_from_env()
    return describe(catalog) if catalog else "the DuckDB warehouse"


def _failed_write(what: str, error: duckdb.Error) -> Exception:
    return CatalogUnavailable(f"writing {what} to {_where()} failed and was rolled back: {error}")


def _failed(context: OutputContext | InputContext, table_slice: TableSlice, error: duckdb.Error) -> Exception:
    """The error a step fails with: which table, which catalog, and that nothing was committed."""
    table = f"{table_slice.schema}.{table_slice.table}"
    if isinstance(context, OutputContext):
        return _failed_write(table, error)
    return CatalogUnavailable(f"reading {table} from {_where()} failed: {error}")


class FloeDuckDBPandasIOManager(DuckDBPandasIOManager):
    """``DuckDBPandasIOManager`` whose connections get the DUCKDB_* settings and jittered backoff."""

    def create_io_manager(self, context: InitResourceContext) -> DbIOManager:
        return DbIOManager(
            db_client=FloeDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="FloeDuckDBPandasIOManager",
        )


def current_settings(conn: duckdb.DuckDBPyConnection, names: Sequence[str]) -> dict[str, str]:
    """``current_setting(name)`` of each name, as DuckDB reports it (e.g. memory_limit '7.4 GiB')."""
    return {name: str(conn.execute(f"SELECT current_setting('{name}')").fetchone()[0]) for name in names}  # type: ignore[index]


class FloeS3Resource(S3Resource):
    """``S3Resource`` that can address buckets path-style (MinIO, LocalStack behind a Service name)."""

    path_style: bool = Field(default=False, description="http://host/bucket/key instead of bucket.host.")

    def get_client(self) -> Any:
        config = BotoConfig(
            s3={"addressing_style": "path" if self.path_style else "auto"},
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
        )
        session = boto3.session.Session(
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            region_name=self.region_name,
        )
        return session.client("s3", endpoint_url=self.endpoint_url, use_ssl=self.use_ssl, config=config)


def s3_resource_from_env(environ: Mapping[str, str] | None = None) -> FloeS3Resource:
    """The catalog's S3 storage, as the run pod's env describes it (FLOE_S3_*)."""
    s3 = s3_from_env(environ)
    return FloeS3Resource(
        endpoint_url=s3.endpoint,
        region_name=s3.region,
        use_ssl=not (s3.endpoint or "").startswith("http://"),
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
        path_style=s3.path_style,
    )


def blob_io_manager(
    local_dir: str, environ: Mapping[str, str] | None = None
) -> S3PickleIOManager | FilesystemIOManager:
    """The ``blob`` I/O manager: pickles on the platform's S3 when FLOE_BLOB_PATH is an s3:// URL (the
    run pods'), else files under FLOE_BLOB_PATH or ``local_dir`` (``make demo``)."""
    path = blob_path_from_env(environ)
    if path and path.startswith("s3://"):
        bucket, _, prefix = path.removeprefix("s3://").partition("/")
        return S3PickleIOManager(
            s3_resource=s3_resource_from_env(environ), s3_bucket=bucket, s3_prefix=prefix.rstrip("/")
        )
    return FilesystemIOManager(base_dir=path or local_dir)

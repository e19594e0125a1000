"""DuckDB for Dagster assets, configured by the run pod's DUCKDB_* variables.

The profile's PodTemplate sets ``DUCKDB_MEMORY_LIMIT``, ``DUCKDB_THREADS`` and ``DUCKDB_TEMP_DIRECTORY``;
``FloeDuckDBResource`` and ``FloeDuckDBPandasIOManager`` apply them to every connection they open, so
Python assets and I/O managers obey the profile just as dbt-duckdb does (its profile reads the same
variables). Both build their configuration with ``connection_config`` below, because DuckDB refuses a
second connection to a file in one process with a different configuration.

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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
from dagster import InitResourceContext, InputContext, OutputContext
from dagster._core.storage.db_io_manager import DbIOManager, TableSlice
from dagster_duckdb import DuckDBResource
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager
from pydantic import Field

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
    """The one configuration used for every connection: the environment's settings, then ``overrides``."""
    return {"custom_user_agent": USER_AGENT, **settings_from_env(environ), **(overrides or {})}


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


class FloeDuckDBResource(DuckDBResource):
    """``DuckDBResource`` that applies the DUCKDB_* settings and retries lock contention with jitter."""

    max_retries: int = Field(default=10, description="Lock-contention retries before giving up.")

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = connect(self.database, connection_config(self.connection_config), max_retries=self.max_retries)
        try:
            yield conn
        finally:
            conn.close()


class FloeDuckDbClient(DuckDbClient):
    """The I/O manager's client, connecting with the same configuration and backoff as the resource."""

    @staticmethod
    @contextmanager
    def connect(context: OutputContext | InputContext, _: TableSlice) -> Iterator[Any]:
        resource_config: Mapping[str, Any] = context.resource_config or {}
        conn = connect(
            str(resource_config["database"]), connection_config(resource_config.get("connection_config"))
        )
        try:
            yield conn
        finally:
            conn.close()


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

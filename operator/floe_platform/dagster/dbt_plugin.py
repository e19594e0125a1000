"""A dbt-duckdb plugin that gives dbt's connections what the run pod's DuckDB resource gets.

The demo's profiles.yml lists it (``plugins: [{module: floe_platform.dagster.dbt_plugin}]``) and attaches
the catalog itself (``attach:`` with the FLOE_CATALOG_* env), so that dbt knows the catalog as its
database. This plugin runs before that ATTACH on every connection dbt opens:

- ``update_connection_config``: extensions load offline from the bundled packages (installed into the
  extension directory first when missing), exactly as in ``floe_platform.dagster.catalog``;
- ``configure_connection``: the S3 secret of the catalog's storage, from the FLOE_S3_* env (or the local
  data folder, created).

Without FLOE_CATALOG_METADATA (``dbt parse``, or a platform without a catalog) it only sets the offline
extension settings.
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from floe_platform.dagster.catalog import (
    catalog_from_env,
    configure_storage,
    extension_directory,
    install_bundled_extensions,
    offline_config,
)


class Plugin(BasePlugin):
    """dbt-duckdb's plugin entry point (the class must be called ``Plugin``)."""

    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        directory = extension_directory()
        if catalog_from_env() is not None:
            install_bundled_extensions(directory)
        config.update(offline_config(directory))

    def configure_connection(self, conn: Any) -> None:
        catalog = catalog_from_env()
        if catalog is not None:
            configure_storage(conn, catalog)


__all__ = ["Plugin"]

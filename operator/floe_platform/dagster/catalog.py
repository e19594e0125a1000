"""The shared lakehouse catalog, attached to every DuckDB connection of a run from the run pod's env.

The catalog is DuckLake: its metadata (tables, schemas, snapshots) lives in a PostgreSQL database and its
data in Parquet files on S3; locally (``make demo``) the metadata is a DuckDB file and the data a folder.
The renderer writes the env (``floe_platform.render.catalog_env``); the DuckDB resource, the DuckDB I/O
manager and the dbt-duckdb plugin (``floe_platform.dagster.dbt_plugin``) all call ``attach_catalog``.

Extensions load offline. DuckDB would download ducklake, postgres and httpfs at run time; here they come
from the ``duckdb-extension-*`` packages of the lock, are installed once into a local extension directory
(the user-code image does it at build time), and every connection gets ``offline_config``: autoinstall
off, autoload from that directory, and an extension repository that is a local folder, so that even an
explicit ``INSTALL`` never reaches the network.

This module imports DuckDB but not Dagster, so the dbt process loads it cheaply.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from floe_platform.render.catalog_env import (
    BLOB_PATH,
    CATALOG_DATA_PATH,
    CATALOG_METADATA,
    CATALOG_NAME,
    CATALOG_SCHEMA,
    S3_ACCESS_KEY_ID,
    S3_ENDPOINT,
    S3_PATH_STYLE,
    S3_REGION,
    S3_SECRET_ACCESS_KEY,
)

EXTENSIONS = ("ducklake", "postgres", "httpfs")
"""The extensions a catalog connection needs, by package name (``duckdb-extension-<name>``)."""
_INSTALLED_STEM = {"ducklake": "ducklake", "postgres": "postgres_scanner", "httpfs": "httpfs"}
EXTENSION_DIRECTORY_ENV = "FLOE_DUCKDB_EXTENSION_DIRECTORY"
DEFAULT_CATALOG_NAME = "lake"
S3_SECRET_NAME = "floe_catalog_s3"


class CatalogUnavailable(RuntimeError):
    """The catalog could not be attached, or a write to it failed (and was rolled back)."""


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None
    region: str
    path_style: bool
    access_key_id: str | None
    secret_access_key: str | None

    def boto3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``boto3.client("s3", ...)`` for this storage."""
        kwargs: dict[str, Any] = {"region_name": self.region}
        if self.endpoint:
            kwargs["endpoint_url"] = self.endpoint
        if self.access_key_id and self.secret_access_key:
            kwargs["aws_access_key_id"] = self.access_key_id
            kwargs["aws_secret_access_key"] = self.secret_access_key
        return kwargs


@dataclass(frozen=True)
class CatalogSettings:
    name: str
    metadata: str
    data_path: str
    s3: S3Settings
    metadata_schema: str | None = None

    @property
    def attach_path(self) -> str:
        return f"ducklake:{self.metadata}"

    @property
    def on_s3(self) -> bool:
        return self.data_path.startswith("s3://")


def s3_from_env(environ: Mapping[str, str] | None = None) -> S3Settings:
    environ = os.environ if environ is None else environ
    return S3Settings(
        endpoint=environ.get(S3_ENDPOINT) or None,
        region=environ.get(S3_REGION) or "us-east-1",
        path_style=environ.get(S3_PATH_STYLE, "false").lower() == "true",
        access_key_id=environ.get(S3_ACCESS_KEY_ID) or None,
        secret_access_key=environ.get(S3_SECRET_ACCESS_KEY) or None,
    )


def catalog_from_env(environ: Mapping[str, str] | None = None) -> CatalogSettings | None:
    """The catalog the env names, or None when ``FLOE_CATALOG_METADATA`` is unset (no shared catalog)."""
    environ = os.environ if environ is None else environ
    metadata = environ.get(CATALOG_METADATA)
    if not metadata:
        return None
    data_path = environ.get(CATALOG_DATA_PATH)
    if not data_path:
        raise CatalogUnavailable(f"{CATALOG_METADATA} is set but {CATALOG_DATA_PATH} is not")
    return CatalogSettings(
        name=environ.get(CATALOG_NAME) or DEFAULT_CATALOG_NAME,
        metadata=metadata,
        data_path=data_path,
        s3=s3_from_env(environ),
        metadata_schema=environ.get(CATALOG_SCHEMA) or None,
    )


def blob_path_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    environ = os.environ if environ is None else environ
    return environ.get(BLOB_PATH) or None


# Extensions ---------------------------------------------------------------------------------------------


def extension_directory(environ: Mapping[str, str] | None = None) -> Path:
    """Where the extensions are installed: FLOE_DUCKDB_EXTENSION_DIRECTORY, else beside this Python."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(EXTENSION_DIRECTORY_ENV)
    return Path(explicit) if explicit else Path(sys.prefix) / "share" / "floe-platform" / "duckdb-extensions"


def offline_config(directory: Path) -> dict[str, Any]:
    """DuckDB settings that load extensions from ``directory`` only and never download one."""
    return {
        "extension_directory": str(directory),
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": True,
        "allow_community_extensions": False,
        # A local folder that holds no extension: an explicit INSTALL fails instead of downloading.
        "custom_extension_repository": str(directory / "no-download"),
    }


def bundled_extension_file(name: str) -> Path:
    """The extension binary that the ``duckdb-extension-<name>`` package ships for this DuckDB."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or spec.origin is None:
        version = duckdb.__version__
        raise CatalogUnavailable(
            f"the DuckDB extension {name!r} is not installed: add duckdb-extension-{name}=={version}"
        )
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise CatalogUnavailable(
            f"{path} is missing: duckdb-extension-{name} does not match DuckDB {duckdb.__version__}"
        )
    return path


def _installed(directory: Path, name: str) -> bool:
    return any(directory.glob(f"v{duckdb.__version__}/*/{_INSTALLED_STEM[name]}.duckdb_extension"))


def install_bundled_extensions(directory: Path | None = None) -> Path:
    """Install each bundled extension into ``directory`` unless it is there; returns the directory.

    Idempotent and safe when several processes start at once (a file lock in the directory).
    """
    directory = directory or extension_directory()
    if all(_installed(directory, name) for name in EXTENSIONS):
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [name for name in EXTENSIONS if not _installed(directory, name)]
        if missing:
            with duckdb.connect(config=offline_config(directory)) as conn:
                for name in missing:
                    conn.execute(f"INSTALL '{bundled_extension_file(name)}'")
    return directory


# Attaching ----------------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def s3_secret_sql(s3: S3Settings) -> str:
    """A temporary DuckDB secret for the catalog's S3 storage."""
    options = ["TYPE s3", f"REGION {_quote(s3.region)}"]
    if s3.access_key_id and s3.secret_access_key:
        options += [f"KEY_ID {_quote(s3.access_key_id)}", f"SECRET {_quote(s3.secret_access_key)}"]
    if s3.endpoint:
        scheme, _, host = s3.endpoint.partition("://")
        options += [f"ENDPOINT {_quote(host.rstrip('/'))}", f"USE_SSL {str(scheme == 'https').lower()}"]
    options.append(f"URL_STYLE {_quote('path' if s3.path_style else 'vhost')}")
    return f"CREATE OR REPLACE TEMPORARY SECRET {S3_SECRET_NAME} ({', '.join(options)})"


def describe(catalog: CatalogSettings) -> str:
    """Where the catalog is, for error messages: metadata (never holds a password) and data path."""
    return f"catalog {catalog.name!r} (metadata {catalog.metadata}, data {catalog.data_path})"


def configure_storage(conn: duckdb.DuckDBPyConnection, catalog: CatalogSettings) -> None:
    """The S3 secret a connection needs to read and write the catalog's data files."""
    if catalog.on_s3:
        conn.execute(s3_secret_sql(catalog.s3))
    else:
        Path(catalog.data_path).mkdir(parents=True, exist_ok=True)


def attach_catalog(conn: duckdb.DuckDBPyConnection, catalog: CatalogSettings, *, use: bool = True) -> None:
    """ATTACH the catalog to ``conn`` (and USE it, so unqualified names land in it).

    Raises ``CatalogUnavailable`` naming the catalog and the cause when the metadata database or the
    storage cannot be reached.
    """
    try:
        configure_storage(conn, catalog)
        options = [f"DATA_PATH {_quote(catalog.data_path)}"]
        if catalog.metadata_schema:
            options.append(f"METADATA_SCHEMA {_quote(catalog.metadata_schema)}")
        conn.execute(
            f"ATTACH IF NOT EXISTS {_quote(catalog.attach_path)} AS {catalog.name} ({', '.join(options)})"
        )
        if use:
            conn.execute(f"USE {catalog.name}")
    except duckdb.Error as error:
        raise CatalogUnavailable(f"cannot attach the {describe(catalog)}: {error}") from error


if __name__ == "__main__":  # `python -m floe_platform.dagster.catalog`: the image's build step
    print(install_bundled_extensions())

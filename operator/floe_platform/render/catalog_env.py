"""The env that points a run pod at the shared lakehouse catalog and the blob store.

This is the contract between the renderer and ``floe_platform.dagster.catalog`` (and the demo's dbt
profile). Plain values only, except credentials, which are ``secretKeyRef`` entries: platform.yaml never
holds them, and neither does a PodTemplate.

=========================  ===============================================================================
FLOE_CATALOG_NAME          the attached catalog's name in DuckDB and dbt (``catalog.name``)
FLOE_CATALOG_METADATA      DuckLake metadata: ``postgres:host=... port=... dbname=... user=...``, or a file
FLOE_CATALOG_SCHEMA        the PostgreSQL schema of the metadata tables (absent for a file)
FLOE_CATALOG_DATA_PATH     where DuckLake writes Parquet files: ``s3://bucket/prefix/``, or a folder
FLOE_BLOB_PATH             where the blob I/O manager writes pickles: ``s3://bucket/prefix/``, or a folder
FLOE_S3_ENDPOINT           the S3 API URL (absent for AWS S3)
FLOE_S3_REGION             the signing region
FLOE_S3_PATH_STYLE         ``true`` for path-style addressing (MinIO, LocalStack)
FLOE_S3_ACCESS_KEY_ID      from the storage's Secret (absent: the pod's own identity)
FLOE_S3_SECRET_ACCESS_KEY  from the storage's Secret
PGPASSWORD                 the metadata database's password, from its Secret (libpq reads it)
=========================  ===============================================================================

The S3 keys get names of their own (not ``AWS_*``): compute logs may live on another storage, and the
chart gives the run pods that storage's ``AWS_*`` keys.
"""

from __future__ import annotations

from typing import Any

from floe_platform.config.models import BUILTIN_STORAGE, CatalogDatabase, PlatformConfig, S3Storage

CATALOG_NAME = "FLOE_CATALOG_NAME"
CATALOG_METADATA = "FLOE_CATALOG_METADATA"
CATALOG_SCHEMA = "FLOE_CATALOG_SCHEMA"
CATALOG_DATA_PATH = "FLOE_CATALOG_DATA_PATH"
BLOB_PATH = "FLOE_BLOB_PATH"
S3_ENDPOINT = "FLOE_S3_ENDPOINT"
S3_REGION = "FLOE_S3_REGION"
S3_PATH_STYLE = "FLOE_S3_PATH_STYLE"
S3_ACCESS_KEY_ID = "FLOE_S3_ACCESS_KEY_ID"
S3_SECRET_ACCESS_KEY = "FLOE_S3_SECRET_ACCESS_KEY"
PG_PASSWORD = "PGPASSWORD"
CATALOG_ENV_NAMES = (
    CATALOG_NAME,
    CATALOG_METADATA,
    CATALOG_SCHEMA,
    CATALOG_DATA_PATH,
    BLOB_PATH,
    S3_ENDPOINT,
    S3_REGION,
    S3_PATH_STYLE,
    S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY,
    PG_PASSWORD,
)


def postgres_metadata(database: CatalogDatabase) -> str:
    """DuckLake's metadata path for a PostgreSQL database: libpq keywords, never the password."""
    words = [f"host={database.host}", f"port={database.port}", f"dbname={database.database}"]
    words.append(f"user={database.username}")
    if database.sslmode:
        words.append(f"sslmode={database.sslmode}")
    words += [f"{keyword}={value}" for keyword, value in sorted(database.params.items())]
    return "postgres:" + " ".join(words)


def _value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _secret(name: str, secret_name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}


def storage_env(storage: S3Storage | None) -> list[dict[str, Any]]:
    """Endpoint, region, addressing and credentials of the catalog's S3 storage.

    ``None`` is the built-in storage when nothing defines it: AWS S3 with the pod's own identity.
    """
    if storage is None:
        return [_value(S3_REGION, "us-east-1"), _value(S3_PATH_STYLE, "false")]
    env = []
    if storage.endpoint:
        env.append(_value(S3_ENDPOINT, storage.endpoint))
    env += [_value(S3_REGION, storage.region), _value(S3_PATH_STYLE, str(storage.path_style_access).lower())]
    if storage.credentials:
        secret = storage.credentials
        env.append(_secret(S3_ACCESS_KEY_ID, secret.secret_name, secret.access_key_id_key))
        env.append(_secret(S3_SECRET_ACCESS_KEY, secret.secret_name, secret.secret_access_key_key))
    return env


def catalog_env(config: PlatformConfig) -> list[dict[str, Any]]:
    """The catalog env of every run pod of ``config``; empty when the catalog is off or has no database."""
    catalog = config.catalog
    if not catalog.enabled or catalog.database is None:
        return []
    database = catalog.database
    storage = config.storage.get(catalog.storage_ref)
    if storage is None and catalog.storage_ref != BUILTIN_STORAGE:  # the models refuse this; be explicit
        raise ValueError(f"catalog.storage_ref: {catalog.storage_ref!r} is not a defined storage")
    env = [
        _value(CATALOG_NAME, catalog.name),
        _value(CATALOG_METADATA, postgres_metadata(database)),
        _value(CATALOG_SCHEMA, database.metadata_schema),
        _value(CATALOG_DATA_PATH, f"s3://{catalog.bucket}/{catalog.data_prefix}"),
        _value(BLOB_PATH, f"s3://{catalog.bucket}/{catalog.blob_prefix}"),
        *storage_env(storage),
    ]
    if database.password:
        env.append(_secret(PG_PASSWORD, database.password.secret_name, database.password.key))
    return env

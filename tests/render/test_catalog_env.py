"""The catalog env our renderer puts into every PodTemplate (pure: the real models and renderer, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from floe_platform.config import ConfigError, load_platform_text
from floe_platform.render import render_pod_templates
from floe_platform.render.catalog_env import catalog_env

PROFILES = """
infrastructure:
  resource_profiles:
    small: {requests: {cpu: 250m, memory: 512Mi}, limits: {cpu: "1", memory: 1Gi}}
    big:
      requests: {cpu: "1", memory: 2Gi}
      limits: {cpu: "2", memory: 4Gi}
      env: {FLOE_CATALOG_NAME: big_lake}
"""
CATALOG = """
storage:
  lake:
    endpoint: https://s3.eu-west-1.amazonaws.com
    region: eu-west-1
    credentials: {secret_name: lake-s3}
catalog:
  name: warehouse
  storage_ref: lake
  bucket: acme-lake
  data_prefix: tables/
  blob_prefix: artifacts/
  database:
    host: pg.data.svc
    port: 6432
    database: analytics
    metadata_schema: lake_meta
    username: floe_runs
    password: {secret_name: catalog-db, key: pw}
    sslmode: require
"""


def _env(text: str, profile: str = "small") -> list[dict[str, Any]]:
    templates = render_pod_templates(load_platform_text(text))
    template = next(t for t in templates if t["metadata"]["labels"]["floe.dev/profile"] == profile)
    env: list[dict[str, Any]] = template["template"]["spec"]["containers"][0]["env"]
    return env


def test_every_profile_gets_the_catalog_env_with_credentials_by_secret_reference() -> None:
    env = {entry["name"]: entry for entry in _env(PROFILES + CATALOG)}
    assert env["FLOE_CATALOG_NAME"]["value"] == "warehouse"
    assert env["FLOE_CATALOG_METADATA"]["value"] == (
        "postgres:host=pg.data.svc port=6432 dbname=analytics user=floe_runs sslmode=require"
    )
    assert env["FLOE_CATALOG_SCHEMA"]["value"] == "lake_meta"
    assert env["FLOE_CATALOG_DATA_PATH"]["value"] == "s3://acme-lake/tables/"
    assert env["FLOE_BLOB_PATH"]["value"] == "s3://acme-lake/artifacts/"
    assert env["FLOE_S3_ENDPOINT"]["value"] == "https://s3.eu-west-1.amazonaws.com"
    assert env["FLOE_S3_REGION"]["value"] == "eu-west-1"
    assert env["FLOE_S3_PATH_STYLE"]["value"] == "false"
    assert env["FLOE_S3_ACCESS_KEY_ID"] == {
        "name": "FLOE_S3_ACCESS_KEY_ID",
        "valueFrom": {"secretKeyRef": {"name": "lake-s3", "key": "AWS_ACCESS_KEY_ID"}},
    }
    assert env["FLOE_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "lake-s3",
        "key": "AWS_SECRET_ACCESS_KEY",
    }
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "catalog-db", "key": "pw"}
    assert not any("value" in entry and "valueFrom" in entry for entry in env.values())


def test_a_profiles_own_env_wins_over_the_catalogs() -> None:
    env = _env(PROFILES + CATALOG, "big")
    assert [entry["value"] for entry in env if entry["name"] == "FLOE_CATALOG_NAME"] == ["big_lake"]


def test_no_catalog_env_when_the_catalog_is_off_or_has_no_database() -> None:
    off = CATALOG.replace("  name: warehouse", "  enabled: false\n  name: warehouse")
    assert catalog_env(load_platform_text(PROFILES + off)) == []
    assert catalog_env(load_platform_text(PROFILES)) == []
    assert not any(entry["name"].startswith("FLOE_CATALOG") for entry in _env(PROFILES))


def test_catalog_storage_ref_must_name_a_defined_storage() -> None:
    with pytest.raises(ConfigError) as error:
        load_platform_text(PROFILES + CATALOG.replace("storage_ref: lake", "storage_ref: elsewhere"))
    assert "catalog.storage_ref: 'elsewhere' is not a storage defined under storage" in str(error.value)


def test_an_inline_database_password_is_refused_with_the_field_and_the_fix() -> None:
    inline = CATALOG.replace("password: {secret_name: catalog-db, key: pw}", "password: hunter2")
    with pytest.raises(ConfigError) as error:
        load_platform_text(PROFILES + inline)
    message = str(error.value)
    assert "catalog.database.password" in message
    assert "put it in a Secret" in message
    assert "hunter2" not in message


def _metadata(text: str) -> str:
    env = {entry["name"]: entry.get("value") for entry in _env(text)}
    return str(env["FLOE_CATALOG_METADATA"])


def test_more_libpq_params_follow_the_fields_in_the_metadata_path() -> None:
    params = CATALOG.replace(
        "    sslmode: require\n",
        '    sslmode: require\n    params: {target_session_attrs: read-write, connect_timeout: "10"}\n',
    )
    assert _metadata(PROFILES + params) == (
        "postgres:host=pg.data.svc port=6432 dbname=analytics user=floe_runs sslmode=require "
        "connect_timeout=10 target_session_attrs=read-write"
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("{password: hunter2}", "catalog.database.params: 'password': credentials must not be written"),
        (
            "{sslmode: require}",
            "catalog.database.params: 'sslmode' has a field of its own: set catalog.database.sslmode",
        ),
        ("{dbname: other}", "set catalog.database.database"),
        (
            '{application_name: "floe runs"}',
            "is not a libpq parameter value without spaces, quotes or backslashes",
        ),
        ("{connect_timeout: 10}", "catalog.database.params.connect_timeout: Input should be a valid string"),
    ],
)
def test_params_that_are_fields_credentials_or_unquotable_are_refused(params: str, expected: str) -> None:
    text = CATALOG.replace("    sslmode: require\n", f"    params: {params}\n")
    with pytest.raises(ConfigError) as error:
        load_platform_text(PROFILES + text)
    assert expected in str(error.value)
    assert "hunter2" not in str(error.value)

"""The chart's default: every run of a release shares one catalog (real helm v4 ``helm template``, and our
own models and renderer on the FloePlatform spec it writes, as the operator would render it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import CHART, CI_DIR, HelmError, Rendered, render, run_helm

from floe_platform.config import load_platform_text
from floe_platform.render import render_pod_templates
from testkit.helm import WITHOUT_CLUSTER

PROFILES = {
    "infrastructure": {
        "resource_profiles": {
            "default": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
        }
    }
}


def _render(platform: dict[str, Any], tmp_path: Path) -> Rendered:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"platform": platform}))
    return render([values])


def _spec(rendered: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.of_kind("FloePlatform")[0]["spec"]
    return spec


def test_runs_share_the_charts_postgresql_and_s3_catalog_by_default(tmp_path: Path) -> None:
    rendered = _render(PROFILES, tmp_path)
    spec = _spec(rendered)
    database = spec["catalog"]["database"]
    assert database["host"].endswith("-postgresql.floe.svc")
    assert database["password"]["key"] == "postgresql-password"
    assert spec["storage"]["default"]["path_style_access"] is True
    assert spec["storage"]["default"]["credentials"]["secret_name"].endswith("-s3")
    template = render_pod_templates(load_platform_text(yaml.safe_dump(spec)))[0]
    env = {e["name"]: e for e in template["template"]["spec"]["containers"][0]["env"]}
    assert env["FLOE_CATALOG_METADATA"]["value"].startswith(f"postgres:host={database['host']} port=5432")
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == database["password"]["secret_name"]
    # LocalStack's ready.d hook creates the catalog's bucket beside the compute-log bucket on every start.
    localstack = rendered.named("Deployment", "localstack")["spec"]["template"]["spec"]["containers"][0]
    localstack_env = {e["name"]: e.get("value") for e in localstack["env"]}
    assert localstack_env["EXTRA_BUCKETS"] == "floe-lake"


def test_a_platforms_own_catalog_database_and_storage_are_kept(tmp_path: Path) -> None:
    own = {
        **PROFILES,
        "storage": {"lake": {"endpoint": "https://s3.example.com", "credentials": {"secret_name": "lake"}}},
        "catalog": {
            "storage_ref": "lake",
            "bucket": "acme-lake",
            "database": {"host": "pg.example.com", "password": {"secret_name": "pg", "key": "pw"}},
        },
    }
    rendered = _render(own, tmp_path)
    spec = _spec(rendered)
    assert spec["catalog"] == own["catalog"]
    assert spec["storage"] == own["storage"]
    localstack = rendered.named("Deployment", "localstack")["spec"]["template"]["spec"]["containers"][0]
    names = [e["name"] for e in localstack["env"]]
    assert "EXTRA_BUCKETS" not in names  # the chart creates buckets only on its own LocalStack


def test_a_disabled_catalog_gets_nothing_from_the_chart(tmp_path: Path) -> None:
    spec = _spec(_render({**PROFILES, "catalog": {"enabled": False}}, tmp_path))
    assert spec["catalog"] == {"enabled": False}
    assert "storage" not in spec


OWN_LOG_STORAGE = {"logs": {"endpoint": "https://s3.example.com", "credentials": {"secret_name": "logs"}}}
COMPUTE_LOGS_ELSEWHERE = {
    "disabled": {"observability": {"compute_logs": {"enabled": False}}},
    "local": {"observability": {"compute_logs": {"manager_type": "local"}}},
    "own storage": {"observability": {"compute_logs": {"storage_ref": "logs"}}, "storage": OWN_LOG_STORAGE},
}


def _localstack_container(rendered: Rendered) -> dict[str, Any]:
    container: dict[str, Any] = rendered.named("Deployment", "localstack")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


@pytest.mark.parametrize("logs", COMPUTE_LOGS_ELSEWHERE.values(), ids=COMPUTE_LOGS_ELSEWHERE.keys())
def test_localstack_creates_the_catalog_bucket_when_compute_logs_are_elsewhere(
    logs: dict[str, Any], tmp_path: Path
) -> None:
    """The catalog alone on the built-in S3 still gets its bucket, the hook and LocalStack's credentials."""
    rendered = _render({**PROFILES, **logs}, tmp_path)
    localstack_service = rendered.named("Service", "localstack")["metadata"]["name"]
    assert _spec(rendered)["storage"]["default"]["endpoint"] == f"http://{localstack_service}.floe.svc:4566"
    localstack = _localstack_container(rendered)
    values = {e["name"]: e["value"] for e in localstack["env"] if "value" in e}
    assert values["EXTRA_BUCKETS"] == "floe-lake"
    assert values["S3_ENDPOINT"] == "http://127.0.0.1:4566"
    assert not {"BUCKET", "PREFIX", "RETENTION_DAYS"} & values.keys()  # no compute-log bucket here
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in localstack["env"] if "valueFrom" in e}
    s3_secret = rendered.named("Secret", "s3")["metadata"]["name"]
    assert {name: ref["name"] for name, ref in secrets.items()} == {
        "AWS_ACCESS_KEY_ID": s3_secret,
        "AWS_SECRET_ACCESS_KEY": s3_secret,
    }
    assert "/etc/localstack/init/ready.d" in [m["mountPath"] for m in localstack["volumeMounts"]]


def test_localstack_gets_no_hook_when_no_bucket_of_the_release_is_on_it(tmp_path: Path) -> None:
    platform = {**PROFILES, **COMPUTE_LOGS_ELSEWHERE["disabled"], "catalog": {"enabled": False}}
    localstack = _localstack_container(_render(platform, tmp_path))
    names = {e["name"] for e in localstack["env"]}
    assert not {"BUCKET", "EXTRA_BUCKETS", "S3_ENDPOINT", "AWS_ACCESS_KEY_ID"} & names
    assert [m["mountPath"] for m in localstack["volumeMounts"]] == ["/var/lib/localstack"]


def test_extra_buckets_serve_a_floeplatform_applied_with_kubectl(tmp_path: Path) -> None:
    """No platform: value (the FloePlatform is applied with kubectl, as the e2e suite does): the chart knows
    no catalog, so localstack.extraBuckets names its bucket; the chart's own catalog bucket comes once."""
    values = tmp_path / "extra.yaml"
    values.write_text(yaml.safe_dump({"localstack": {"extraBuckets": ["floe-lake", "team-blobs"]}}))
    alone = _localstack_container(render([values]))
    env = {e["name"]: e.get("value") for e in alone["env"]}
    assert env["EXTRA_BUCKETS"] == "floe-lake,team-blobs"
    assert "/etc/localstack/init/ready.d" in [m["mountPath"] for m in alone["volumeMounts"]]
    platform = tmp_path / "platform.yaml"
    platform.write_text(yaml.safe_dump({"platform": PROFILES}))
    both = _localstack_container(render([values, platform]))
    assert {e["name"]: e.get("value") for e in both["env"]}["EXTRA_BUCKETS"] == "floe-lake,team-blobs"


def test_a_bad_extra_bucket_name_is_refused_by_the_values_schema(tmp_path: Path) -> None:
    values = tmp_path / "extra.yaml"
    values.write_text(yaml.safe_dump({"localstack": {"extraBuckets": ["Floe_Lake"]}}))
    with pytest.raises(HelmError, match="extraBuckets"):
        render([values])


@pytest.mark.parametrize(
    "params",
    [{"user": "runs"}, {"password": "secret"}, {"application_name": "two words"}, {"sslmode": "Require"}],
    ids=["own-field", "credential", "space", "sslmode-case"],
)
def test_external_postgresql_params_the_catalog_would_refuse_are_refused_at_render(
    params: dict[str, str], tmp_path: Path
) -> None:
    """The chart copies externalPostgresql.params into the FloePlatform's catalog database, so the values
    schema refuses what the operator would (it would refuse only after `helm install` had succeeded)."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"platform": PROFILES, "externalPostgresql": {"params": params}}))
    # helm names a refused key by name ("invalid propertyName 'user'"), a refused value by its path.
    with pytest.raises(HelmError, match=r"externalPostgresql/params|invalid propertyName '(user|password)'"):
        render([CI_DIR / "external-postgres-values.yaml", values])


def test_an_external_postgresqls_params_hold_for_the_catalog(tmp_path: Path) -> None:
    """ci/external-postgres-values.yaml requires TLS of Dagster's connection; the catalog's needs it too,
    and gets the other params as well."""
    values = tmp_path / "values.yaml"
    params = {"sslmode": "require", "connect_timeout": "10"}
    values.write_text(yaml.safe_dump({"platform": PROFILES, "externalPostgresql": {"params": params}}))
    rendered = render([CI_DIR / "external-postgres-values.yaml", values])
    database = _spec(rendered)["catalog"]["database"]
    assert (database["host"], database["port"]) == ("db.example.internal", 6432)
    assert (database["sslmode"], database["params"]) == ("require", {"connect_timeout": "10"})
    template = render_pod_templates(load_platform_text(yaml.safe_dump(_spec(rendered))))[0]
    env = {e["name"]: e.get("value") for e in template["template"]["spec"]["containers"][0]["env"]}
    assert env["FLOE_CATALOG_METADATA"] == (
        "postgres:host=db.example.internal port=6432 dbname=floe_dagster user=floe sslmode=require "
        "connect_timeout=10"
    )


def test_the_charts_own_postgresql_gets_no_sslmode_or_params(tmp_path: Path) -> None:
    database = _spec(_render(PROFILES, tmp_path))["catalog"]["database"]
    assert not {"sslmode", "params"} & database.keys()


def _notes(values: Path) -> str:
    result = run_helm(
        ["install", "floe", str(CHART), "-n", "floe", "--dry-run=client", "-f", str(values), *WITHOUT_CLUSTER]
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def test_notes_warn_that_the_builtin_s3_loses_the_catalogs_files(tmp_path: Path) -> None:
    """NOTES.txt as `helm install --dry-run=client` prints it: a warning with the catalog on LocalStack,
    none with the catalog on the platform's own S3."""
    on_localstack = tmp_path / "localstack.yaml"
    on_localstack.write_text(yaml.safe_dump({"platform": PROFILES}))
    assert "a LocalStack restart loses them" in " ".join(_notes(on_localstack).split())
    own = {
        **PROFILES,
        "storage": {"lake": {"endpoint": "https://s3.example.com", "credentials": {"secret_name": "lake"}}},
        "catalog": {"storage_ref": "lake"},
    }
    on_own_s3 = tmp_path / "own.yaml"
    on_own_s3.write_text(yaml.safe_dump({"platform": own}))
    assert "LocalStack restart" not in " ".join(_notes(on_own_s3).split())

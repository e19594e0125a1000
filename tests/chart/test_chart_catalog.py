"""The chart's default: every run of a release shares one catalog (real helm v4 ``helm template``, and our
own models and renderer on the FloePlatform spec it writes, as the operator would render it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from chart_render import Rendered, render

from floe_platform.config import load_platform_text
from floe_platform.render import render_pod_templates

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

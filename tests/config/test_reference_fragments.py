"""The reference document's platform.yaml fragments validate and render as written (pure core only)."""

from __future__ import annotations

from pathlib import Path

from floe_platform.config import load_platform
from floe_platform.render import render_pod_templates

LOCAL = Path(__file__).resolve().parents[2] / "platform-config/platform/local/platform.yaml"


def test_reference_transform_profile_renders_requests_limits_env_and_temp_volume() -> None:
    templates = {t["metadata"]["name"]: t for t in render_pod_templates(load_platform(LOCAL))}
    template = templates["floe-transform"]  # the reference fragment; `small` is the demo's light profile
    spec = template["template"]["spec"]
    (container,) = spec["containers"]
    assert container["name"] == "dagster"
    assert container["resources"] == {
        "requests": {"cpu": "1000m", "memory": "4Gi"},
        "limits": {"cpu": "8000m", "memory": "12Gi"},
    }
    assert container["env"] == [
        {"name": "DUCKDB_MEMORY_LIMIT", "value": "8GB"},
        {"name": "DUCKDB_THREADS", "value": "4"},
        {"name": "DUCKDB_TEMP_DIRECTORY", "value": "/tmp/duckdb"},
    ]
    assert container["volumeMounts"] == [{"name": "duckdb-temp", "mountPath": "/tmp/duckdb"}]
    assert spec["volumes"] == [{"name": "duckdb-temp", "emptyDir": {"sizeLimit": "10Gi"}}]

"""The platform.yaml contract: what it accepts, derives and refuses (pure core)."""

from __future__ import annotations

from typing import Any

import pytest

from floe_platform.config import ConfigError, PlatformConfig, load_platform_text, parse_platform
from floe_platform.render import render_pod_templates

PROFILE = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}


def platform(**profile_overrides: Any) -> dict[str, Any]:
    return {"infrastructure": {"resource_profiles": {"transform": {**PROFILE, **profile_overrides}}}}


def errors_of(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_platform(data)
    return error.value.lines


def test_minimal_platform_gets_documented_defaults() -> None:
    config = parse_platform(platform())
    logs = config.observability.compute_logs
    assert (logs.enabled, logs.manager_type, logs.storage_ref, logs.bucket) == (
        True,
        "s3",
        "default",
        "dagster-compute-logs",
    )
    assert (logs.retention_days, logs.upload_interval) == (30, 30)
    assert config.platform.name == "floe"
    assert config.infrastructure.resource_profiles["transform"].temp_volume_size == "10Gi"


def test_models_are_frozen() -> None:
    config = parse_platform(platform())
    with pytest.raises(ValueError, match="frozen"):
        config.platform.name = "other"  # type: ignore[misc]


def test_yaml_integers_are_accepted_as_quantities() -> None:
    config = parse_platform(platform(limits={"cpu": 2, "memory": "4Gi"}))
    assert config.infrastructure.resource_profiles["transform"].limits.cpu == "2"


def test_request_above_limit_names_the_limit_field_and_the_fix() -> None:
    (line,) = errors_of(platform(requests={"cpu": "4", "memory": "1Gi"}))
    assert line.startswith(
        "infrastructure.resource_profiles.transform.limits.cpu: limit 2 is below the request 4"
    )


def test_duckdb_memory_limit_must_be_below_the_memory_limit() -> None:
    (line,) = errors_of(platform(env={"DUCKDB_MEMORY_LIMIT": "4GiB"}))
    assert line.startswith(
        "infrastructure.resource_profiles.transform.env.DUCKDB_MEMORY_LIMIT: '4GiB' is not below"
    )


def test_duckdb_memory_limit_just_below_the_limit_is_accepted() -> None:
    parse_platform(platform(env={"DUCKDB_MEMORY_LIMIT": "4095MiB"}))


def test_storage_ref_must_name_a_defined_storage() -> None:
    data = platform()
    data["observability"] = {"compute_logs": {"storage_ref": "lake"}}
    (line,) = errors_of(data)
    assert line.startswith(
        "observability.compute_logs.storage_ref: 'lake' is not a storage defined under storage"
    )


def test_storage_ref_default_resolves_to_a_defined_storage_of_that_name_first() -> None:
    data = platform()
    data["storage"] = {"default": {"endpoint": "http://minio:9000", "path_style_access": True}}
    config = parse_platform(data)
    assert config.storage["default"].endpoint == "http://minio:9000"


def test_inline_credentials_are_refused_with_the_secret_reference_fix() -> None:
    data = platform()
    data["storage"] = {"lake": {"endpoint": "http://minio:9000", "secret_access_key": "hunter2"}}
    (line,) = errors_of(data)
    assert line.startswith("storage.lake.secret_access_key: credentials must not be written in platform.yaml")
    assert "credentials.secret_name" in line


def test_errors_carry_the_yaml_line_number() -> None:
    text = "infrastructure:\n  resource_profiles:\n    transform:\n      requests: {cpu: 1, memory: 4Gb}\n"
    with pytest.raises(ConfigError) as error:
        load_platform_text(text, source="platform.yaml")
    assert any(line.endswith("(platform.yaml, line 4)") for line in error.value.lines)


def test_typo_in_a_field_name_suggests_the_right_one() -> None:
    (line,) = errors_of(platform(limit={"cpu": "2", "memory": "4Gi"}))
    assert line == "infrastructure.resource_profiles.transform.limit: unknown field; did you mean 'limits'?"


def test_rendered_names_labels_and_hash_follow_the_platform_and_profile() -> None:
    config = parse_platform(platform())
    (template,) = render_pod_templates(config, platform_name="acme", namespace="data")
    metadata = template["metadata"]
    assert (metadata["name"], metadata["namespace"]) == ("acme-transform", "data")
    assert metadata["labels"]["floe.dev/profile"] == "transform"
    assert metadata["labels"]["app.kubernetes.io/instance"] == "acme"
    assert len(metadata["annotations"]["floe.dev/profile-hash"]) == 16


def test_profile_hash_changes_with_the_profile_and_only_then() -> None:
    def hash_of(data: dict[str, Any]) -> str:
        (template,) = render_pod_templates(PlatformConfig.model_validate(data))
        return str(template["metadata"]["annotations"]["floe.dev/profile-hash"])

    assert hash_of(platform()) == hash_of(platform())
    assert hash_of(platform()) != hash_of(platform(env={"X": "1"}))


def test_pod_security_defaults_meet_the_restricted_profile() -> None:
    (template,) = render_pod_templates(parse_platform(platform()))
    spec = template["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False  # user code gets no API token
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 1000
    assert spec["securityContext"]["fsGroup"] == 1000
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = spec["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_derived_duckdb_settings_follow_the_limits_and_temp_dir_gets_a_volume() -> None:
    (template,) = render_pod_templates(parse_platform(platform(temp_volume_size="20Gi")))
    spec = template["template"]["spec"]
    env = {item["name"]: item["value"] for item in spec["containers"][0]["env"]}
    assert env == {
        "DUCKDB_MEMORY_LIMIT": "2730MiB",
        "DUCKDB_THREADS": "2",
        "DUCKDB_TEMP_DIRECTORY": "/tmp/duckdb",
    }
    assert spec["volumes"] == [{"name": "duckdb-temp", "emptyDir": {"sizeLimit": "20Gi"}}]


def test_custom_temp_directory_moves_the_volume_mount() -> None:
    (template,) = render_pod_templates(parse_platform(platform(env={"DUCKDB_TEMP_DIRECTORY": "/scratch"})))
    assert template["template"]["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "duckdb-temp", "mountPath": "/scratch"}
    ]


def test_node_selector_and_tolerations_are_rendered_in_kubernetes_spelling() -> None:
    toleration = {"key": "workload", "value": "analytics", "effect": "NoExecute", "toleration_seconds": 60}
    config = parse_platform(platform(node_selector={"pool": "big"}, tolerations=[toleration]))
    (template,) = render_pod_templates(config)
    spec = template["template"]["spec"]
    assert spec["nodeSelector"] == {"pool": "big"}
    assert spec["tolerations"] == [
        {
            "operator": "Equal",
            "key": "workload",
            "value": "analytics",
            "effect": "NoExecute",
            "tolerationSeconds": 60,
        }
    ]


def test_run_container_names_an_image_because_the_api_server_requires_one() -> None:
    """kubernetes-validate's OpenAPI check cannot see this rule; a real API server rejects a template
    whose container has no image (`template.spec.containers[0].image: Required value`)."""
    (template,) = render_pod_templates(parse_platform(platform()))
    assert template["template"]["spec"]["containers"][0]["image"] == "floe-platform/user-code:0.1.0"


LADDER = {
    "small": {**PROFILE, "limits": {"cpu": "2", "memory": "2Gi"}, "escalate_to": "transform"},
    "transform": {**PROFILE, "limits": {"cpu": "2", "memory": "12Gi"}, "escalate_to": "large"},
    "large": {**PROFILE, "limits": {"cpu": "2", "memory": "48Gi"}},
}


def ladder(**changes: str | None) -> dict[str, Any]:
    profiles = {name: dict(profile) for name, profile in LADDER.items()}
    for name, target in changes.items():
        profiles[name]["escalate_to"] = target
    return {"infrastructure": {"resource_profiles": profiles}}


def test_an_escalation_ladder_is_accepted() -> None:
    profiles = parse_platform(ladder()).infrastructure.resource_profiles
    assert [profiles[name].escalate_to for name in ("small", "transform", "large")] == [
        "transform",
        "large",
        None,
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"small": "huge"},
            "infrastructure.resource_profiles.small.escalate_to: 'huge' is not a profile (profiles: large, "
            "small, transform); name one of them or remove escalate_to",
            id="unknown-target",
        ),
        pytest.param(
            {"large": "transform"},
            "infrastructure.resource_profiles.transform.escalate_to: the ladder transform -> large -> "
            "transform is a cycle; the top profile must not escalate",
            id="cycle",
        ),
        pytest.param(
            {"small": "small"},
            "infrastructure.resource_profiles.small.escalate_to: the ladder small -> small is a cycle; "
            "the top profile must not escalate",
            id="self",
        ),
        pytest.param(
            {"small": None, "transform": "small"},
            "infrastructure.resource_profiles.transform.escalate_to: 'small' has limits.memory 2Gi, not more "
            "than the 12Gi of 'transform'; escalate to a profile with more memory",
            id="smaller-target",
        ),
    ],
)
def test_a_bad_ladder_is_one_line_naming_the_field_and_the_fix(
    changes: dict[str, str], expected: str
) -> None:
    (line,) = errors_of(ladder(**changes))
    assert line.startswith(expected)

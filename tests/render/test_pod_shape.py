"""A profile's pod shape beyond CPU and memory, from platform.yaml to the PodTemplate and on to the run
pod's dagster-k8s config.

Pure: the real models and renderer, the PodTemplate checked with kubernetes-validate --strict (Kubernetes
1.37's own OpenAPI). That the API server and the operator accept it: tests/controller/
test_operator_on_apiserver.py.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from floe_platform.config import ConfigError, parse_platform
from floe_platform.render import render_pod_template
from floe_platform.render.duckdb_env import duckdb_env
from testkit.platforms import pod_shape_profile

Json = dict[str, Any]


def _platform(profile: Json) -> Json:
    return {
        "version": 1,
        "platform": {"name": "acme"},
        "infrastructure": {"resource_profiles": {"gpu": profile}},
    }


def _template(profile: Json | None = None) -> Json:
    config = parse_platform(_platform(profile or pod_shape_profile()))
    return render_pod_template("acme", "gpu", config.infrastructure.resource_profiles["gpu"], "floe")


def _container(template: Json) -> Json:
    container: Json = template["template"]["spec"]["containers"][0]
    return container


def test_every_pod_shape_field_reaches_the_podtemplate() -> None:
    template = _template()
    kubernetes_validate.validate(template, "1.37.0", strict=True)
    spec, container = template["template"]["spec"], _container(template)
    given = pod_shape_profile()
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "5Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "10Gi", "nvidia.com/gpu": "1"},
    }
    assert spec["affinity"] == given["affinity"]
    assert spec["priorityClassName"] == "batch-high"
    assert spec["topologySpreadConstraints"] == given["topology_spread_constraints"]
    assert container["envFrom"] == [
        {"secretRef": {"name": "warehouse"}, "prefix": "WH_"},
        {"configMapRef": {"name": "settings", "optional": True}},
    ]
    metadata = template["template"]["metadata"]
    assert metadata["annotations"] == {"example.com/owner": "ml-team"}
    assert metadata["labels"]["team"] == "ml"
    assert metadata["labels"]["floe.dev/profile"] == "gpu"
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["dbt-profiles"] == {"name": "dbt-profiles", "configMap": {"name": "dbt-profiles"}}
    assert volumes["certs"] == {"name": "certs", "secret": {"secretName": "warehouse-ca"}}
    assert volumes["models"] == {"name": "models", "persistentVolumeClaim": {"claimName": "models"}}
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}
    assert "duckdb-temp" in volumes
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert mounts["dbt-profiles"] == {"name": "dbt-profiles", "mountPath": "/opt/dbt", "readOnly": True}
    assert mounts["scratch"] == {"name": "scratch", "mountPath": "/scratch"}


def test_duckdb_derivation_reads_only_cpu_and_memory() -> None:
    """A GPU and ephemeral storage change nothing DuckDB gets: the DUCKDB_* values are those of the
    same limits without them."""
    plain = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    env = {e["name"]: e["value"] for e in _container(_template())["env"]}
    plain_env = {e["name"]: e["value"] for e in _container(_template(plain))["env"]}
    assert {k: v for k, v in env.items() if k.startswith("DUCKDB_")} == duckdb_env(4 * 1024**3, 2, {})
    assert env == plain_env


def test_a_profile_without_the_new_fields_renders_as_before() -> None:
    plain = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    spec = _template(plain)["template"]["spec"]
    assert set(spec) == {"automountServiceAccountToken", "securityContext", "containers", "volumes"}
    assert "envFrom" not in spec["containers"][0]
    assert "annotations" not in _template(plain)["template"]["metadata"]


def test_launcher_config_carries_the_pod_shape_to_the_run_pod() -> None:
    """dagster-k8s config of the PodTemplate (layer 2 of the launcher): every new field is in it."""
    from floe_platform.dagster.profiles import template_to_k8s_config

    config = template_to_k8s_config(_template())
    pod_spec, container = config["pod_spec_config"], config["container_config"]
    assert {"affinity", "priorityClassName", "topologySpreadConstraints", "volumes"} <= set(pod_spec)
    assert container["envFrom"][0]["secretRef"] == {"name": "warehouse"}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    metadata = config["pod_template_spec_metadata"]
    assert metadata["annotations"]["example.com/owner"] == "ml-team"
    assert "floe.dev/profile-hash" in metadata["annotations"]
    assert metadata["labels"]["team"] == "ml"


def _refusal(**changes: Any) -> str:
    profile = pod_shape_profile() | changes
    with pytest.raises(ConfigError) as refused:
        parse_platform(_platform(profile), prefix=("spec",))
    assert len(refused.value.lines) == 1, refused.value.lines
    return refused.value.lines[0]


PREFIX = "spec.infrastructure.resource_profiles.gpu"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"extended_resources": {"gpu": 1}}, f"{PREFIX}.extended_resources"),
        ({"extended_resources": {"nvidia.com/gpu": "500m"}}, "is not a whole number of devices"),
        ({"extended_resources": {"example.kubernetes.io/x": 1}}, "is in the kubernetes.io domain"),
        ({"affinity": {"nodeAfinity": {}}}, f"{PREFIX}.affinity.nodeAfinity: is not a kind of affinity"),
        ({"priority_class_name": "Batch High"}, f"{PREFIX}.priority_class_name"),
        (
            {"topology_spread_constraints": [{"maxSkew": 1}]},
            "topology_spread_constraints.0: needs topologyKey",
        ),
        ({"env_from": [{"secret": "a", "config_map": "b"}]}, "set exactly one of secret or config_map"),
        ({"env_from": [{"prefix": "X_"}]}, "set exactly one of secret or config_map"),
        ({"labels": {"floe.dev/profile": "x"}}, "are the platform's; use another key"),
        ({"labels": {"team": "not valid!"}}, f"{PREFIX}.labels.team"),
        ({"volumes": [{"name": "a", "mount_path": "/a"}]}, "set exactly one of secret, config_map"),
        ({"volumes": [{"name": "a", "mount_path": "rel", "secret": "s"}]}, "must be an absolute path"),
        ({"volumes": [{"name": "duckdb-temp", "mount_path": "/a", "secret": "s"}]}, "is used twice"),
        (
            {"requests": {"cpu": "1", "memory": "2Gi", "ephemeral_storage": "20Gi"}},
            "limits.ephemeral_storage: limit 10Gi is below the request 20Gi",
        ),
        (
            {"limits": {"cpu": "2", "memory": "4Gi", "ephemeral_storage": "10GB"}},
            f"{PREFIX}.limits.ephemeral_storage",
        ),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else None,
)
def test_bad_pod_shape_is_refused_in_one_line_naming_the_field(changes: Json, expected: str) -> None:
    assert expected in _refusal(**changes)

"""The pure half of the launcher (floe_platform.dagster.profiles) over PodTemplates from the real renderer."""

from __future__ import annotations

import pytest

from floe_platform.config import load_platform_text
from floe_platform.dagster.profiles import (
    DERIVED_ENV_ANNOTATION,
    ProfileChoice,
    ProfileError,
    derived_env_names,
    last_value_wins,
    select_profile,
    settle_env,
    template_to_k8s_config,
)
from floe_platform.render import render_pod_template
from floe_platform.render.duckdb_env import derived_memory_limit, derived_threads

PLATFORM = load_platform_text(
    """
infrastructure:
  resource_profiles:
    mixed:
      requests: {cpu: "1", memory: 1Gi}
      limits: {cpu: "2", memory: 4Gi}
      env: {DUCKDB_MEMORY_LIMIT: 2GB}
"""
)
TEMPLATE = render_pod_template("floe", "mixed", PLATFORM.infrastructure.resource_profiles["mixed"])


def test_selection_prefers_run_then_job_then_asset_then_default() -> None:
    tag = "floe/resource-profile"
    assert select_profile({tag: "a"}, {tag: "b"}, {"op": {tag: "c"}}, "d") == ProfileChoice("a", "run tag")
    assert select_profile({}, {tag: "b"}, {"op": {tag: "c"}}, "d") == ProfileChoice("b", "job tag")
    assert select_profile({}, {}, {"op": {tag: "c"}, "other": {}}, "d") == ProfileChoice("c", "asset tag")
    assert select_profile({}, {}, {}, "d") == ProfileChoice("d", "launcher default_profile")
    assert select_profile({}, {}, {}, None) is None


def test_assets_asking_for_different_profiles_need_a_run_tag() -> None:
    tag = "floe/resource-profile"
    with pytest.raises(ProfileError, match=r"\(dbt: transform, load: small\).*set the run tag"):
        select_profile({}, {}, {"load": {tag: "small"}, "dbt": {tag: "transform"}}, None)


def test_derived_names_are_those_the_profile_left_to_the_renderer() -> None:
    assert derived_env_names(TEMPLATE) == {"DUCKDB_THREADS", "DUCKDB_TEMP_DIRECTORY"}
    marked = {
        **TEMPLATE,
        "metadata": {**TEMPLATE["metadata"], "annotations": {DERIVED_ENV_ANNOTATION: "DUCKDB_THREADS"}},
    }
    assert derived_env_names(marked) == {"DUCKDB_THREADS"}
    unmarked = {**TEMPLATE, "metadata": {**TEMPLATE["metadata"], "annotations": {}}}
    assert derived_env_names(unmarked) == frozenset()  # not made by floe: nothing is recomputed


def test_explicit_value_equal_to_the_derived_one_is_still_explicit() -> None:
    profile = PLATFORM.infrastructure.resource_profiles["mixed"].model_copy(
        update={"env": {"DUCKDB_THREADS": derived_threads(2)}}  # type: ignore[arg-type]
    )
    template = render_pod_template("floe", "mixed", profile)
    assert "DUCKDB_THREADS" not in derived_env_names(template)


def test_template_becomes_container_pod_spec_and_metadata_config() -> None:
    config = template_to_k8s_config(TEMPLATE)
    assert set(config["container_config"]) == {"resources", "env", "volumeMounts", "securityContext"}
    assert set(config["pod_spec_config"]) == {"automountServiceAccountToken", "volumes", "securityContext"}
    assert config["pod_spec_config"]["automountServiceAccountToken"] is False
    assert config["pod_template_spec_metadata"]["labels"]["floe.dev/profile"] == "mixed"
    assert "floe.dev/profile-hash" in config["pod_template_spec_metadata"]["annotations"]


def test_run_pods_take_the_templates_labels_except_its_standard_ones() -> None:
    """The PodTemplate's app.kubernetes.io/* (instance = the platform's name) describe the PodTemplate; the
    run pod keeps the launcher's, i.e. the release's, standard labels (on a real server:
    test_launcher_on_apiserver)."""
    assert TEMPLATE["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == "floe"
    labels = template_to_k8s_config(TEMPLATE)["pod_template_spec_metadata"]["labels"]
    assert labels == {"floe.dev/platform": "floe", "floe.dev/profile": "mixed"}


def test_last_value_of_an_env_name_wins_in_the_first_position() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "A", "value": "3"}]
    assert last_value_wins(env) == [{"name": "A", "value": "3"}, {"name": "B", "value": "2"}]


def test_override_of_limits_recomputes_only_derived_values() -> None:
    """Memory was set explicitly (2GB) and stays; threads were derived from 2 CPUs and follow 6."""
    container = {
        "resources": {"limits": {"cpu": "6", "memory": "16Gi"}},
        "env": [{"name": "DUCKDB_MEMORY_LIMIT", "value": "2GB"}, {"name": "DUCKDB_THREADS", "value": "2"}],
    }
    env, recomputed = settle_env(container, TEMPLATE)
    assert recomputed == {"DUCKDB_THREADS": derived_threads(6)}  # type: ignore[arg-type]
    assert {entry["name"]: entry["value"] for entry in env} == {
        "DUCKDB_MEMORY_LIMIT": "2GB",
        "DUCKDB_THREADS": "6",
    }
    assert derived_memory_limit(16 * 1024**3) not in str(env)


def test_profiles_own_limits_change_nothing() -> None:
    container = {"resources": {"limits": {"cpu": "2", "memory": "4Gi"}}, "env": [{"name": "X", "value": "1"}]}
    assert settle_env(container, TEMPLATE) == ([{"name": "X", "value": "1"}], {})

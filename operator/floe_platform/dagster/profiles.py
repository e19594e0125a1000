"""Where a profile's PodTemplate becomes dagster-k8s config, and how the layers above it are settled.

Pure functions over plain dicts (no API client, no Dagster objects), so the launcher stays a thin shell:

- ``select_profile``: run tag, then job tag, then the ops' tags, then the launcher's ``default_profile``.
- ``template_to_k8s_config``: PodTemplate -> ``UserDefinedDagsterK8sConfig`` dict (container, pod spec,
  pod metadata).
- ``settle_env``: after dagster-k8s has merged the layers, keep the last value of each env name, and
  recompute the DUCKDB_* values the renderer derived when a higher layer changed the limits. Values the
  profile sets explicitly, and values a higher layer sets, are never recomputed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from floe_platform.config.quantity import QuantityError, parse_quantity
from floe_platform.render import CONTAINER_NAME, HASH_ANNOTATION, PROFILE_LABEL
from floe_platform.render.duckdb_env import DUCKDB_ENV_NAMES, duckdb_env
from floe_platform.render.podtemplate import DERIVED_ENV_ANNOTATION

FLOE_LABEL_PREFIX = "floe.dev/"
STANDARD_PREFIX = "app.kubernetes.io/"

PROFILE_TAG = "floe/resource-profile"
"""Run, job or op tag naming the resource profile of a run."""
MEMORY_LIMIT_TAG = "floe/memory-limit"
"""Set by the launcher on each run it launches: the effective memory limit, for the OOM message."""


class ProfileError(Exception):
    """A run asks for a profile that cannot be used; the message says which, why and how to fix it."""


@dataclass(frozen=True)
class ProfileChoice:
    """The profile a run gets and which layer chose it (for the run's event log)."""

    name: str
    source: str


def select_profile(
    run_tags: Mapping[str, str],
    job_tags: Mapping[str, str],
    op_tags: Mapping[str, Mapping[str, str]],
    default_profile: str | None,
) -> ProfileChoice | None:
    """First of: the run tag, the job tag, the ops' (assets') tag, ``default_profile``; None if none."""
    if PROFILE_TAG in run_tags:
        return ProfileChoice(run_tags[PROFILE_TAG], "run tag")
    if PROFILE_TAG in job_tags:
        return ProfileChoice(job_tags[PROFILE_TAG], "job tag")
    asked = {op: tags[PROFILE_TAG] for op, tags in sorted(op_tags.items()) if PROFILE_TAG in tags}
    distinct = sorted(set(asked.values()))
    if len(distinct) > 1:
        listing = ", ".join(f"{op}: {profile}" for op, profile in asked.items())
        raise ProfileError(
            f"The assets in this run ask for different resource profiles ({listing}); a run has one pod, "
            f"so set the run tag {PROFILE_TAG} to the profile it should use, or run them in separate jobs."
        )
    if distinct:
        return ProfileChoice(distinct[0], "asset tag")
    if default_profile:
        return ProfileChoice(default_profile, "launcher default_profile")
    return None


def run_container(pod_template: Mapping[str, Any]) -> Mapping[str, Any]:
    """The run container of a PodTemplate: the one named ``dagster``, else the first."""
    containers: Sequence[Mapping[str, Any]] = pod_template["template"]["spec"]["containers"]
    named = [container for container in containers if container.get("name") == CONTAINER_NAME]
    return named[0] if named else containers[0]


def template_to_k8s_config(pod_template: Mapping[str, Any]) -> dict[str, Any]:
    """The PodTemplate as a ``UserDefinedDagsterK8sConfig`` dict (Kubernetes camelCase is accepted)."""
    container = run_container(pod_template)
    spec: Mapping[str, Any] = pod_template["template"]["spec"]
    container_config = {
        key: container[key]
        for key in ("resources", "env", "envFrom", "volumeMounts", "securityContext")
        if key in container
    }
    pod_spec_config = {
        key: spec[key]
        for key in (
            "automountServiceAccountToken",
            "volumes",
            "securityContext",
            "nodeSelector",
            "tolerations",
            "affinity",
            "priorityClassName",
            "topologySpreadConstraints",
        )
        if key in spec
    }
    template_metadata: Mapping[str, Any] = pod_template["template"].get("metadata") or {}
    template_labels = template_metadata.get("labels") or pod_template["metadata"].get("labels") or {}
    # The platform's floe.dev/* labels and the profile's own: the PodTemplate's app.kubernetes.io/* describe
    # the PodTemplate (the operator's object); a run pod keeps the launcher's: the release's standard labels.
    labels = {key: value for key, value in template_labels.items() if not key.startswith(STANDARD_PREFIX)}
    annotations = {
        key: value
        for key, value in (pod_template["metadata"].get("annotations") or {}).items()
        if key == HASH_ANNOTATION
    }
    # The profile's own pod annotations (template.metadata), then the profile hash.
    annotations = dict(template_metadata.get("annotations") or {}) | annotations
    pod_metadata: dict[str, Any] = {"labels": labels}
    if annotations:
        pod_metadata["annotations"] = annotations
    return {
        "container_config": container_config,
        "pod_spec_config": pod_spec_config,
        "pod_template_spec_metadata": pod_metadata,
        "job_metadata": {"labels": {PROFILE_LABEL: labels[PROFILE_LABEL]}} if PROFILE_LABEL in labels else {},
    }


def _limits(resources: Mapping[str, Any] | None) -> tuple[int | None, Any]:
    limits = (resources or {}).get("limits") or {}
    try:
        memory = int(parse_quantity(limits["memory"])) if "memory" in limits else None
        cpu = parse_quantity(limits["cpu"]) if "cpu" in limits else None
    except QuantityError:
        return None, None
    return memory, cpu


def _env_values(env: Iterable[Mapping[str, Any]]) -> dict[str, str | None]:
    return {entry["name"]: entry.get("value") for entry in env}


def derived_env_names(pod_template: Mapping[str, Any]) -> frozenset[str]:
    """The DUCKDB_* names the renderer derived from the template's limits (not set by the profile).

    The renderer lists them in an annotation; a template without it (not made by floe) has none.
    """
    annotations = pod_template["metadata"].get("annotations") or {}
    marked = {name.strip() for name in annotations.get(DERIVED_ENV_ANNOTATION, "").split(",")}
    return frozenset(marked & set(DUCKDB_ENV_NAMES))


def last_value_wins(env: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per name, the last one given (the highest layer), at the position of the first."""
    last = {entry["name"]: dict(entry) for entry in env}
    order = list(dict.fromkeys(entry["name"] for entry in env))
    return [last[name] for name in order]


def settle_env(
    container_config: Mapping[str, Any], pod_template: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The merged container's env with duplicates settled and derived DUCKDB_* values recomputed.

    Returns the env list and the recomputed values (empty when the limits are the profile's own).
    """
    env = last_value_wins(container_config.get("env") or [])
    template_container = run_container(pod_template)
    profile_limits = _limits(template_container.get("resources"))
    memory, cpu = _limits(container_config.get("resources"))
    if memory is None or cpu is None or (memory, cpu) == profile_limits:
        return env, {}
    recomputed_all = duckdb_env(memory, cpu, {})
    profile_values = _env_values(template_container.get("env") or [])
    recomputed: dict[str, str] = {}
    for entry in env:
        name = entry["name"]
        still_the_profiles = name in profile_values and entry.get("value") == profile_values[name]
        if name in derived_env_names(pod_template) and still_the_profiles:
            entry["value"] = recomputed[name] = recomputed_all[name]
    return env, recomputed

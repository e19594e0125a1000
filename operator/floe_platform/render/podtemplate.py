"""Where a resource profile becomes a Kubernetes PodTemplate.

``render_pod_template`` is the one place that decides what a Dagster run pod of a profile looks like: the
``dagster`` container (the name dagster-k8s gives the run container) with the profile's requests, limits
and env, the DUCKDB_* settings (explicit or derived, see ``render.duckdb``), an emptyDir for DuckDB's
spill files, placement, labels, and restricted-profile security defaults. Plain dicts in, plain dicts out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from floe_platform import __version__
from floe_platform.config.models import (
    TEMP_VOLUME,
    EnvFrom,
    ExtraVolume,
    PlatformConfig,
    ResourceProfile,
    Resources,
    Toleration,
)
from floe_platform.render.catalog_env import catalog_env
from floe_platform.render.duckdb_env import DUCKDB_ENV_NAMES, TEMP_DIRECTORY, duckdb_env

CONTAINER_NAME = "dagster"
RUN_IMAGE = f"floe-platform/user-code:{__version__}"
"""The API server requires an image in a PodTemplate's containers. Dagster decides the run's real image (the
code location's), and the run launcher never copies this one; it is the user-code image of this release so
that the template is also runnable as it stands."""
TEMP_VOLUME_NAME = TEMP_VOLUME
PROFILE_LABEL = "floe.dev/profile"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "floe-platform"
PLATFORM_LABEL = "floe.dev/platform"
HASH_ANNOTATION = "floe.dev/profile-hash"
DERIVED_ENV_ANNOTATION = "floe.dev/derived-env"
"""Comma-separated DUCKDB_* names the renderer derived from the limits (the launcher recomputes only
these when a higher layer overrides the limits; values the profile set stay as written)."""
ESCALATE_ANNOTATION = "floe.dev/escalate-to"
"""The profile's ``escalate_to``, when it has one: the run launcher reads it from the PodTemplate to retry an
OOM-killed run one rung up."""
RENDERED_ANNOTATIONS = frozenset({HASH_ANNOTATION, DERIVED_ENV_ANNOTATION, ESCALATE_ANNOTATION})
"""Every annotation the renderer may write: the operator drops those the new render leaves out."""
RUN_USER_ID = 1000


def template_name(platform_name: str, profile_name: str) -> str:
    """PodTemplate name of a profile: ``<platform>-<profile>``."""
    return f"{platform_name}-{profile_name}"


def profile_hash(profile: ResourceProfile) -> str:
    """Content hash of a profile: the first 16 hex digits of sha256 over its canonical JSON."""
    canonical = json.dumps(profile.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def profile_labels(platform_name: str, profile_name: str) -> dict[str, str]:
    """Labels on the PodTemplate and on every run pod made from it."""
    return {
        "app.kubernetes.io/name": "floe-platform",
        "app.kubernetes.io/instance": platform_name,
        "app.kubernetes.io/component": "run-profile",
        "app.kubernetes.io/part-of": "floe-platform",
        MANAGED_BY_LABEL: MANAGED_BY,
        PLATFORM_LABEL: platform_name,
        PROFILE_LABEL: profile_name,
    }


def container_env(
    profile: ResourceProfile, platform_env: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The platform's env (the catalog's), then the profile's env in its own order, then any DUCKDB_*
    variable it leaves to be derived. A name the profile sets replaces the platform's entry."""
    derived = duckdb_env(profile.limits.memory_bytes(), profile.limits.cpu_cores(), profile.env)
    merged = dict(profile.env) | {name: value for name, value in derived.items() if name not in profile.env}
    shared = [dict(entry) for entry in platform_env if entry["name"] not in merged]
    return shared + [{"name": name, "value": value} for name, value in merged.items()]


def _toleration(toleration: Toleration) -> dict[str, Any]:
    rendered: dict[str, Any] = {"operator": toleration.operator}
    for field, key in (
        ("key", "key"),
        ("value", "value"),
        ("effect", "effect"),
        ("toleration_seconds", "tolerationSeconds"),
    ):
        value = getattr(toleration, field)
        if value is not None:
            rendered[key] = value
    return rendered


def _amounts(resources: Resources, extended: dict[str, str]) -> dict[str, str]:
    """A container's requests or limits: CPU, memory, ephemeral storage if given, extended resources."""
    amounts = {"cpu": resources.cpu, "memory": resources.memory}
    if resources.ephemeral_storage is not None:
        amounts["ephemeral-storage"] = resources.ephemeral_storage
    return amounts | extended


def _env_from(source: EnvFrom) -> dict[str, Any]:
    reference: dict[str, Any] = {"name": source.secret or source.config_map}
    if source.optional:
        reference["optional"] = True
    rendered: dict[str, Any] = {"secretRef" if source.secret else "configMapRef": reference}
    if source.prefix:
        rendered["prefix"] = source.prefix
    return rendered


def _volume(volume: ExtraVolume) -> dict[str, Any]:
    if volume.secret is not None:
        return {"name": volume.name, "secret": {"secretName": volume.secret}}
    if volume.config_map is not None:
        return {"name": volume.name, "configMap": {"name": volume.config_map}}
    if volume.persistent_volume_claim is not None:
        return {"name": volume.name, "persistentVolumeClaim": {"claimName": volume.persistent_volume_claim}}
    return {"name": volume.name, "emptyDir": {"sizeLimit": volume.empty_dir_size}}


def _volume_mount(volume: ExtraVolume) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": volume.name, "mountPath": volume.mount_path}
    if volume.read_only:
        mount["readOnly"] = True
    return mount


def _placement(profile: ResourceProfile) -> dict[str, Any]:
    """Pod-spec fields of the profile's placement, only those it sets."""
    placement: dict[str, Any] = {}
    if profile.node_selector:
        placement["nodeSelector"] = dict(profile.node_selector)
    if profile.tolerations:
        placement["tolerations"] = [_toleration(toleration) for toleration in profile.tolerations]
    if profile.affinity:
        placement["affinity"] = profile.affinity
    if profile.priority_class_name:
        placement["priorityClassName"] = profile.priority_class_name
    if profile.topology_spread_constraints:
        placement["topologySpreadConstraints"] = list(profile.topology_spread_constraints)
    return placement


def _pod_spec(
    profile: ResourceProfile, temp_directory: str, platform_env: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": RUN_IMAGE,
        "resources": {
            "requests": _amounts(profile.requests, dict(profile.extended_resources)),
            "limits": _amounts(profile.limits, dict(profile.extended_resources)),
        },
        "env": container_env(profile, platform_env),
        "volumeMounts": [
            {"name": TEMP_VOLUME_NAME, "mountPath": temp_directory},
            *(_volume_mount(volume) for volume in profile.volumes),
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    }
    spec: dict[str, Any] = {
        # The run worker makes no Kubernetes API call (the launcher and the daemon do), and a token that can
        # create Jobs would let user code start pods as any ServiceAccount in the namespace.
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_USER_ID,
            "runAsGroup": RUN_USER_ID,
            "fsGroup": RUN_USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": TEMP_VOLUME_NAME, "emptyDir": {"sizeLimit": profile.temp_volume_size}},
            *(_volume(volume) for volume in profile.volumes),
        ],
    }
    if profile.env_from:
        container["envFrom"] = [_env_from(source) for source in profile.env_from]
    return spec | _placement(profile)


def render_pod_template(
    platform_name: str,
    profile_name: str,
    profile: ResourceProfile,
    namespace: str | None = None,
    platform_env: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The ``v1`` PodTemplate of one profile; ``platform_env`` is what every run gets (``catalog_env``)."""
    labels = profile_labels(platform_name, profile_name)
    metadata: dict[str, Any] = {
        "name": template_name(platform_name, profile_name),
        "labels": labels,
        "annotations": {
            HASH_ANNOTATION: profile_hash(profile),
            DERIVED_ENV_ANNOTATION: ",".join(name for name in DUCKDB_ENV_NAMES if name not in profile.env),
        },
    }
    if profile.escalate_to:
        metadata["annotations"][ESCALATE_ANNOTATION] = profile.escalate_to
    if namespace:
        metadata["namespace"] = namespace
    temp_directory = duckdb_env(profile.limits.memory_bytes(), profile.limits.cpu_cores(), profile.env)[
        TEMP_DIRECTORY
    ]
    pod_metadata: dict[str, Any] = {"labels": dict(profile.labels) | labels}
    if profile.annotations:
        pod_metadata["annotations"] = dict(profile.annotations)
    return {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": metadata,
        "template": {"metadata": pod_metadata, "spec": _pod_spec(profile, temp_directory, platform_env)},
    }


def render_pod_templates(
    config: PlatformConfig, platform_name: str | None = None, namespace: str | None = None
) -> list[dict[str, Any]]:
    """One PodTemplate per profile, in the order platform.yaml lists them."""
    name = platform_name or config.platform.name
    shared_env = catalog_env(config)
    return [
        render_pod_template(name, profile_name, profile, namespace, shared_env)
        for profile_name, profile in config.infrastructure.resource_profiles.items()
    ]

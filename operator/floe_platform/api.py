"""The FloePlatform API: its identity (group, version, kind, plural) and the resource of a platform.yaml.

The spec of a FloePlatform repeats platform.yaml's keys verbatim (snake_case), so ``platform_resource`` only
wraps a validated config and ``parse_platform(resource["spec"])`` is its inverse. Pure: no client here.
"""

from __future__ import annotations

from typing import Any

from floe_platform.config import PlatformConfig

GROUP = "floe.dev"
VERSION = "v1alpha1"
KIND = "FloePlatform"
PLURAL = "floeplatforms"
SINGULAR = "floeplatform"
SHORT_NAMES = ("fp",)
API_VERSION = f"{GROUP}/{VERSION}"
CRD_NAME = f"{PLURAL}.{GROUP}"


def platform_resource(config: PlatformConfig, name: str, namespace: str | None = None) -> dict[str, Any]:
    """The FloePlatform custom resource whose spec is ``config``, with the keys set in platform.yaml."""
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    spec = config.model_dump(mode="json", exclude_unset=True)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}

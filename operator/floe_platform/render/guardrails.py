"""Where the profiles become namespace guardrails: a LimitRange and a ResourceQuota.

``infrastructure.namespace_limits`` turns them on. The numbers are exact (``config.quantity`` parses every
quantity to a ``Decimal``), so ``1Ei`` or ``1G`` give the same answer here as in validation:

==========================  ===================================================================
LimitRange max.cpu           largest CPU limit of the profiles and of the service containers
LimitRange max.memory        largest memory limit of the profiles and of the service containers
quota requests.cpu           concurrent_runs x largest profile CPU request + headroom CPU
quota requests.memory        concurrent_runs x largest profile memory request + headroom memory
quota limits.memory          concurrent_runs x largest profile memory limit + headroom memory
==========================  ===================================================================

No ``limits.cpu`` in the quota: the platform's services set only memory limits, by design, and such a
quota would refuse them. Plain dicts in, plain dicts out, like ``render.podtemplate``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from floe_platform.config.models import NamespaceLimits, PlatformConfig
from floe_platform.config.quantity import format_quantity, parse_quantity
from floe_platform.render.podtemplate import MANAGED_BY, MANAGED_BY_LABEL, PLATFORM_LABEL

COMPONENT = "namespace-limits"


def limit_range_name(platform_name: str) -> str:
    return f"{platform_name}-limits"


def resource_quota_name(platform_name: str) -> str:
    return f"{platform_name}-quota"


def guardrail_labels(platform_name: str) -> dict[str, str]:
    """The PodTemplates' labels without the profile: the operator lists its children by these."""
    return {
        "app.kubernetes.io/name": "floe-platform",
        "app.kubernetes.io/instance": platform_name,
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/part-of": "floe-platform",
        MANAGED_BY_LABEL: MANAGED_BY,
        PLATFORM_LABEL: platform_name,
    }


def _largest(quantities: Iterable[str | None]) -> Decimal:
    return max((parse_quantity(text) for text in quantities if text is not None), default=Decimal(0))


def _metadata(name: str, platform_name: str, namespace: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": guardrail_labels(platform_name)}
    if namespace:
        metadata["namespace"] = namespace
    return metadata


def render_limit_range(config: PlatformConfig, platform_name: str, namespace: str | None) -> dict[str, Any]:
    """No container above the largest profile, nor above the platform's own containers."""
    profiles = config.infrastructure.resource_profiles.values()
    services = config.infrastructure.namespace_limits.service_container_limits
    cpu = _largest([p.limits.cpu for p in profiles] + [s.cpu for s in services])
    memory = _largest([p.limits.memory for p in profiles] + [s.memory for s in services])
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _metadata(limit_range_name(platform_name), platform_name, namespace),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "max": {"cpu": format_quantity(cpu), "memory": format_quantity(memory, True)},
                }
            ]
        },
    }


def quota_hard(config: PlatformConfig) -> dict[str, str]:
    """Room for ``concurrent_runs`` run pods of the largest profile, plus the services' headroom."""
    profiles = config.infrastructure.resource_profiles.values()
    limits: NamespaceLimits = config.infrastructure.namespace_limits
    runs = Decimal(limits.concurrent_runs)
    headroom_cpu = parse_quantity(limits.services_headroom.cpu)
    headroom_memory = parse_quantity(limits.services_headroom.memory)
    request_cpu = runs * _largest(p.requests.cpu for p in profiles) + headroom_cpu
    request_memory = runs * _largest(p.requests.memory for p in profiles) + headroom_memory
    limit_memory = runs * _largest(p.limits.memory for p in profiles) + headroom_memory
    return {
        "requests.cpu": format_quantity(request_cpu),
        "requests.memory": format_quantity(request_memory, True),
        "limits.memory": format_quantity(limit_memory, True),
    }


def render_resource_quota(
    config: PlatformConfig, platform_name: str, namespace: str | None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _metadata(resource_quota_name(platform_name), platform_name, namespace),
        "spec": {"hard": quota_hard(config)},
    }


def render_guardrails(
    config: PlatformConfig, platform_name: str | None = None, namespace: str | None = None
) -> list[dict[str, Any]]:
    """The LimitRange and the ResourceQuota when namespace_limits is enabled; nothing otherwise."""
    if not config.infrastructure.namespace_limits.enabled:
        return []
    name = platform_name or config.platform.name
    return [render_limit_range(config, name, namespace), render_resource_quota(config, name, namespace)]

"""Helpers shared by the operator tests: FloePlatform bodies, PodTemplate reads, polling, fault injection."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, TypeVar

import attrs
import kmock
import kubernetes
from kmock._internal import enums
from support.operator_process import eventually

from floe_platform.api import platform_resource
from floe_platform.config import load_platform

__all__ = ["eventually"]

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "platform-config/platform/production/platform.yaml"
NAMESPACE = "floe"
CR = ("floe.dev", "v1alpha1", NAMESPACE, "floeplatforms")


def production_cr(name: str) -> dict[str, Any]:
    """`floe cr` of the production example: profiles default, transform and ingest."""
    return platform_resource(load_platform(PRODUCTION), name, NAMESPACE)


def with_profile(resource: dict[str, Any], profile: str, **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(resource)
    changed["spec"]["infrastructure"]["resource_profiles"][profile].update(changes)
    return changed


def templates(core: Any, platform: str) -> dict[str, dict[str, Any]]:
    """This platform's PodTemplates in the namespace, by name, as plain dicts."""
    items = core.list_namespaced_pod_template(NAMESPACE).items
    plain = [core.api_client.sanitize_for_serialization(item) for item in items]
    return {
        item["metadata"]["name"]: item
        for item in plain
        if item["metadata"].get("labels", {}).get("floe.dev/platform") == platform
    }


@attrs.frozen
class InjectedFault(kmock.KubernetesError):  # type: ignore[misc]
    status: int = 500
    reason: str = "InternalError"
    message: str = "injected by the test"


class FaultInjector:
    """Answer the next N matching requests with an error *before* the emulator applies them.

    kmock's own reactions answer after the emulator has already stored the change, which is not what a
    failing API server does; this wraps the emulator's handler instead. Keyed by (action, plural).
    """

    def __init__(self, emulator: Any) -> None:
        self._emulator = emulator
        self._original = emulator._handle
        self._pending: dict[tuple[enums.action, str], list[int]] = {}
        self.served: list[tuple[str, str, int]] = []
        self.seen: dict[tuple[enums.action, str], int] = {}
        emulator._handle = self._handle

    def count(self, action: enums.action, plural: str) -> int:
        """How many such requests reached the emulator since this injector was installed."""
        return self.seen.get((action, plural), 0)

    def fail_next(self, action: enums.action, plural: str, *statuses: int) -> None:
        self._pending.setdefault((action, plural), []).extend(statuses)

    async def _handle(self, request: Any) -> Any:
        plural = getattr(request.resource, "plural", None) or ""
        key = (request.action, plural)
        self.seen[key] = self.seen.get(key, 0) + 1
        queue = self._pending.get(key)
        if queue and request.subresource is None:
            status = queue.pop(0)
            self.served.append((str(request.action.value), plural, status))
            reason = "Conflict" if status == 409 else "InternalError"
            return await self._emulator._render_error(InjectedFault(status=status, reason=reason))
        return await self._original(request)

    def remove(self) -> None:
        self._emulator._handle = self._original


def custom_objects(cluster: Any) -> Any:
    return kubernetes.client.CustomObjectsApi(cluster.api_client())


def core_api(cluster: Any) -> Any:
    return kubernetes.client.CoreV1Api(cluster.api_client())

"""Delete a release's FloePlatforms and wait until they are gone: the chart's ``pre-delete`` hook.

``helm uninstall`` deletes the operator together with everything else. A FloePlatform still there at that
point keeps the operator's finalizer for ever (Terminating, and its namespace with it). The hook runs first,
while the operator still runs: it deletes the release's FloePlatforms and returns once the operator has
handled each deletion (its finalizer removed, the object gone), or fails after a timeout naming those left.

API calls, as the hook's ServiceAccount: list and delete FloePlatforms in one namespace (the chart's Role
grants exactly these).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import kubernetes  # type: ignore[import-untyped]

from floe_platform.api import GROUP, PLURAL, VERSION

POLL_SECONDS = 1.0


class UninstallError(RuntimeError):
    """The FloePlatforms could not be deleted; the message says which, why and what to check."""


class PlatformsLeftError(UninstallError):
    """FloePlatforms still there after the timeout."""


def platform_names(api: Any, namespace: str, selector: str) -> list[str]:
    try:
        listed = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, label_selector=selector)
    except kubernetes.client.ApiException as error:
        raise UninstallError(
            f"cannot list FloePlatforms in {namespace}: {error.status} {error.reason}"
        ) from None
    return sorted(item["metadata"]["name"] for item in listed.get("items", []))


def delete_platforms(
    api: Any,
    namespace: str,
    selector: str,
    timeout_seconds: float,
    report: Callable[[str], None] = print,
) -> list[str]:
    """Delete every FloePlatform in ``namespace`` matching ``selector``; wait until none is left.

    Returns the names deleted. Raises ``PlatformsLeftError`` when some remain after ``timeout_seconds``,
    ``UninstallError`` when the API refuses a call.
    """
    names = platform_names(api, namespace, selector)
    for name in names:
        try:
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except kubernetes.client.ApiException as error:
            if error.status != 404:  # 404: deleted meanwhile, which is what we wanted
                raise UninstallError(
                    f"cannot delete FloePlatform {namespace}/{name}: {error.status} {error.reason}"
                ) from None
        report(f"deleting FloePlatform {namespace}/{name}")
    deadline = time.monotonic() + timeout_seconds
    left = names
    while left:
        if time.monotonic() > deadline:
            raise PlatformsLeftError(
                f"FloePlatforms still present in {namespace} after {timeout_seconds:g} s: {', '.join(left)}; "
                "the operator removes its finalizer from each: check that it runs "
                f"(kubectl -n {namespace} get fp,pods), then run helm uninstall again"
            )
        time.sleep(POLL_SECONDS)
        left = platform_names(api, namespace, selector)
    report(
        f"{len(names)} FloePlatform(s) deleted from {namespace}"
        if names
        else f"no FloePlatform in {namespace}"
    )
    return names


def custom_objects_api() -> Any:
    """CustomObjectsApi from the in-cluster ServiceAccount, else from KUBECONFIG."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.CustomObjectsApi()

"""Delete a release's FloePlatforms and wait until they are gone: the chart's ``pre-delete`` hook.

``helm uninstall`` deletes the operator together with everything else. The hook runs first, while the
operator still runs: it deletes the release's FloePlatforms and returns once each is gone (their
PodTemplates follow through the garbage collector), or fails after a timeout naming those left. The
operator puts no finalizer on FloePlatforms; one that an earlier version marked is released by the
running operator, which is why the hook waits.

API calls, as the hook's ServiceAccount: list and delete FloePlatforms in one namespace (the chart's Role
grants exactly these).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from floe_platform.api import GROUP, PLURAL, VERSION
from floe_platform.controller.kubeapi import ApiStatusError, KubeClient, login

POLL_SECONDS = 1.0


class UninstallError(RuntimeError):
    """The FloePlatforms could not be deleted; the message says which, why and what to check."""


class PlatformsLeftError(UninstallError):
    """FloePlatforms still there after the timeout."""


def _collection(namespace: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"


def platform_names(api: KubeClient, namespace: str, selector: str) -> list[str]:
    try:
        listed = api.request_json("GET", _collection(namespace), query={"labelSelector": selector})
    except ApiStatusError as error:
        raise UninstallError(
            f"cannot list FloePlatforms in {namespace}: {error.status} {error.reason}"
        ) from None
    return sorted(item["metadata"]["name"] for item in listed.get("items", []))


def delete_platforms(
    api: KubeClient,
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
            api.request("DELETE", f"{_collection(namespace)}/{name}")
        except ApiStatusError as error:
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
                "a finalizer holds them (the operator removes an earlier version's): check that it runs "
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


def platforms_api() -> KubeClient:
    """A client from the in-cluster ServiceAccount, else from KUBECONFIG; ``CredentialsError`` when neither
    works."""
    return KubeClient(login("floe delete-platforms"))

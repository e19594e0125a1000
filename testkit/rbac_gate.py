"""Authentication and RBAC in front of the API emulator, which has neither.

``RbacGate`` is an emulator ``fault_hook``. Each identity under test gets its own bearer token (written
into its own kubeconfig with ``EmulatedCluster.write_kubeconfig``); the gate records every request that
token makes as RBAC attributes, and answers 403 Forbidden, as kube-apiserver would, to every request the
identity's rendered Roles do not allow. Requests with any other token (the test's own set-up and reads)
pass untouched. What this cannot show is the real authorizer: the control-plane tests use real tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web

from testkit.faults import status_body
from testkit.rbac import Authorizer, RequestAttributes, request_attributes


@dataclass
class Identity:
    """A ServiceAccount as the gate knows it: its user name and what the rendered RBAC lets it do."""

    user: str
    authorizer: Authorizer
    requests: list[RequestAttributes] = field(default_factory=list)
    denied: list[RequestAttributes] = field(default_factory=list)

    def needed(self) -> set[tuple[str, str, str, str]]:
        """(verb, group, resource, subresource) of every resource request made, allowed or not."""
        return {request.key() for request in self.requests if request.is_resource_request}


@dataclass
class RbacGate:
    identities: dict[str, Identity] = field(default_factory=dict)

    def add(self, token: str, namespace: str, account: str, manifests: list[dict[str, Any]]) -> Identity:
        identity = Identity(
            user=f"system:serviceaccount:{namespace}:{account}",
            authorizer=Authorizer.for_service_account(manifests, namespace, account),
        )
        self.identities[token] = identity
        return identity

    async def __call__(self, request: Any) -> aiohttp.web.StreamResponse | None:
        identity = self.identities.get(_bearer_token(request.headers or {}))
        if identity is None:
            return None
        method = getattr(request.method, "value", str(request.method))
        attributes = request_attributes(method, request.url.path, request.params)
        identity.requests.append(attributes)
        if identity.authorizer.allows(attributes):
            return None
        identity.denied.append(attributes)
        return aiohttp.web.json_response(_forbidden(identity.user, attributes), status=403)


def _bearer_token(headers: Mapping[str, str]) -> str:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    return value.removeprefix("Bearer ").strip()


def _forbidden(user: str, request: RequestAttributes) -> dict[str, Any]:
    """The Status body kube-apiserver sends with a 403, with its wording."""
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    scope = f' in the namespace "{request.namespace}"' if request.namespace else " at the cluster scope"
    message = (
        f'{resource} "{request.name}" is forbidden: ' if request.name else f"{resource} is forbidden: "
    ) + f'User "{user}" cannot {request.verb} resource "{resource}" in API group "{request.group}"{scope}'
    return status_body(403, message, {"name": request.name, "kind": request.resource})

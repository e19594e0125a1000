"""Kubernetes RBAC, evaluated the way kube-apiserver evaluates it, for requests recorded from our own code.

Two halves, both following the API server's own rules:

* ``request_attributes`` turns an HTTP request (method, path, query) into the attributes RBAC sees: verb,
  API group, resource, subresource, namespace and name. It mirrors the API server's request-info
  resolution: ``GET`` of a collection is ``list`` (``watch`` with ``watch=true``), ``DELETE`` of a
  collection is ``deletecollection``, ``/api/v1/namespaces/<name>`` is the namespace object itself.
* ``Authorizer`` holds the Roles, ClusterRoles and bindings of a rendered chart and answers whether one
  ServiceAccount may make a request: a RoleBinding grants in its own namespace only, a ClusterRoleBinding
  everywhere; ``*`` matches any verb, group or resource, ``<resource>/<subresource>`` must be named to be
  granted, ``*/<subresource>`` grants that subresource of every resource, and ``resourceNames`` restricts
  to named objects. Every authenticated identity also gets the bootstrap ``system:discovery``,
  ``system:public-info-viewer`` and ``system:basic-user`` rules, as on any cluster.

This is a model of RBAC, used to derive and check permissions against an API stand-in; the real
authorizer is exercised by the control-plane tests, with each component's own ServiceAccount token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The legacy core group is served under /api, every other group under /apis/<group>.
_COLLECTION_VERBS = {"GET": "list", "DELETE": "deletecollection", "POST": "create"}
_OBJECT_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "POST": "create"}
# Namespaces have subresources of their own; /namespaces/<ns>/status is not "status in namespace <ns>".
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
# What every authenticated identity may do on any cluster (bootstrap ClusterRoles bound to
# system:authenticated): discovery, version and health, and asking about its own permissions.
_BOOTSTRAP_NON_RESOURCE: tuple[str, ...] = (
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/readyz",
)
_BOOTSTRAP_NON_RESOURCE += ("/version", "/version/", "/openapi", "/openapi/*")


@dataclass(frozen=True)
class RequestAttributes:
    """What RBAC sees of one request. ``path`` is set for non-resource requests (discovery, version)."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource_request(self) -> bool:
        return not self.path

    def key(self) -> tuple[str, str, str, str]:
        """(verb, group, resource, subresource): one permission, whatever object or namespace."""
        return (self.verb, self.group, self.resource, self.subresource)

    def __str__(self) -> str:
        if not self.is_resource_request:
            return f"{self.verb} {self.path}"
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        group = self.group or "core"
        where = f" in {self.namespace}" if self.namespace else " (cluster scope)"
        return f"{self.verb} {group}/{resource}{where}"


def request_attributes(method: str, path: str, params: Mapping[str, str] | None = None) -> RequestAttributes:
    """The RBAC attributes of ``method path?params``, as kube-apiserver resolves them."""
    method = method.upper()
    params = params or {}
    parts = [part for part in path.split("?", 1)[0].strip("/").split("/") if part]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return RequestAttributes(verb=method.lower(), path="/" + "/".join(parts))
    watch = False
    if rest[:1] == ["watch"]:  # the deprecated /watch/ path prefix
        watch, rest = True, rest[1:]
    namespace = ""
    if rest[:1] == ["namespaces"] and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    watch = watch or params.get("watch", "").lower() in ("true", "1")
    if name:
        verb = "watch" if watch and method == "GET" else _OBJECT_VERBS.get(method, method.lower())
    else:
        verb = "watch" if watch and method == "GET" else _COLLECTION_VERBS.get(method, method.lower())
    return RequestAttributes(verb, group, resource, subresource, namespace, name)


@dataclass(frozen=True)
class PolicyRule:
    """One rule of a Role or ClusterRole."""

    verbs: frozenset[str]
    api_groups: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    resource_names: frozenset[str] = frozenset()
    non_resource_urls: frozenset[str] = frozenset()

    @classmethod
    def from_manifest(cls, rule: Mapping[str, Any]) -> PolicyRule:
        return cls(
            verbs=frozenset(rule.get("verbs") or ()),
            api_groups=frozenset(rule.get("apiGroups") or ()),
            resources=frozenset(rule.get("resources") or ()),
            resource_names=frozenset(rule.get("resourceNames") or ()),
            non_resource_urls=frozenset(rule.get("nonResourceURLs") or ()),
        )

    def allows(self, request: RequestAttributes) -> bool:
        if not ("*" in self.verbs or request.verb in self.verbs):
            return False
        if not request.is_resource_request:
            return any(_url_matches(url, request.path) for url in self.non_resource_urls)
        return (
            ("*" in self.api_groups or request.group in self.api_groups)
            and self._resource_matches(request)
            and (not self.resource_names or request.name in self.resource_names)
        )

    def _resource_matches(self, request: RequestAttributes) -> bool:
        combined = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
        for granted in self.resources:
            if granted in ("*", combined):
                return True
            if request.subresource and granted == f"*/{request.subresource}":
                return True
        return False

    def grants(self) -> set[tuple[str, str, str, str]]:
        """Every (verb, group, resource, subresource) this rule names explicitly (no wildcards)."""
        found = set()
        for verb in self.verbs:
            for group in self.api_groups:
                for resource in self.resources:
                    base, _, sub = resource.partition("/")
                    found.add((verb, group, base, sub))
        return found


def _url_matches(granted: str, path: str) -> bool:
    if granted in ("*", path):
        return True
    return granted.endswith("*") and path.startswith(granted[:-1])


_BOOTSTRAP_RULES = (
    PolicyRule(verbs=frozenset({"get"}), non_resource_urls=frozenset(_BOOTSTRAP_NON_RESOURCE)),
    PolicyRule(
        verbs=frozenset({"create"}),
        api_groups=frozenset({"authorization.k8s.io"}),
        resources=frozenset({"selfsubjectaccessreviews", "selfsubjectrulesreviews"}),
    ),
)


@dataclass
class Authorizer:
    """The RBAC of a set of manifests, as it applies to one ServiceAccount."""

    namespaced: dict[str, list[PolicyRule]] = field(default_factory=dict)
    cluster_wide: list[PolicyRule] = field(default_factory=list)

    @classmethod
    def for_service_account(
        cls, manifests: Iterable[Mapping[str, Any]], namespace: str, name: str
    ) -> Authorizer:
        docs = list(manifests)
        roles = {
            (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]): [
                PolicyRule.from_manifest(rule) for rule in doc.get("rules") or ()
            ]
            for doc in docs
            if doc.get("kind") in ("Role", "ClusterRole")
        }
        authorizer = cls()
        for doc in docs:
            if doc.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            if not _binds(doc, namespace, name):
                continue
            ref = doc["roleRef"]
            binding_namespace = doc["metadata"].get("namespace", "")
            role_namespace = binding_namespace if ref["kind"] == "Role" else ""
            rules = roles.get((ref["kind"], role_namespace, ref["name"]), [])
            if doc["kind"] == "ClusterRoleBinding":
                authorizer.cluster_wide.extend(rules)
            else:
                authorizer.namespaced.setdefault(binding_namespace, []).extend(rules)
        return authorizer

    def rules_for(self, namespace: str) -> list[PolicyRule]:
        return [*_BOOTSTRAP_RULES, *self.cluster_wide, *self.namespaced.get(namespace, [])]

    def allows(self, request: RequestAttributes) -> bool:
        return any(rule.allows(request) for rule in self.rules_for(request.namespace))

    def granted(self) -> set[tuple[str, str, str, str]]:
        """Every explicit (verb, group, resource, subresource) the bindings give, bootstrap rules aside."""
        rules = [*self.cluster_wide, *(rule for rules in self.namespaced.values() for rule in rules)]
        return set().union(*(rule.grants() for rule in rules)) if rules else set()


def _binds(binding: Mapping[str, Any], namespace: str, name: str) -> bool:
    for subject in binding.get("subjects") or ():
        if subject.get("kind") == "ServiceAccount" and (subject.get("namespace"), subject["name"]) == (
            namespace,
            name,
        ):
            return True
        if subject.get("kind") == "Group" and subject["name"] in (
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        ):
            return True
    return False

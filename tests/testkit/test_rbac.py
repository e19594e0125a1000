"""The RBAC model in ``testkit.rbac`` follows kube-apiserver's request resolution and rule matching.

Pure code, no server: each case is a rule of Kubernetes' RBAC documented behaviour.
"""

from __future__ import annotations

import pytest

from testkit.rbac import Authorizer, PolicyRule, RequestAttributes, request_attributes

CORE, BATCH, FLOE = "/api/v1/namespaces/floe", "/apis/batch/v1/namespaces/floe", "/apis/floe.dev/v1alpha1"


@pytest.mark.parametrize(
    ("method", "path", "params", "expected"),
    [
        ("GET", f"{CORE}/pods", {}, ("list", "", "pods", "", "floe", "")),
        ("GET", f"{CORE}/pods", {"watch": "true"}, ("watch", "", "pods", "", "floe", "")),
        ("GET", f"{CORE}/pods/p/log", {}, ("get", "", "pods", "log", "floe", "p")),
        ("DELETE", f"{CORE}/pods/p", {}, ("delete", "", "pods", "", "floe", "p")),
        ("DELETE", f"{CORE}/pods", {}, ("deletecollection", "", "pods", "", "floe", "")),
        ("GET", f"{BATCH}/jobs/j/status", {}, ("get", "batch", "jobs", "status", "floe", "j")),
        (
            "PATCH",
            f"{FLOE}/namespaces/n/floeplatforms/x",
            {},
            ("patch", "floe.dev", "floeplatforms", "", "n", "x"),
        ),
        ("POST", f"{CORE}/events", {}, ("create", "", "events", "", "floe", "")),
        ("GET", f"{FLOE}/floeplatforms", {"watch": "1"}, ("watch", "floe.dev", "floeplatforms", "", "", "")),
        ("GET", CORE, {}, ("get", "", "namespaces", "", "floe", "floe")),
        ("PUT", f"{CORE}/finalize", {}, ("update", "", "namespaces", "finalize", "floe", "floe")),
        ("GET", "/api/v1/watch/namespaces/floe/pods", {}, ("watch", "", "pods", "", "floe", "")),
    ],
)
def test_requests_resolve_to_the_attributes_the_api_server_authorizes(
    method: str, path: str, params: dict[str, str], expected: tuple[str, ...]
) -> None:
    found = request_attributes(method, path, params)
    assert (
        found.verb,
        found.group,
        found.resource,
        found.subresource,
        found.namespace,
        found.name,
    ) == expected


def test_discovery_is_a_non_resource_request_every_identity_may_make() -> None:
    discovery = request_attributes("GET", "/apis/floe.dev/v1alpha1")
    assert not discovery.is_resource_request
    assert Authorizer().allows(discovery)
    assert not Authorizer().allows(request_attributes("GET", "/api/v1/namespaces/floe/pods"))


def _rule(verbs: str, groups: str, resources: str, names: str = "") -> PolicyRule:
    split = lambda text: frozenset(text.split()) if text else frozenset()  # noqa: E731
    return PolicyRule(split(verbs), split(groups) or frozenset({""}), split(resources), split(names))


def _attrs(verb: str, resource: str, sub: str = "", group: str = "", name: str = "x") -> RequestAttributes:
    return RequestAttributes(verb, group, resource, sub, "floe", name)


def test_a_resource_grant_does_not_cover_its_subresources() -> None:
    """`jobs` get does not allow `jobs/status` get: the bug that failed every run."""
    jobs = _rule("get", "batch", "jobs")
    assert jobs.allows(_attrs("get", "jobs", group="batch"))
    assert not jobs.allows(_attrs("get", "jobs", "status", group="batch"))
    assert _rule("get", "batch", "jobs/status").allows(_attrs("get", "jobs", "status", group="batch"))


def test_wildcards_for_verbs_groups_resources_and_subresources() -> None:
    assert _rule("*", "batch", "jobs").allows(_attrs("delete", "jobs", group="batch"))
    assert _rule("get", "*", "jobs").allows(_attrs("get", "jobs", group="batch"))
    assert _rule("get", "", "*").allows(_attrs("get", "pods", "log"))
    assert _rule("get", "", "*/log").allows(_attrs("get", "pods", "log"))
    assert not _rule("get", "", "*/log").allows(_attrs("get", "pods"))
    assert not _rule("get", "batch", "jobs").allows(_attrs("get", "jobs", group="apps"))


def test_resource_names_restrict_to_the_named_objects() -> None:
    named = _rule("get", "", "podtemplates", "a")
    assert named.allows(_attrs("get", "podtemplates", name="a"))
    assert not named.allows(_attrs("get", "podtemplates", name="b"))
    assert not named.allows(_attrs("list", "podtemplates", name=""))


def _binding(kind: str, role_kind: str, namespace: str | None = None) -> dict[str, object]:
    metadata: dict[str, str] = {"name": "b"} | ({"namespace": namespace} if namespace else {})
    return {
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"kind": role_kind, "name": "r", "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "floe"}],
    }


RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]


def test_a_role_binding_grants_in_its_own_namespace_only() -> None:
    manifests = [
        {"kind": "Role", "metadata": {"name": "r", "namespace": "floe"}, "rules": RULES},
        _binding("RoleBinding", "Role", "floe"),
    ]
    authorizer = Authorizer.for_service_account(manifests, "floe", "sa")
    assert authorizer.allows(RequestAttributes("list", "", "pods", namespace="floe"))
    assert not authorizer.allows(RequestAttributes("list", "", "pods", namespace="other"))
    assert not authorizer.allows(RequestAttributes("list", "", "pods"))  # cluster scope
    assert not Authorizer.for_service_account(manifests, "floe", "someone-else").allows(
        RequestAttributes("list", "", "pods", namespace="floe")
    )


def test_a_cluster_role_binding_grants_everywhere_and_a_role_binding_scopes_a_cluster_role() -> None:
    cluster_role = {"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": RULES}
    everywhere = Authorizer.for_service_account(
        [cluster_role, _binding("ClusterRoleBinding", "ClusterRole")], "floe", "sa"
    )
    assert everywhere.allows(RequestAttributes("list", "", "pods"))
    assert everywhere.allows(RequestAttributes("list", "", "pods", namespace="other"))
    scoped = Authorizer.for_service_account(
        [cluster_role, _binding("RoleBinding", "ClusterRole", "team")], "floe", "sa"
    )
    assert scoped.allows(RequestAttributes("list", "", "pods", namespace="team"))
    assert not scoped.allows(RequestAttributes("list", "", "pods", namespace="floe"))

"""The fault proxy (``testkit.faultproxy``) in front of the real kube-apiserver of the control plane.

Real: kube-apiserver v1.37 and etcd (what the proxy forwards to), a ServiceAccount's TokenRequest token and
RBAC (what the proxy must pass through untouched). The client is ``testkit.controlplane.KubeApi`` and, for
watches, a plain streaming HTTPS read. Each test compares what came through the proxy with what the server
itself holds (read directly as admin), so a proxy that drops a query, a body, a header or buffers a watch
fails here. The faults are the ``FaultPlan`` vocabulary the operator's fault tests use.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from testkit.controlplane import ApiError, ControlPlane, KubeApi, service_account_token
from testkit.faultproxy import Action, FaultProxy
from testkit.faults import FaultPlan, Rule

pytestmark = pytest.mark.slow  # the first test of a session starts the control plane

ACCOUNT = "proxied"
CONFIGMAPS = "/api/v1/namespaces/{ns}/configmaps"


@dataclass
class Proxied:
    proxy: FaultProxy
    admin: KubeApi  # straight to kube-apiserver
    api: KubeApi  # through the proxy, as the ServiceAccount
    token: str
    ns: str

    @property
    def configmaps(self) -> str:
        return CONFIGMAPS.format(ns=self.ns)


def _configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": data,
    }


@pytest.fixture
def proxied(control_plane: ControlPlane, control_plane_namespace: str, fault_proxy: FaultProxy) -> Proxied:
    """A ServiceAccount that may do anything with ConfigMaps (and nothing else) in a fresh namespace."""
    ns, admin = control_plane_namespace, control_plane.admin_api()
    admin.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT}},
    )
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{kind}"
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}
    admin.create(
        rbac.format(ns=ns, kind="roles"),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": ACCOUNT},
            "rules": [rule],
        },
    )
    admin.create(
        rbac.format(ns=ns, kind="rolebindings"),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": ns}],
        },
    )
    token = service_account_token(admin, ns, ACCOUNT)
    return Proxied(
        fault_proxy, admin, KubeApi(fault_proxy.server, control_plane.ca_file, token=token), token, ns
    )


def _open(proxied: Proxied, path: str, timeout: float = 10) -> http.client.HTTPResponse:
    request = urllib.request.Request(proxied.proxy.server + path)
    request.add_header("Authorization", f"Bearer {proxied.token}")
    context = ssl.create_default_context(cafile=str(proxied.proxy.plane.ca_file))
    response: http.client.HTTPResponse = urllib.request.urlopen(request, context=context, timeout=timeout)
    return response


def test_requests_reach_the_server_with_method_query_body_and_content_type(proxied: Proxied) -> None:
    """A create, a label-selected list, a JSON merge patch and a delete through the proxy do on the real
    server exactly what they say; the admin's direct reads show it."""
    created = proxied.api.create(proxied.configmaps, _configmap("one", {"pick": "yes"}, colour="red"))
    proxied.api.create(proxied.configmaps, _configmap("two", {"pick": "no"}, colour="blue"))
    stored = proxied.admin.get(f"{proxied.configmaps}/one")
    assert stored["data"] == {"colour": "red"}
    assert stored["metadata"]["uid"] == created["metadata"]["uid"]

    selected = proxied.api.get(f"{proxied.configmaps}?labelSelector=pick%3Dyes")
    assert [item["metadata"]["name"] for item in selected["items"]] == ["one"]

    patch = json.dumps({"data": {"shape": "round"}}).encode()
    request = urllib.request.Request(
        f"{proxied.proxy.server}{proxied.configmaps}/one", data=patch, method="PATCH"
    )
    request.add_header("Authorization", f"Bearer {proxied.token}")
    request.add_header("Content-Type", "application/merge-patch+json")
    context = ssl.create_default_context(cafile=str(proxied.proxy.plane.ca_file))
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        assert response.status == 200
    assert proxied.admin.get(f"{proxied.configmaps}/one")["data"] == {"colour": "red", "shape": "round"}

    proxied.api.delete(f"{proxied.configmaps}/two")
    names = [item["metadata"]["name"] for item in proxied.admin.get(proxied.configmaps)["items"]]
    assert "two" not in names
    assert "one" in names
    seen = [(e.request.action, e.status, e.injected) for e in proxied.proxy.exchanges]
    assert seen == [
        (Action.CREATE, 201, False),
        (Action.CREATE, 201, False),
        (Action.LIST, 200, False),
        (Action.UPDATE, 200, False),
        (Action.DELETE, 200, False),
    ]


def test_the_server_authorizes_the_forwarded_token(proxied: Proxied) -> None:
    """RBAC stays real: the ServiceAccount may not read Secrets, and kube-apiserver's refusal names it."""
    with pytest.raises(ApiError) as refused:
        proxied.api.get(f"/api/v1/namespaces/{proxied.ns}/secrets")
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert f'User "system:serviceaccount:{proxied.ns}:{ACCOUNT}" cannot list resource "secrets"' in message


def test_watch_events_arrive_while_the_watch_is_open(proxied: Proxied) -> None:
    """A watch is streamed, not buffered: the ADDED event of an object created after the watch opened
    reaches the client long before the server would end the watch (timeoutSeconds=60)."""
    listed = proxied.api.get(proxied.configmaps)
    version = listed["metadata"]["resourceVersion"]
    with _open(
        proxied, f"{proxied.configmaps}?watch=true&resourceVersion={version}&timeoutSeconds=60"
    ) as stream:
        started = time.monotonic()
        proxied.admin.create(proxied.configmaps, _configmap("late", colour="green"))
        event = json.loads(stream.readline())
        elapsed = time.monotonic() - started
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "late")
    assert elapsed < 10, f"the event took {elapsed:.1f} s: the proxy held the stream back"


def test_a_rule_fails_only_its_nth_matching_request_and_the_server_never_sees_it(proxied: Proxied) -> None:
    """``every=2, times=1``: the second create fails with the injected 500, the others reach the server; the
    failed create left nothing behind, and reads (another action) were never touched."""
    plan = FaultPlan([Rule("second-create", frozenset({"CREATE"}), "configmaps", status=500, every=2)])
    proxied.proxy.fault_hook = plan
    outcomes = []
    for name in ("a", "b", "c", "d"):
        try:
            proxied.api.create(proxied.configmaps, _configmap(name))
            outcomes.append("201")
        except ApiError as error:
            outcomes.append(f"{error.status} {json.loads(error.body)['reason']}")
        proxied.api.get(proxied.configmaps)
    assert outcomes == ["201", "500 InternalError", "201", "201"]
    names = {item["metadata"]["name"] for item in proxied.admin.get(proxied.configmaps)["items"]}
    assert {"a", "c", "d"} <= names
    assert "b" not in names
    assert plan.fired == {"second-create": 1}
    injected = [(e.request.action, e.status) for e in proxied.proxy.exchanges if e.injected]
    assert injected == [(Action.CREATE, 500)]


def test_expired_watch_ends_with_an_error_410_event(proxied: Proxied) -> None:
    plan = FaultPlan([Rule("expire", frozenset({"WATCH"}), "configmaps", expire_watch=True)])
    proxied.proxy.fault_hook = plan
    with _open(proxied, f"{proxied.configmaps}?watch=true&timeoutSeconds=30") as stream:
        event = json.loads(stream.readline())
        assert stream.readline() == b""  # and the stream ends there
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    # The next watch is the real server's again.
    with _open(proxied, f"{proxied.configmaps}?watch=true&timeoutSeconds=1") as stream:
        assert stream.status == 200


def test_a_slow_rule_delays_the_answer_but_the_server_serves_it(proxied: Proxied) -> None:
    proxied.admin.create(proxied.configmaps, _configmap("slow", colour="grey"))
    proxied.proxy.fault_hook = FaultPlan([Rule("slow", frozenset({"FETCH"}), "configmaps", delay=1.0)])
    started = time.monotonic()
    answer = proxied.api.get(f"{proxied.configmaps}/slow")
    assert time.monotonic() - started >= 1.0
    assert answer["data"] == {"colour": "grey"}
    started = time.monotonic()
    proxied.api.get(f"{proxied.configmaps}/slow")  # times=1: the next one is prompt
    assert time.monotonic() - started < 1.0


def test_a_reset_rule_drops_the_connection_without_an_answer(proxied: Proxied) -> None:
    proxied.proxy.fault_hook = FaultPlan([Rule("reset", frozenset({"CREATE"}), "configmaps", reset=True)])
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, urllib.error.URLError)):
        proxied.api.create(proxied.configmaps, _configmap("dropped"))
    with pytest.raises(ApiError) as missing:
        proxied.admin.get(f"{proxied.configmaps}/dropped")
    assert missing.value.status == 404
    proxied.api.create(proxied.configmaps, _configmap("kept"))  # the proxy itself is fine afterwards
    assert proxied.admin.get(f"{proxied.configmaps}/kept")["metadata"]["name"] == "kept"


def test_a_lost_answer_is_served_by_the_server_then_dropped(proxied: Proxied) -> None:
    """The create happens on the server, but the client only sees its connection reset."""
    lose = FaultPlan([Rule("lost", frozenset({"CREATE"}), "configmaps", lose_answer=True)])
    proxied.proxy.fault_hook = lose
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, urllib.error.URLError)):
        proxied.api.create(proxied.configmaps, _configmap("written", colour="white"))
    assert proxied.admin.get(f"{proxied.configmaps}/written")["data"] == {"colour": "white"}
    (exchange,) = [e for e in proxied.proxy.exchanges if e.injected]
    assert (exchange.served, exchange.status) == (201, None)

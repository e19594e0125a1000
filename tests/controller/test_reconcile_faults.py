"""`reconcile` and the kopf shell's `handlers.sync` called directly, through faults on the real control plane.

Real: kube-apiserver v1.37 and etcd; the chart's CRD and operator ServiceAccount, Role and RoleBinding (real
`helm template`), a real FloePlatform created by the admin (so the templates' ownerReference names an owner
that exists and kube-controller-manager's garbage collector leaves them alone); the real kubernetes client
authenticating with the operator's TokenRequest token. ``testkit.faultproxy`` sits in between and answers
the requests a fault rule picks (5xx, 409) itself; everything else reaches the server, and the proxy's log
shows every request made. No kopf runtime: kopf's event poster is replaced by a list.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import pytest

from floe_platform.config import parse_platform
from floe_platform.controller import handlers
from floe_platform.controller.client import TransientApiError, reconcile
from floe_platform.controller.kubeapi import KubeClient
from floe_platform.render import render_pod_templates
from testkit.controlplane import ControlPlane, KubeApi
from testkit.faultproxy import FaultProxy
from testkit.faults import FaultInjector
from testkit.operator_on_apiserver import FP, OPERATOR_SA, apply_crd, apply_operator_rbac, contains
from testkit.platforms import production_cr, with_profile

pytestmark = pytest.mark.slow  # the control plane (started once per session)

LOGGER = logging.getLogger("test")
Json = dict[str, Any]


@dataclass
class Reconciling:
    admin: KubeApi
    ns: str
    proxy: FaultProxy
    core: KubeClient  # the operator's own client, through the proxy, as the operator's ServiceAccount
    body: Json  # the FloePlatform "prod" as kube-apiserver stored it

    def templates(self) -> dict[str, Json]:
        items = self.admin.get(f"/api/v1/namespaces/{self.ns}/podtemplates")["items"]
        return {item["metadata"]["name"]: item for item in items}

    def assert_matches_renderer(self, body: Json) -> None:
        config = parse_platform(body["spec"], prefix=("spec",))
        rendered = render_pod_templates(config, platform_name=body["metadata"]["name"], namespace=self.ns)
        live = self.templates()
        assert sorted(live) == sorted(t["metadata"]["name"] for t in rendered)
        for template in rendered:
            stored = live[template["metadata"]["name"]]
            assert contains(stored["template"], template["template"]) == []
            assert stored["metadata"]["annotations"] == template["metadata"]["annotations"]


@pytest.fixture(scope="module")
def crd(control_plane: ControlPlane) -> None:
    apply_crd(control_plane)


@pytest.fixture
def reconciling(
    control_plane: ControlPlane,
    crd: None,
    control_plane_namespace: str,
    fault_proxy: FaultProxy,
    tmp_path: Path,
) -> Reconciling:
    ns, admin = control_plane_namespace, control_plane.admin_api()
    apply_operator_rbac(control_plane, ns)
    body = admin.create(FP.format(ns=ns), production_cr("prod", ns))
    kubeconfig = fault_proxy.service_account_kubeconfig(ns, OPERATOR_SA, tmp_path / "operator.kubeconfig")
    return Reconciling(admin, ns, fault_proxy, KubeClient.from_kubeconfig(kubeconfig), body)


def test_server_errors_and_conflicts_are_transient_and_a_retry_converges(reconciling: Reconciling) -> None:
    core, body = reconciling.core, reconciling.body
    faults = FaultInjector(reconciling.proxy)
    faults.fail_next("CREATE", "podtemplates", 500)
    with pytest.raises(TransientApiError, match="HTTP 500"):
        reconcile(core, body)
    faults.fail_next("UPDATE", "podtemplates", 409)
    changed = with_profile(body, "default", temp_volume_size="20Gi")
    reconcile(core, body)
    with pytest.raises(TransientApiError, match="HTTP 409"):
        reconcile(core, changed)
    reconcile(core, changed)
    reconciling.assert_matches_renderer(changed)
    assert faults.served == [("CREATE", "podtemplates", 500), ("UPDATE", "podtemplates", 409)]


def test_fresh_cache_means_no_api_call_at_all(reconciling: Reconciling) -> None:
    core, body = reconciling.core, reconciling.body
    reconcile(core, body)
    cache = list(reconciling.templates().values())
    before = len(reconciling.proxy.exchanges)
    # guardrails: namespace_limits is off and the (empty) caches of LimitRanges and quotas are fresh too
    assert not reconcile(core, body, known=cache, known_guardrails={}).changed
    assert reconciling.proxy.exchanges[before:] == []


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Warning events the shell posts, as (reason, message)."""
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(kopf, "warn", lambda body, *, reason, message: events.append((reason, message)))
    return events


def _sync(reconciling: Reconciling, retry: int | None) -> kopf.Patch:
    patch = kopf.Patch()
    body = kopf.Body(reconciling.body)  # type: ignore[arg-type]
    handlers.sync(reconciling.core, body, patch, LOGGER, known=None, retry=retry, always_warn=True)
    return patch


def test_transient_error_raises_temporary_error_with_growing_backoff(
    reconciling: Reconciling, posted: list[Any]
) -> None:
    FaultInjector(reconciling.proxy).fail_next("LIST", "podtemplates", 503, 503)
    with pytest.raises(kopf.TemporaryError) as first:
        _sync(reconciling, retry=0)
    with pytest.raises(kopf.TemporaryError) as third:
        _sync(reconciling, retry=3)
    assert (first.value.delay, third.value.delay) == (1.0, 8.0)
    assert reconciling.templates() == {}


def test_resync_does_not_raise_on_a_transient_error(reconciling: Reconciling, posted: list[Any]) -> None:
    """The timer's next tick is the retry; raising would only make kopf log a traceback."""
    FaultInjector(reconciling.proxy).fail_next("LIST", "podtemplates", 500)
    patch = _sync(reconciling, retry=None)
    assert patch["status"]["conditions"][1]["reason"] == "Retrying"
    _sync(reconciling, retry=None)  # the next tick goes through
    reconciling.assert_matches_renderer(reconciling.body)

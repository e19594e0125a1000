"""The e2e platform on this machine's real node (`make e2e`): the chart, values and FloePlatform of the
kind suite, on the session's Go-built control plane with a real kubelet node (``testkit.realnode``).

Order: build the PostgreSQL and LocalStack images here and import them into the node; make the real node
the cluster's one schedulable node (the kwok nodes are cordoned, its taint lifted), so every pod the chart
makes, its hooks and its test pod included, really runs; ``helm upgrade --install`` with values-e2e.yaml
and the real-node overlay; wait for the workloads; apply the FloePlatform made by ``floe cr``. Afterwards
the release is uninstalled and its namespace deleted (the suite's last test uninstalls it itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deployment import (
    E2E_DIR,
    NAMESPACE,
    RELEASE,
    Deployment,
    apply_platform,
    install_chart,
    run,
    wait_for_workloads,
)

from testkit.controlplane import ControlPlane
from testkit.realnode import images
from testkit.realnode.engine import Engine
from testkit.realnode.node import RealNode, make_sole_schedulable_node

REALNODE_VALUES_FILE = E2E_DIR / "values-realnode.yaml"


@contextmanager
def deploy_on_real_node(plane: ControlPlane, engine: Engine, node: RealNode) -> Iterator[Deployment]:
    images.ensure_images(engine, images.SERVICE_BUILDS)
    make_sole_schedulable_node(plane, node)
    deployment = Deployment(plane.kubeconfig)
    try:
        install_chart(plane.kubeconfig, overlays=[REALNODE_VALUES_FILE])
        wait_for_workloads(deployment, restart=False)
        apply_platform(deployment)
        yield deployment
    finally:
        remove_release(plane.kubeconfig)


def remove_release(kubeconfig: Path) -> None:
    """Uninstall (if the suite has not) and delete the namespace, waiting until both are gone."""
    kube = ["--kubeconfig", str(kubeconfig)]
    run(["helm", "uninstall", RELEASE, *kube, "--namespace", NAMESPACE, "--ignore-not-found", "--wait"])
    run(["kubectl", *kube, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=300s"])

"""A real Kubernetes control plane for tests and `make cluster`, built from Go modules.

Real: etcd, kube-apiserver (RBAC, ServiceAccount tokens, default admission plugins),
kube-controller-manager and kube-scheduler. Faked by kwok: the nodes and their pods' lifecycle; no
container runs and no image is pulled. See docs/control-plane.md.
"""

from testkit.controlplane.cluster import (
    ControlPlane,
    down,
    load,
    service_account_token,
    status,
    up,
    wait_for_service_account,
    write_service_account_kubeconfig,
)
from testkit.controlplane.kubeapi import ApiError, KubeApi, wait_for

__all__ = [
    "ApiError",
    "ControlPlane",
    "KubeApi",
    "down",
    "load",
    "service_account_token",
    "status",
    "up",
    "wait_for",
    "wait_for_service_account",
    "write_service_account_kubeconfig",
]

"""A real node: the Go-built kubelet of the control plane's release, on Debian's containerd and runc.

The kubelet joins a running ``testkit.controlplane`` control plane as ``system:node:<name>`` (a client
certificate from the control plane's CA, so the Node authorizer and NodeRestriction apply to it, as on
any cluster). It serves its API on the host's address (a loopback node IP is refused) with a certificate
from the same CA, so kube-apiserver can read container logs from it.

What the machines need from it, and why each setting is there:
- ``failCgroupV1: false``: the machines run cgroup v1, which kubelets since 1.35 refuse by default.
- ``cgroupDriver: cgroupfs`` and ``SystemdCgroup = false`` in containerd: no systemd manages cgroups.
  containerd 1.6 does not answer the CRI ``RuntimeConfig`` call, so the kubelet takes the driver from
  its own configuration (it says so in its log; kubelet 1.38 drops that fallback).
- A ``cgroupRoot`` of its own, so that pods never mix with the host's cgroups or another run's.
- The node registers with the taint ``floe.dev/real-node=true:NoSchedule``: the control plane's kwok
  nodes keep the other tests' pods; a pod runs here only when it tolerates the taint.
- Image garbage collection and disk eviction are off: images are imported, not pulled, so a collected
  image could not come back.

Services and cluster DNS come from ``testkit.realnode.network`` (kube-proxy and CoreDNS on the host); the
kubelet names the host's address as the pods' nameserver. ``leave`` deletes the node's pods, waits for
the kubelet to stop their containers, then stops the kubelet (by pid) and deletes the Node.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testkit.controlplane import build
from testkit.controlplane.cluster import (
    NODE_NAMES,
    ControlPlane,
    _cert_credentials,
    _check_alive,
    _is_ours,
    _read_pids,
    _spawn,
    _stop,
    _write_pids,
    kubeconfig_text,
)
from testkit.controlplane.kubeapi import ApiError, JsonObject, wait_for
from testkit.controlplane.pki import CertificateAuthority
from testkit.ports import free_port, host_ip
from testkit.realnode.engine import Engine, unmount_below

CGROUP_FS = Path("/sys/fs/cgroup")
TAINT = {"key": "floe.dev/real-node", "value": "true", "effect": "NoSchedule"}
LABEL = ("floe.dev/real-node", "true")


@dataclass(frozen=True)
class RealNode:
    """A Ready node whose pods really run."""

    name: str
    run_dir: Path

    @property
    def toleration(self) -> dict[str, str]:
        return {"key": TAINT["key"], "operator": "Equal", "value": TAINT["value"], "effect": TAINT["effect"]}

    @property
    def node_selector(self) -> dict[str, str]:
        return {"kubernetes.io/hostname": self.name}

    def pod_placement(self) -> dict[str, Any]:
        """The part of a pod spec that puts the pod on this node."""
        return {"nodeSelector": self.node_selector, "tolerations": [self.toleration]}


def kubelet_config(
    run_dir: Path, engine: Engine, ca_file: Path, ports: dict[str, int], address: str
) -> JsonObject:
    """The kubelet's configuration; pods get the host's address as their nameserver (CoreDNS listens
    there once ``testkit.realnode.network`` has started)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": address,
        "port": ports["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports["kubelet-healthz"],
        "tlsCertFile": str(run_dir / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(run_dir / "kubelet-serving.key"),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca_file)},
        },
        # Any client certificate of the control plane's CA may use the kubelet's API: a test cluster.
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{cgroup_root_name(run_dir)}",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{engine.containerd_socket}",
        "podLogsDir": str(run_dir / "pod-logs"),
        "resolvConf": "/etc/resolv.conf",
        "clusterDomain": "cluster.local",
        "clusterDNS": [address],
        "maxPods": 30,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi"},
        "registerWithTaints": [TAINT],
        "serializeImagePulls": False,
        "nodeStatusUpdateFrequency": "4s",
    }


def cgroup_root_name(run_dir: Path) -> str:
    return f"floe-realnode-{run_dir.name}"


def _cgroup_dirs(name: str) -> list[Path]:
    """``name`` in each cgroup v1 hierarchy, or in the one v2 hierarchy."""
    if (CGROUP_FS / "cgroup.controllers").exists():
        return [CGROUP_FS / name]
    return [hierarchy / name for hierarchy in sorted(CGROUP_FS.iterdir()) if hierarchy.is_dir()]


def _make_cgroup_root(name: str) -> None:
    """The kubelet wants its cgroupRoot to exist in every hierarchy; a v1 cpuset child starts with no CPUs
    and no memory nodes, so it gets its parent's."""
    for directory in _cgroup_dirs(name):
        directory.mkdir(exist_ok=True)
        for setting in ("cpuset.cpus", "cpuset.mems"):
            if (directory / setting).exists() and not (directory / setting).read_text().strip():
                (directory / setting).write_text((directory.parent / setting).read_text())


def _remove_cgroup_root(name: str) -> None:
    """Remove the cgroups the kubelet made below its root, deepest first (only empty ones can go)."""
    for directory in _cgroup_dirs(name):
        if not directory.exists():
            continue
        children = sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: len(p.parts))
        for cgroup in [*reversed(children), directory]:
            with contextlib.suppress(OSError):
                cgroup.rmdir()


def _write_identity(plane: ControlPlane, run_dir: Path, name: str, address: str) -> Path:
    """The kubelet's client certificate (system:node:<name> in system:nodes), its kubeconfig and its
    serving certificate for ``address``, all from the control plane's CA."""
    ca = CertificateAuthority.load(plane.state_dir / "pki")
    client = ca.issue(run_dir / "kubelet-client", f"system:node:{name}", organization="system:nodes")
    ca.issue(run_dir / "kubelet-serving", name, dns_names=("localhost",), ip_addresses=(address,))
    kubeconfig = run_dir / "kubelet.kubeconfig"
    kubeconfig.write_text(kubeconfig_text(plane.server, plane.ca_file, name, _cert_credentials(client)))
    kubeconfig.chmod(0o600)
    return kubeconfig


def join(plane: ControlPlane, engine: Engine, run_dir: Path, timeout: float = 120.0) -> RealNode:
    """Start the kubelet and wait until its Node is Ready."""
    # Named by its address: kube-apiserver dials a node's Hostname address first (for logs), and no DNS
    # here resolves a made-up host name.
    address = host_ip()
    name = address
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    kubeconfig = _write_identity(plane, run_dir, name, address)
    _make_cgroup_root(cgroup_root_name(run_dir))
    ports = {"kubelet": free_port(), "kubelet-healthz": free_port()}
    config = run_dir / "kubelet.yaml"
    config.write_text(
        yaml.safe_dump(kubelet_config(run_dir, engine, plane.ca_file, ports, address), sort_keys=False)
    )
    argv = [
        str(build.bin_dir() / "kubelet"),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={run_dir / 'kubelet'}",
        f"--hostname-override={name}",
        f"--node-ip={address}",
        f"--node-labels={LABEL[0]}={LABEL[1]}",
        "--v=1",
    ]
    pids = {"kubelet": _spawn("kubelet", argv, run_dir)}
    _write_pids(run_dir, pids)
    (run_dir / "node.json").write_text(json.dumps({"name": name}) + "\n")
    node = RealNode(name, run_dir)
    api = plane.admin_api()

    def ready() -> bool | None:
        _check_alive(run_dir, pids)  # the kubelet's exit fails at once, with the end of its log
        try:
            conditions = api.get(f"/api/v1/nodes/{name}").get("status", {}).get("conditions", [])
        except ApiError:
            return None
        return True if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None

    try:
        wait_for(f"node {name} Ready", ready, timeout)
    except BaseException:
        leave(plane, run_dir)
        raise
    return node


def make_sole_schedulable_node(plane: ControlPlane, node: RealNode) -> None:
    """Cordon the control plane's kwok nodes and lift this node's taint: from now on a pod that names no
    node lands here, as on a one-node cluster (the chart's own pods, its hooks and its test pod)."""
    api = plane.admin_api()
    for name in NODE_NAMES:
        api.patch(f"/api/v1/nodes/{name}", {"spec": {"unschedulable": True}})
    taints = api.get(f"/api/v1/nodes/{node.name}").get("spec", {}).get("taints", [])
    kept = [taint for taint in taints if taint["key"] != TAINT["key"]]
    api.patch(f"/api/v1/nodes/{node.name}", {"spec": {"taints": kept or None}})


def leave(plane: ControlPlane | None, run_dir: Path, timeout: float = 60.0) -> None:
    """Delete the node's pods and wait for the kubelet to stop them; stop the kubelet; delete the Node."""
    pids = _read_pids(run_dir)
    record = pids.get("kubelet")
    try:
        name = json.loads((run_dir / "node.json").read_text())["name"]
    except OSError:
        return
    if plane is not None and record is not None and _is_ours(record):
        _drain(plane, name, timeout)
    if record is not None:
        _stop(record)
    _remove_cgroup_root(cgroup_root_name(run_dir))
    _remove_kubelet_iptables()
    unmount_below(run_dir)  # the kubelet bind-mounts its root directory and the pods' volumes
    if plane is not None:
        with contextlib.suppress(ApiError):  # the control plane may be gone already
            plane.admin_api().delete(f"/api/v1/nodes/{name}")


# The chains the kubelet adds at start and never removes; KUBE-FIREWALL also hooks INPUT and OUTPUT.
KUBELET_CHAINS = {
    "filter": ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY"),
    "nat": ("KUBE-KUBELET-CANARY",),
    "mangle": ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"),
}


def _remove_kubelet_iptables() -> None:
    """Leave the host's iptables as they were before the kubelet started (both families)."""
    for tool in ("iptables", "ip6tables"):
        for hook in ("INPUT", "OUTPUT"):
            while _iptables(tool, "filter", "-D", hook, "-j", "KUBE-FIREWALL"):
                pass
        for table, chains in KUBELET_CHAINS.items():
            for chain in chains:
                if _iptables(tool, table, "-F", chain):
                    _iptables(tool, table, "-X", chain)


def _iptables(tool: str, table: str, *args: str) -> bool:
    done = subprocess.run([tool, "-w", "5", "-t", table, *args], capture_output=True, check=False)
    return done.returncode == 0


def _drain(plane: ControlPlane, name: str, timeout: float) -> None:
    api = plane.admin_api()
    selector = f"spec.nodeName%3D{name}"

    def pods() -> list[JsonObject]:
        items: list[JsonObject] = api.get(f"/api/v1/pods?fieldSelector={selector}")["items"]
        return items

    for pod in pods():
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):  # already gone
            api.delete(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", {"gracePeriodSeconds": 5}
            )
    with contextlib.suppress(TimeoutError):  # the engine's stop kills whatever is left
        wait_for(f"the pods of {name} gone", lambda: True if not pods() else None, timeout)

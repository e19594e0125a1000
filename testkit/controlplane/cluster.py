"""Start and stop a real Kubernetes control plane as background processes on 127.0.0.1.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real components; kwok plays
the kubelet of two fake nodes (pods get a status, no container runs). Everything lives in one state
directory: certificates, kubeconfigs, logs, etcd's data and ``pids.json``. ``down`` ends exactly the
recorded processes (checked against their start time, so a recycled pid is never signalled) and
removes the directory.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testkit.controlplane import build
from testkit.controlplane.kubeapi import ApiError, JsonObject, KubeApi, wait_for
from testkit.controlplane.pki import CertificateAuthority, CertPair, write_service_account_keys
from testkit.ports import free_port

STAGES_FILE = Path(__file__).resolve().parent / "kwok-stages.yaml"
SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.244.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
# kwok manages only Nodes carrying this annotation, so it never touches a real node.
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
NODE_NAMES = ("kwok-node-0", "kwok-node-1")
# A released volume is never bound again (Retain), so the pool covers a whole session's chart installs.
PV_POOL_SIZE, PV_SIZE = 30, "50Gi"
# Stop order: the clients first, etcd last, so nobody logs a storm of connection errors.
STOP_ORDER = ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane: where its state is and how to reach it as admin."""

    state_dir: Path
    server: str

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "pki" / "ca.crt"

    def admin_api(self) -> KubeApi:
        pki = self.state_dir / "pki"
        return KubeApi(self.server, self.ca_file, client_cert=(pki / "admin.crt", pki / "admin.key"))

    def token_api(self, token: str) -> KubeApi:
        return KubeApi(self.server, self.ca_file, token=token)


# --- processes -------------------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
    return None if fields[0] in ("Z", "X") else fields[19]


def _is_ours(record: dict[str, Any]) -> bool:
    return _start_time(int(record["pid"])) == str(record["start_time"])


def _spawn(name: str, argv: list[str], state_dir: Path) -> dict[str, Any]:
    log = (state_dir / "logs" / f"{name}.log").open("ab")
    # A new session: the components outlive `make cluster` and a Ctrl-C in its terminal.
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    _CHILDREN[process.pid] = process
    return {"pid": process.pid, "start_time": _start_time(process.pid), "argv": argv}


def _stop(record: dict[str, Any], timeout: float = 15.0) -> None:
    pid = int(record["pid"])
    if not _is_ours(record):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _is_ours(record):
        _reap(pid)
        time.sleep(0.1)
    if _is_ours(record):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect the exit status of a child we started in this process, so no zombie is left."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pid, None)


def _read_pids(state_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        data: dict[str, dict[str, Any]] = json.loads((state_dir / "pids.json").read_text())
    except (OSError, ValueError):
        return {}
    return data


def _write_pids(state_dir: Path, pids: dict[str, dict[str, Any]]) -> None:
    (state_dir / "pids.json").write_text(json.dumps(pids, indent=2) + "\n")


def _check_alive(state_dir: Path, pids: dict[str, dict[str, Any]]) -> None:
    """Fail fast, with the end of its log, when a component exited during start-up."""
    for name, record in pids.items():
        if not _is_ours(record):
            log = (state_dir / "logs" / f"{name}.log").read_text(errors="replace")
            tail = "\n".join(log.splitlines()[-25:])
            raise RuntimeError(f"{name} exited during start-up; the end of {name}.log:\n{tail}")


# --- configuration -----------------------------------------------------------------------------------


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig_text(server: str, ca_file: Path, user: str, credentials: dict[str, str]) -> str:
    """A kubeconfig with everything embedded, so it can be copied anywhere."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "floe-test", "cluster": {"server": server, "certificate-authority-data": _b64(ca_file)}}
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "floe-test", "context": {"cluster": "floe-test", "user": user}}],
        "current-context": "floe-test",
    }
    return yaml.safe_dump(config, sort_keys=False)


def _cert_credentials(pair: CertPair) -> dict[str, str]:
    return {"client-certificate-data": _b64(pair.cert), "client-key-data": _b64(pair.key)}


CLIENT_IDENTITIES = {
    # file stem: (user name, group)
    "admin": ("floe-admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
    # kwok acts as the kubelet of several nodes, which the Node authorizer never allows one identity;
    # it gets system:masters, as kwokctl gives it.
    "kwok": ("kwok-controller", "system:masters"),
}


def _write_pki(state_dir: Path, pod_address: str | None) -> None:
    """The CA, kube-apiserver's serving certificate, one client certificate per identity, the SA key."""
    pki = state_dir / "pki"
    pki.mkdir(parents=True)
    ca = CertificateAuthority.create(pki)
    ca.issue(
        pki / "apiserver",
        "kube-apiserver",
        dns_names=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        ip_addresses=("127.0.0.1", "10.0.0.1", *([pod_address] if pod_address else [])),
    )
    write_service_account_keys(pki)
    for stem, (user, group) in CLIENT_IDENTITIES.items():
        ca.issue(pki / stem, user, organization=group)
    # kube-apiserver's own identity towards kubelets (logs, exec, port-forward), as kubeadm names it.
    ca.issue(pki / "apiserver-kubelet-client", "kube-apiserver-kubelet-client", organization="system:masters")


def _write_kubeconfigs(state_dir: Path, server: str) -> None:
    pki = state_dir / "pki"
    for name in CLIENT_IDENTITIES:
        pair = CertPair(pki / f"{name}.crt", pki / f"{name}.key")
        path = state_dir / "kubeconfig" if name == "admin" else pki / f"{name}.kubeconfig"
        path.write_text(kubeconfig_text(server, pki / "ca.crt", name, _cert_credentials(pair)))
        path.chmod(0o600)


# --- command lines -------------------------------------------------------------------------------------


def _etcd_argv(bin_dir: Path, state_dir: Path, ports: dict[str, int]) -> list[str]:
    client, peer = f"http://127.0.0.1:{ports['etcd']}", f"http://127.0.0.1:{ports['etcd-peer']}"
    return [
        str(bin_dir / "etcd"),
        "--name=floe-test",
        f"--data-dir={state_dir / 'etcd-data'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=floe-test={peer}",
        # A throw-away test cluster: losing data on a power cut is fine, fsync latency is not.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def _apiserver_argv(
    bin_dir: Path, state_dir: Path, ports: dict[str, int], pod_address: str | None
) -> list[str]:
    pki = state_dir / "pki"
    # Pods reach kube-apiserver through the `kubernetes` Service, whose endpoint is the advertised address.
    # Only a control plane with real pods (testkit.realnode) listens beyond the loopback interface.
    listen = (
        ["--bind-address=0.0.0.0", f"--advertise-address={pod_address}"]
        if pod_address
        else ["--bind-address=127.0.0.1"]
    )
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
        *listen,
        f"--secure-port={ports['kube-apiserver']}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        "--authorization-mode=Node,RBAC",
        # The default admission plugins stay on (NamespaceLifecycle, LimitRanger, ServiceAccount,
        # PodSecurity, ResourceQuota, ...); NodeRestriction is added as kubeadm does.
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--profiling=false",
        "--v=1",
    ]


def _component_common(state_dir: Path, name: str, port: int) -> list[str]:
    kubeconfig = state_dir / "pki" / f"{name}.kubeconfig"
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def _controller_manager_argv(bin_dir: Path, state_dir: Path, ports: dict[str, int]) -> list[str]:
    pki = state_dir / "pki"
    return [
        str(bin_dir / "kube-controller-manager"),
        *_component_common(state_dir, "kube-controller-manager", ports["kube-controller-manager"]),
        "--controllers=*",
        # Each controller authenticates with its own ServiceAccount token, so RBAC applies to it.
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
    ]


def _scheduler_argv(bin_dir: Path, state_dir: Path, ports: dict[str, int]) -> list[str]:
    return [
        str(bin_dir / "kube-scheduler"),
        *_component_common(state_dir, "kube-scheduler", ports["kube-scheduler"]),
    ]


def _kwok_argv(bin_dir: Path, state_dir: Path, ports: dict[str, int]) -> list[str]:
    key, value = KWOK_NODE_ANNOTATION
    return [
        str(bin_dir / "kwok"),
        f"--kubeconfig={state_dir / 'pki' / 'kwok.kubeconfig'}",
        f"--config={STAGES_FILE}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={key}={value}",
        f"--cidr={POD_CIDR}",
        f"--server-address=127.0.0.1:{ports['kwok']}",
    ]


# --- cluster objects -------------------------------------------------------------------------------------


def node_manifest(index: int, name: str) -> JsonObject:
    """A fake node the size of a common cloud VM, with no taint so ordinary pods schedule on it."""
    key, value = KWOK_NODE_ANNOTATION
    capacity = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                {"type": "InternalIP", "address": f"10.1.0.{10 + index}"},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def storage_manifests(count: int = PV_POOL_SIZE) -> list[tuple[str, JsonObject]]:
    """A default StorageClass and a pool of PersistentVolumes that kcm binds claims to.

    There is no volume provisioner (nothing would mount a volume anyway), so claims are served by
    static provisioning, which kcm's PersistentVolume binder does for real: each claim gets the
    smallest free volume that fits. The hostPath is never touched, since no container runs.
    """
    storage_class = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": "standard",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "Immediate",
        "reclaimPolicy": "Delete",
    }
    manifests = [("/apis/storage.k8s.io/v1/storageclasses", storage_class)]
    for index in range(count):
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"kwok-pv-{index}"},
            "spec": {
                "capacity": {"storage": PV_SIZE},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "standard",
                "hostPath": {"path": f"/nonexistent/kwok-pv-{index}"},
            },
        }
        manifests.append(("/api/v1/persistentvolumes", volume))
    return manifests


def _node_ready(node: JsonObject) -> bool:
    conditions = node.get("status", {}).get("conditions", [])
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    # kube-apiserver taints a new node not-ready; kube-controller-manager lifts it once it is Ready.
    return ready and not node.get("spec", {}).get("taints")


def _wait_until_usable(api: KubeApi, timeout: float, check_alive: Callable[[], None]) -> None:
    """Wait for what kcm and kwok set up; ``check_alive`` fails fast if one of them has exited."""

    def default_service_account() -> JsonObject:
        check_alive()  # kcm's ServiceAccount controller creates it, in a namespace kube-apiserver makes
        return api.get("/api/v1/namespaces/default/serviceaccounts/default")

    def nodes_ready() -> bool | None:
        check_alive()
        nodes = api.get("/api/v1/nodes")["items"]
        ready = [n for n in nodes if n["metadata"]["name"] in NODE_NAMES and _node_ready(n)]
        return True if len(ready) == len(NODE_NAMES) else None

    wait_for("the default namespace's default ServiceAccount", default_service_account, timeout)
    wait_for(f"nodes {', '.join(NODE_NAMES)} Ready and untainted", nodes_ready, timeout)


def wait_for_service_account(api: KubeApi, namespace: str, name: str, timeout: float = 30.0) -> None:
    """Pods need their ServiceAccount to exist (ServiceAccount admission); kcm creates ``default``."""
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}"
    wait_for(f"ServiceAccount {namespace}/{name}", lambda: api.get(path), timeout)


# --- up / down / status ---------------------------------------------------------------------------------


def _etcd_healthy(port: int) -> bool | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
        return True if json.loads(response.read()).get("health") == "true" else None


def _readyz(api: KubeApi) -> bool | None:
    return True if api.get("/readyz").get("text", "").strip() == "ok" else None


def load(state_dir: Path) -> ControlPlane | None:
    """The control plane recorded in ``state_dir`` if every one of its processes is still running."""
    pids = _read_pids(state_dir)
    if set(pids) != set(STOP_ORDER) or not all(_is_ours(r) for r in pids.values()):
        return None
    info = json.loads((state_dir / "cluster.json").read_text())
    return ControlPlane(state_dir, info["server"])


def up(state_dir: Path, *, timeout: float = 120.0, pod_address: str | None = None) -> ControlPlane:
    """Start the control plane (or return the one already running there) and wait until usable.

    With ``pod_address`` (the host's address, for a real node's pods), kube-apiserver also listens there
    and advertises it as the `kubernetes` Service's endpoint.
    """
    state_dir = state_dir.resolve()
    running = load(state_dir)
    if running is not None:
        wait_for("kube-apiserver /readyz", lambda: _readyz(running.admin_api()), timeout)
        return running
    down(state_dir)  # a half-dead earlier run: clear it first
    bin_dir = build.ensure_built()
    ports = {name: free_port() for name in (*STOP_ORDER, "etcd-peer")}
    plane = ControlPlane(state_dir, f"https://127.0.0.1:{ports['kube-apiserver']}")
    state_dir.mkdir(parents=True)
    # First, so that `down` recognises the directory as one it may remove.
    (state_dir / "cluster.json").write_text(json.dumps({"server": plane.server, "ports": ports}, indent=2))
    (state_dir / "logs").mkdir()
    _write_pki(state_dir, pod_address)
    _write_kubeconfigs(state_dir, plane.server)
    try:
        _start_all(plane, bin_dir, ports, timeout, pod_address)
    except BaseException:
        down(state_dir)
        raise
    return plane


def _start_all(
    plane: ControlPlane, bin_dir: Path, ports: dict[str, int], timeout: float, pod_address: str | None
) -> None:
    state_dir = plane.state_dir
    pids: dict[str, dict[str, Any]] = {}

    def start(name: str, argv: list[str]) -> None:
        pids[name] = _spawn(name, argv, state_dir)
        _write_pids(state_dir, pids)  # written at once, so `down` can stop a half-started plane

    def alive_then(probe: Callable[[], bool | None]) -> Callable[[], bool | None]:
        def checked() -> bool | None:
            _check_alive(state_dir, pids)
            return probe()

        return checked

    start("etcd", _etcd_argv(bin_dir, state_dir, ports))
    wait_for("etcd /health", alive_then(lambda: _etcd_healthy(ports["etcd"])), timeout)
    start("kube-apiserver", _apiserver_argv(bin_dir, state_dir, ports, pod_address))
    api = plane.admin_api()
    wait_for("kube-apiserver /readyz", alive_then(lambda: _readyz(api)), timeout)
    start("kube-controller-manager", _controller_manager_argv(bin_dir, state_dir, ports))
    start("kube-scheduler", _scheduler_argv(bin_dir, state_dir, ports))
    start("kwok", _kwok_argv(bin_dir, state_dir, ports))
    for index, name in enumerate(NODE_NAMES):
        api.ensure("/api/v1/nodes", node_manifest(index, name))
    for path, manifest in storage_manifests():
        api.ensure(path, manifest)
    _wait_until_usable(api, timeout, lambda: _check_alive(state_dir, pids))
    _check_alive(state_dir, pids)


def down(state_dir: Path) -> bool:
    """Stop the recorded processes and remove the state directory; False if there was nothing."""
    state_dir = state_dir.resolve()
    if not state_dir.exists():
        return False
    if any(state_dir.iterdir()) and not (state_dir / "cluster.json").exists():
        # `down` removes the directory; never do that to one that `up` did not make.
        raise RuntimeError(f"{state_dir} is not a control plane's state directory (no cluster.json)")
    pids = _read_pids(state_dir)
    for name in STOP_ORDER:
        if name in pids:
            _stop(pids[name])
    shutil.rmtree(state_dir)
    return True


def status(state_dir: Path) -> dict[str, str]:
    """Each component's state: running (with pid) or stopped."""
    pids = _read_pids(state_dir.resolve())
    return {
        name: f"running (pid {pids[name]['pid']})" if name in pids and _is_ours(pids[name]) else "stopped"
        for name in STOP_ORDER
    }


# --- ServiceAccounts ---------------------------------------------------------------------------------------


def service_account_token(api: KubeApi, namespace: str, name: str, expiration_seconds: int = 3600) -> str:
    """A token for the ServiceAccount from the TokenRequest API, as a pod's projected volume gets."""
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": expiration_seconds},
    }
    token: str = api.create(path, body)["status"]["token"]
    return token


def write_service_account_kubeconfig(plane: ControlPlane, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount, for running a component as itself."""
    token = service_account_token(plane.admin_api(), namespace, name)
    path.write_text(kubeconfig_text(plane.server, plane.ca_file, f"{namespace}-{name}", {"token": token}))
    path.chmod(0o600)
    return path


__all__ = [
    "ApiError",
    "ControlPlane",
    "down",
    "load",
    "service_account_token",
    "status",
    "up",
    "wait_for_service_account",
    "write_service_account_kubeconfig",
]

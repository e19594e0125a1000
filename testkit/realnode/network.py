"""The cluster network of a real node: Services through kube-proxy, names through CoreDNS.

Both run on the host, as root, as processes of their own (no DaemonSet: the node has no network of its
own yet when they start, and nothing would pull their images). Each authenticates with a client
certificate from the control plane's CA:
- kube-proxy as ``system:kube-proxy``, whom the cluster's default ``system:node-proxier`` binding lets
  watch Services, EndpointSlices and Nodes. It runs in iptables mode and programs the host's NAT table,
  so a pod reaches a ClusterIP, and the ``kubernetes`` Service reaches kube-apiserver on the host's
  address (``cluster.up(..., pod_address=...)``).
- CoreDNS (built with its kubernetes, forward, cache, errors and bind plugins) as ``floe-coredns``,
  with the ClusterRole that CoreDNS's own deployment manifests give it. It listens on the host's
  address, port 53, which the kubelet hands to pods as their nameserver (``clusterDNS``).

``stop`` ends both by pid and removes kube-proxy's iptables chains (``kube-proxy --cleanup``).
"""

from __future__ import annotations

import secrets
import socket
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from testkit.controlplane import build
from testkit.controlplane.cluster import (
    ControlPlane,
    _cert_credentials,
    _check_alive,
    _read_pids,
    _spawn,
    _stop,
    _write_pids,
    kubeconfig_text,
)
from testkit.controlplane.kubeapi import JsonObject, wait_for
from testkit.controlplane.pki import CertificateAuthority
from testkit.ports import free_port, http_ok

CLUSTER_DOMAIN = "cluster.local"
COREDNS_USER = "floe-coredns"
STOP_ORDER = ("kube-proxy", "coredns")

# What CoreDNS's kubernetes plugin reads (the ClusterRole of CoreDNS's deployment manifests).
COREDNS_RULES = [
    {
        "apiGroups": [""],
        "resources": ["endpoints", "services", "pods", "namespaces"],
        "verbs": ["list", "watch"],
    },
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
]


def node_services_dir() -> Path:
    """kube-proxy and CoreDNS, built from the Go module proxy (once per machine and pin)."""
    return build.ensure_built(build.NODE_SERVICES)


def _identity(plane: ControlPlane, run_dir: Path, stem: str, user: str) -> Path:
    ca = CertificateAuthority.load(plane.state_dir / "pki")
    pair = ca.issue(run_dir / stem, user)
    kubeconfig = run_dir / f"{stem}.kubeconfig"
    kubeconfig.write_text(kubeconfig_text(plane.server, plane.ca_file, user, _cert_credentials(pair)))
    kubeconfig.chmod(0o600)
    return kubeconfig


def kube_proxy_config(kubeconfig: Path, node_name: str, pod_cidr: str, ports: dict[str, int]) -> JsonObject:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "mode": "iptables",
        "clusterCIDR": pod_cidr,
        "detectLocalMode": "ClusterCIDR",
        "healthzBindAddress": f"127.0.0.1:{ports['healthz']}",
        "metricsBindAddress": f"127.0.0.1:{ports['metrics']}",
        # Leave the host's conntrack sysctls alone: a test node has no business tuning the kernel.
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


def corefile(address: str, kubeconfig: Path) -> str:
    return f""".:53 {{
    bind {address}
    errors
    cache 5
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
}}
"""


def _grant_coredns(plane: ControlPlane) -> None:
    api = plane.admin_api()
    api.ensure(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": COREDNS_USER},
            "rules": COREDNS_RULES,
        },
    )
    api.ensure(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": COREDNS_USER},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": COREDNS_USER},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COREDNS_USER}],
        },
    )


def start(
    plane: ControlPlane, run_dir: Path, node_name: str, *, address: str, pod_cidr: str, timeout: float = 120.0
) -> None:
    """Start kube-proxy and CoreDNS for the node ``node_name``; return once both serve."""
    bin_dir = node_services_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    _grant_coredns(plane)
    ports = {"healthz": free_port(), "metrics": free_port()}
    proxy_config = run_dir / "kube-proxy.yaml"
    proxy_kubeconfig = _identity(plane, run_dir, "kube-proxy", "system:kube-proxy")
    proxy_config.write_text(yaml.safe_dump(kube_proxy_config(proxy_kubeconfig, node_name, pod_cidr, ports)))
    dns_config = run_dir / "Corefile"
    dns_config.write_text(corefile(address, _identity(plane, run_dir, "coredns", COREDNS_USER)))
    pids = {
        "kube-proxy": _spawn(
            "kube-proxy", [str(bin_dir / "kube-proxy"), f"--config={proxy_config}"], run_dir
        ),
        "coredns": _spawn("coredns", [str(bin_dir / "coredns"), "-conf", str(dns_config)], run_dir),
    }
    _write_pids(run_dir, pids)

    def serving(probe: Callable[[], bool]) -> Callable[[], bool | None]:
        def checked() -> bool | None:
            _check_alive(run_dir, pids)  # an exit fails at once, with the end of its log
            return probe() or None

        return checked

    healthz = f"http://127.0.0.1:{ports['healthz']}/healthz"
    service = f"kubernetes.default.svc.{CLUSTER_DOMAIN}"
    try:
        wait_for("kube-proxy healthy", serving(lambda: http_ok(healthz)), timeout)
        wait_for(f"CoreDNS answers {service}", serving(lambda: bool(resolve(address, service))), timeout)
    except BaseException:
        stop(run_dir)
        raise


def resolve(server: str, name: str, timeout: float = 2.0) -> list[str]:
    """The IPv4 addresses ``server`` gives for ``name`` (one A query over UDP; [] on no answer)."""
    query_id = secrets.randbits(16)
    header = struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # recursion desired, one question
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    packet = header + question + struct.pack(">HH", 1, 1)  # type A, class IN
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(timeout)
        try:
            client.sendto(packet, (server, 53))
            reply = client.recv(4096)
        except OSError:
            return []
    return _a_records(reply, query_id, len(packet))


def _a_records(reply: bytes, query_id: int, question_end: int) -> list[str]:
    answer_id, flags, _, answers = struct.unpack(">HHHH", reply[:8])
    if answer_id != query_id or flags & 0x000F:  # not ours, or an error code (NXDOMAIN, SERVFAIL)
        return []
    addresses, offset = [], question_end
    for _ in range(answers):
        offset = _skip_name(reply, offset)
        record_type, _, _, length = struct.unpack(">HHIH", reply[offset : offset + 10])
        offset += 10
        if record_type == 1 and length == 4:
            addresses.append(socket.inet_ntoa(reply[offset : offset + 4]))
        offset += length
    return addresses


def _skip_name(message: bytes, offset: int) -> int:
    """The offset just past the (possibly compressed) domain name at ``offset``."""
    while True:
        length = message[offset]
        if length & 0xC0 == 0xC0:  # a pointer ends the name
            return offset + 2
        if length == 0:
            return offset + 1
        offset += length + 1


def stop(run_dir: Path) -> None:
    """Stop CoreDNS and kube-proxy by pid; take kube-proxy's rules out of the host's iptables."""
    pids = _read_pids(run_dir)
    for name in STOP_ORDER:
        if name in pids:
            _stop(pids[name])
    if "kube-proxy" in pids:  # the binary it ran, recorded at its start: nothing is built at teardown
        cleanup = [pids["kube-proxy"]["argv"][0], "--cleanup"]
        subprocess.run(cleanup, capture_output=True, check=False, timeout=60)

"""The real node's cluster network: a pod reaches another pod by Service name, and kube-apiserver as its
own ServiceAccount, the way the chart's pods do.

Real: the session's control plane (kube-apiserver listening on the host's address as well), the Go-built
kubelet on Debian's containerd and runc, kube-proxy v1.37 in iptables mode and CoreDNS v1.15 (both Go-built,
on the host, see ``testkit.realnode.network``), the operator image built here. Both pods really run.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from testkit.controlplane import ControlPlane, wait_for
from testkit.controlplane.kubeapi import JsonObject
from testkit.ports import host_ip
from testkit.realnode import network
from testkit.realnode.images import OPERATOR_IMAGE
from testkit.realnode.node import RealNode

pytestmark = pytest.mark.slow

POD_PYTHON = "/opt/venv/bin/python"
ECHO_PORT = 8080
ECHO_BODY = "floe-echo"

ECHO_SERVER = f"""
import http.server

class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{ECHO_BODY}")

http.server.HTTPServer(("", {ECHO_PORT}), Echo).serve_forever()
"""

# What the chart's pods rely on: the resolver of the pod (search path included), a Service, and the
# in-cluster API address and credentials that the kubelet mounts.
CLIENT = f"""
import json, os, socket, ssl, urllib.request

sa = "/var/run/secrets/kubernetes.io/serviceaccount"
report = {{"echo_address": socket.gethostbyname("echo"),
           "echo_body": urllib.request.urlopen("http://echo:{ECHO_PORT}/", timeout=10).read().decode()}}
api = "https://" + os.environ["KUBERNETES_SERVICE_HOST"] + ":" + os.environ["KUBERNETES_SERVICE_PORT"]
report["api_by_name"] = socket.gethostbyname("kubernetes.default.svc")
review = urllib.request.Request(
    "https://kubernetes.default.svc/apis/authentication.k8s.io/v1/selfsubjectreviews",
    data=json.dumps({{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}}).encode(),
    headers={{"Authorization": "Bearer " + open(sa + "/token").read(), "Content-Type": "application/json"}},
)
context = ssl.create_default_context(cafile=sa + "/ca.crt")
answer = json.load(urllib.request.urlopen(review, context=context, timeout=10))
report["username"] = answer["status"]["userInfo"]["username"]
report["api_env"] = api
print("report:", json.dumps(report))
"""


def _pod(name: str, node: RealNode, script: str, labels: dict[str, str], restart: str) -> JsonObject:
    container: dict[str, Any] = {
        "name": "main",
        "image": OPERATOR_IMAGE,
        "imagePullPolicy": "Never",
        "command": [POD_PYTHON, "-c", script],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [container], "restartPolicy": restart, **node.pod_placement()},
    }


def test_a_pod_reaches_a_service_by_name_and_kube_apiserver_as_its_service_account(
    control_plane: ControlPlane, control_plane_namespace: str, real_node: RealNode
) -> None:
    api = control_plane.admin_api()
    namespace = control_plane_namespace
    pods = f"/api/v1/namespaces/{namespace}/pods"
    api.create(pods, _pod("echo", real_node, ECHO_SERVER, {"app": "echo"}, "Always"))
    service = api.create(
        f"/api/v1/namespaces/{namespace}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "echo"},
            "spec": {"selector": {"app": "echo"}, "ports": [{"port": ECHO_PORT, "targetPort": ECHO_PORT}]},
        },
    )
    # CoreDNS on the host answers for the Service before any pod asks.
    fqdn = f"echo.{namespace}.svc.{network.CLUSTER_DOMAIN}"
    cluster_ip = service["spec"]["clusterIP"]
    wait_for(f"{fqdn} in CoreDNS", lambda: cluster_ip in network.resolve(host_ip(), fqdn) or None, 60)
    wait_for("the echo pod Ready", lambda: _ready(api.get(f"{pods}/echo")), 180)

    api.create(pods, _pod("client", real_node, CLIENT, {}, "Never"))
    phase = wait_for("the client pod done", lambda: _finished(api.get(f"{pods}/client")), 180)
    log = api.get(f"{pods}/client/log").get("text", "")
    assert phase == "Succeeded", log
    report = json.loads(log.strip().splitlines()[-1].removeprefix("report:"))

    kubernetes = api.get("/api/v1/namespaces/default/services/kubernetes")["spec"]["clusterIP"]
    assert report == {
        "echo_address": cluster_ip,
        "echo_body": ECHO_BODY,
        "api_by_name": kubernetes,
        "username": f"system:serviceaccount:{namespace}:default",
        "api_env": f"https://{kubernetes}:443",
    }


def _ready(pod: JsonObject) -> bool | None:
    conditions = pod.get("status", {}).get("conditions", [])
    return True if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None


def _finished(pod: JsonObject) -> str | None:
    phase: str = pod.get("status", {}).get("phase", "")
    return phase if phase in {"Succeeded", "Failed"} else None

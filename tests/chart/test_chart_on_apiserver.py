"""The chart installed by the real helm v4 into the real control plane: Pod Security, `helm test`, upgrade,
uninstall, a 53-character release name, the pre-upgrade and pre-delete hooks.

Real: kube-apiserver v1.37 (validation, RBAC objects and RBAC on ServiceAccount tokens, the PodSecurity
admission plugin), etcd, kube-controller-manager (ReplicaSets, StatefulSets, Jobs, the volume binder,
garbage collection, namespace deletion) and kube-scheduler; the real `floe operator` (kopf) on the host as
the chart's operator ServiceAccount where a test needs one. Faked by kwok: the two nodes and the pods'
status (Running and Ready; the `helm test` pod and hook Jobs' pods Succeeded). No container runs, so these
tests show that every object is accepted, admitted, scheduled and Ready as Kubernetes sees it, not that the
programs inside work. Where a hook's program matters (the pre-delete hook), the test plays the kubelet: it
runs the hook container's command on the host with the hook's own ServiceAccount token, then reports its
exit code as the pod's status.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.controlplane import (
    ControlPlane,
    wait_for,
    wait_for_service_account,
    write_service_account_kubeconfig,
)
from testkit.controlplane.cluster import NODE_NAMES
from testkit.helm import WITHOUT_CLUSTER
from testkit.operator_process import OperatorProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "floe-platform"
RELEASE = "floe"
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
Json = dict[str, Any]


def tool(name: str) -> str:
    return shutil.which(name) or str(ROOT / ".tools" / "bin" / name)


def run(
    plane: ControlPlane, binary: str, *args: str, timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    """helm or kubectl as admin (the one who installs a chart); fails with the tool's own message."""
    done = subprocess.run(
        [tool(binary), f"--kubeconfig={plane.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{binary} {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def kubectl_json(plane: ControlPlane, *args: str) -> Json:
    result: Json = json.loads(run(plane, "kubectl", *args, "-o", "json").stdout)
    return result


def pod_security_namespace(plane: ControlPlane, prefix: str, labels: dict[str, str]) -> Iterator[str]:
    api, name = plane.admin_api(), f"{prefix}-{uuid.uuid4().hex[:8]}"
    api.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})
    wait_for_service_account(api, name, "default")
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def restricted_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A namespace that enforces Pod Security "restricted", as a hardened cluster's namespaces do."""
    yield from pod_security_namespace(
        control_plane, "restricted", {"pod-security.kubernetes.io/enforce": "restricted"}
    )


@pytest.fixture
def baseline_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """The documented exception for LocalStack: enforce "baseline", warn and audit at "restricted"."""
    labels = {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }
    yield from pod_security_namespace(control_plane, "baseline", labels)


def workloads_ready(plane: ControlPlane, namespace: str) -> list[str]:
    """Every Deployment and StatefulSet of the release, each asserted Ready; returns their names."""
    names = []
    for kind in ("deployments", "statefulsets"):
        for item in kubectl_json(plane, "get", kind, "-n", namespace, "-l", INSTANCE)["items"]:
            wanted = item["spec"]["replicas"]
            assert item["status"].get("readyReplicas") == wanted, (
                kind,
                item["metadata"]["name"],
                item["status"],
            )
            names.append(item["metadata"]["name"])
    return sorted(names)


def admitted_pods(plane: ControlPlane, namespace: str) -> dict[str, str]:
    """The release's pods, by component, each Running on a kwok node."""
    pods = kubectl_json(plane, "get", "pods", "-n", namespace, "-l", INSTANCE)["items"]
    running = {}
    for pod in pods:
        if pod["status"]["phase"] == "Succeeded":  # a hook Job's pod
            continue
        assert pod["status"]["phase"] == "Running", pod["status"]
        assert pod["spec"]["nodeName"] in NODE_NAMES
        running[pod["metadata"]["labels"]["app.kubernetes.io/component"]] = pod["metadata"]["name"]
    return running


def pod_security_warnings(text: str) -> set[str]:
    """The containers kube-apiserver's PodSecurity warnings name (`container "x" must not ...`)."""
    return set(re.findall(r'container \\?"([a-z0-9-]+)\\?" must', text))


def test_restricted_namespace_install_helm_test_upgrade_and_uninstall_leave_nothing_behind(
    control_plane: ControlPlane, restricted_namespace: str, tmp_path: Path
) -> None:
    """helm install --wait into an `enforce: restricted` namespace with LocalStack off (the documented way),
    then helm test, helm upgrade with a changed profile, and the README's uninstall order."""
    plane, ns = control_plane, restricted_namespace
    values = CHART / "ci" / "compute-logs-off-values.yaml"
    install = run(
        plane, "helm", "install", RELEASE, str(CHART), "-n", ns, "-f", str(values), "--wait", "--timeout=90s"
    )
    # kube-apiserver's PodSecurity admission refused nothing and warned about nothing.
    assert not pod_security_warnings(install.stderr), install.stderr
    assert workloads_ready(plane, ns) == [
        f"{RELEASE}-floe-platform-{name}"
        for name in ("daemon", "operator", "postgresql", "user-code", "webserver")
    ]
    admitted = admitted_pods(plane, ns)
    print(f"\nadmitted under Pod Security 'restricted' in {ns}: {sorted(admitted)}")
    assert sorted(admitted) == ["daemon", "operator", "postgresql", "user-code", "webserver"]

    # helm test: the hook pod is admitted under "restricted" too, and kwok completes it.
    tested = run(plane, "helm", "test", RELEASE, "-n", ns, "--timeout=60s")
    assert "Phase:          Succeeded" in tested.stdout, tested.stdout

    # helm upgrade with a changed profile changes the FloePlatform the chart renders.
    spec_before = kubectl_json(plane, "get", "fp", RELEASE, "-n", ns)["spec"]
    profile = spec_before["infrastructure"]["resource_profiles"]["default"]
    assert profile["limits"]["memory"] == "4Gi"
    changed = tmp_path / "bigger.yaml"
    bigger = yaml.safe_load(values.read_text())
    bigger["platform"]["infrastructure"]["resource_profiles"]["default"]["limits"]["memory"] = "6Gi"
    changed.write_text(yaml.safe_dump(bigger))
    run(
        plane, "helm", "upgrade", RELEASE, str(CHART), "-n", ns, "-f", str(changed), "--wait", "--timeout=90s"
    )
    after = kubectl_json(plane, "get", "fp", RELEASE, "-n", ns)
    assert after["spec"]["infrastructure"]["resource_profiles"]["default"]["limits"]["memory"] == "6Gi"
    assert after["metadata"]["generation"] == 2

    # The README's uninstall order: FloePlatforms, the release, then what it keeps on purpose.
    run(plane, "kubectl", "-n", ns, "delete", "fp", "--all", "--wait=true", "--timeout=60s")
    run(plane, "helm", "uninstall", RELEASE, "-n", ns, "--wait", "--timeout=90s")
    kept = kubectl_json(plane, "get", "secret,pvc", "-n", ns, "-l", INSTANCE)["items"]
    assert sorted(item["kind"] for item in kept) == [
        "PersistentVolumeClaim",
        "Secret",
    ]  # data and its password
    run(plane, "kubectl", "-n", ns, "delete", "pvc,secret", "-l", INSTANCE, "--wait=true", "--timeout=60s")

    def nothing_left() -> bool | None:
        left = release_objects(plane, ns)
        return True if not left else None

    wait_for(f"nothing of the release left in {ns}: {release_objects(plane, ns)}", nothing_left, 60)
    # By Helm's rule, crds/ is installed once and never deleted: other releases' FloePlatforms need it.
    assert kubectl_json(plane, "get", "crd", "floeplatforms.floe.dev")["metadata"]["name"]


def release_objects(plane: ControlPlane, namespace: str) -> list[str]:
    """Every namespaced object that belongs to the release: labelled as its instance, or named after it."""
    kinds = run(
        plane, "kubectl", "api-resources", "--namespaced", "--verbs=list", "-o", "name"
    ).stdout.split()
    kinds = [kind for kind in kinds if kind not in ("events", "events.events.k8s.io")]
    items = kubectl_json(plane, "get", ",".join(kinds), "-n", namespace)["items"]
    left = []
    for item in items:
        metadata = item["metadata"]
        labelled = (metadata.get("labels") or {}).get("app.kubernetes.io/instance") == RELEASE
        if labelled or metadata["name"].startswith(f"{RELEASE}-floe-platform"):
            left.append(f"{item['kind']}/{metadata['name']}")
    return left


def test_localstack_installs_in_a_baseline_namespace_and_is_the_only_pod_restricted_refuses(
    control_plane: ControlPlane, baseline_namespace: str
) -> None:
    """The default install (LocalStack on) into the README's exception: `enforce: baseline` with `warn` and
    `audit` at restricted. kube-apiserver admits every pod and warns about LocalStack alone; a server-side
    dry run of `enforce: restricted` on the live namespace names the pods restricted would refuse."""
    plane, ns = control_plane, baseline_namespace
    install = run(plane, "helm", "install", RELEASE, str(CHART), "-n", ns, "--wait", "--timeout=90s")
    assert pod_security_warnings(install.stderr) == {"localstack"}, install.stderr
    assert "floe-floe-platform-localstack" in workloads_ready(plane, ns)
    admitted = admitted_pods(plane, ns)
    assert sorted(admitted) == ["daemon", "localstack", "operator", "postgresql", "user-code", "webserver"]
    dry_run = run(
        plane,
        "kubectl",
        "label",
        "--dry-run=server",
        "--overwrite",
        f"namespace/{ns}",
        "pod-security.kubernetes.io/enforce=restricted",
    )
    refused = re.findall(r"\b(floe-floe-platform-[a-z0-9-]+)", dry_run.stderr)
    print(f"\nPod Security 'restricted' would refuse in {ns}: {sorted(set(refused))}")
    assert refused, dry_run.stderr
    assert all(name.startswith("floe-floe-platform-localstack-") for name in refused), dry_run.stderr
    # helm waited for the post-install bucket hook Job too (kwok completed its pod): the install returned.
    run(plane, "helm", "uninstall", RELEASE, "-n", ns, "--wait", "--timeout=90s")


# The ci/ cases of the parity values: what each must leave in the cluster besides the usual workloads.
PARITY_CASES = {
    "several-locations": {
        "workloads": ["code-finance", "code-ml", "code-sales"],
        "objects": {"poddisruptionbudget": ["code-ml"]},
    },
    "ingress-read-only": {
        "workloads": ["webserver", "webserver-read-only"],
        "objects": {"ingress": ["webserver"], "poddisruptionbudget": ["webserver-read-only"]},
    },
    "network-policy": {
        "workloads": ["webserver", "webserver-read-only"],
        "objects": {
            # No bucket Job (the built-in S3) and no platform (no pre-delete hook): no policy for either.
            "networkpolicy": [
                f"{name}-net"
                for name in (
                    "daemon",
                    "localstack",
                    "migrate",
                    "operator",
                    "postgresql",
                    "runs",
                    "test",
                    "user-code",
                    "webserver",
                    "webserver-read-only",
                )
            ]
        },
    },
    "instance-settings": {"workloads": ["user-code", "webserver"], "objects": {}},
}


@pytest.mark.parametrize("case", sorted(PARITY_CASES))
def test_parity_values_install_and_every_workload_gets_ready(
    control_plane: ControlPlane, baseline_namespace: str, case: str
) -> None:
    """helm install --wait of each parity ci/ file: kube-apiserver accepts every object (Ingress,
    PodDisruptionBudget, NetworkPolicy: validated, not enforced, as no ingress controller or network plugin
    runs), kcm and kwok make each code location's and webserver's Deployment Ready, and the workspace
    ConfigMap names a Service that exists for every location."""
    plane, ns = control_plane, baseline_namespace
    values = CHART / "ci" / f"{case}-values.yaml"
    run(
        plane, "helm", "install", RELEASE, str(CHART), "-n", ns, "-f", str(values), "--wait", "--timeout=120s"
    )
    ready = workloads_ready(plane, ns)
    prefix = f"{RELEASE}-floe-platform-"
    for name in PARITY_CASES[case]["workloads"]:
        assert f"{prefix}{name}" in ready, ready
    for kind, names in PARITY_CASES[case]["objects"].items():
        found = kubectl_json(plane, "get", kind, "-n", ns, "-l", INSTANCE)["items"]
        assert sorted(item["metadata"]["name"] for item in found) == [f"{prefix}{name}" for name in names]
    workspace = kubectl_json(plane, "get", "configmap", f"{prefix}workspace", "-n", ns)
    services = {item["metadata"]["name"] for item in kubectl_json(plane, "get", "svc", "-n", ns)["items"]}
    for entry in yaml.safe_load(workspace["data"]["workspace.yaml"])["load_from"]:
        assert entry["grpc_server"]["host"] in services
    run(plane, "helm", "uninstall", RELEASE, "-n", ns, "--wait", "--timeout=90s")


def test_the_gitops_guard_lets_helm_install_and_upgrade_through_and_gitops_values_take_their_secret(
    control_plane: ControlPlane, control_plane_namespace: str
) -> None:
    """The guard against a generated password without a cluster (postgresql.auth.failWithoutCluster, on by
    default) must never stop a real install: into a fresh namespace that holds no Secret at all, `helm
    install` (no existingSecret) generates the password and `helm upgrade` reads the same one back. Then
    ci/gitops-values.yaml installs as a second release once its Secret exists, and points the database at
    it. `helm template` without a cluster refuses the same values (test_chart_values_used.py)."""
    plane, ns = control_plane, control_plane_namespace
    assert kubectl_json(plane, "get", "secrets", "-n", ns)["items"] == []
    values = CHART / "ci" / "compute-logs-off-values.yaml"
    # No volume: the guard is about the Secret, and the control plane's pool of volumes is small.
    no_volume = ["--set", "postgresql.persistence.enabled=false"]
    run(plane, "helm", "install", RELEASE, str(CHART), "-n", ns, "-f", str(values), *no_volume)
    secret = f"{RELEASE}-floe-platform-postgresql"
    password = kubectl_json(plane, "get", "secret", secret, "-n", ns)["data"]["postgresql-password"]
    assert password
    run(plane, "helm", "upgrade", RELEASE, str(CHART), "-n", ns, "-f", str(values), *no_volume)
    assert kubectl_json(plane, "get", "secret", secret, "-n", ns)["data"]["postgresql-password"] == password

    run(plane, "kubectl", "create", "secret", "generic", "floe-postgresql", "-n", ns,
        "--from-literal=postgresql-password=from-the-secret-manager")  # fmt: skip
    gitops = CHART / "ci" / "gitops-values.yaml"
    run(plane, "helm", "install", "gitops", str(CHART), "-n", ns, "-f", str(gitops), *no_volume)
    gitops_objects = kubectl_json(
        plane, "get", "secrets,statefulsets", "-n", ns, "-l", "app.kubernetes.io/instance=gitops"
    )
    assert [item["kind"] for item in gitops_objects["items"]].count("Secret") == 1  # LocalStack's keys only
    (sts,) = [item for item in gitops_objects["items"] if item["kind"] == "StatefulSet"]
    (postgres,) = sts["spec"]["template"]["spec"]["containers"]
    password_env = next(env for env in postgres["env"] if env["name"] == "POSTGRES_PASSWORD")
    assert password_env["valueFrom"]["secretKeyRef"]["name"] == "floe-postgresql"
    for release in ("gitops", RELEASE):
        run(plane, "helm", "uninstall", release, "-n", ns)


LONG_VALUES = CHART / "ci" / "long-release-name-values.yaml"
LONG_RELEASE = LONG_VALUES.read_text().split("\n", 1)[0].removeprefix("# release:").strip()


def test_53_character_release_installs_its_statefulset_gets_a_pod_and_upgrade_runs_migrate_first(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """The longest release name Helm accepts: kube-apiserver accepts every object, kcm's StatefulSet
    controller creates the PostgreSQL pod (its controller-revision-hash label fits 63 characters, which a
    name over 52 would not), kwok runs it. Then `helm upgrade` creates the pre-upgrade migrate Job before it
    changes any Deployment (the webserver's generation is still the old one while the Job exists). Last,
    an upgrade to a chart with only a new version and appVersion leaves every workload's generation as it
    was."""
    plane, ns = control_plane, control_plane_namespace
    instance = f"app.kubernetes.io/instance={LONG_RELEASE}"
    assert len(LONG_RELEASE) == 53
    install = ["install", LONG_RELEASE, str(CHART), "-n", ns, "-f", str(LONG_VALUES)]
    run(plane, "helm", *install, "--wait", "--timeout=120s")
    (sts,) = kubectl_json(plane, "get", "statefulsets", "-n", ns, "-l", instance)["items"]
    name = sts["metadata"]["name"]
    assert len(name) <= 52
    assert name.endswith("-postgresql")
    assert sts["status"].get("readyReplicas") == 1
    pod = kubectl_json(plane, "get", "pod", f"{name}-0", "-n", ns)
    revision = pod["metadata"]["labels"]["controller-revision-hash"]
    assert revision.startswith(f"{name}-")
    assert len(revision) <= 63
    assert pod["status"]["phase"] == "Running"
    headless = kubectl_json(plane, "get", "service", sts["spec"]["serviceName"], "-n", ns)
    assert headless["spec"]["clusterIP"] == "None"
    for item in kubectl_json(plane, "get", "deployments", "-n", ns, "-l", instance)["items"]:
        assert item["status"].get("readyReplicas") == 1, item["metadata"]["name"]
        assert "helm.sh/chart" not in item["spec"]["template"]["metadata"]["labels"]

    webserver = next(
        item
        for item in kubectl_json(plane, "get", "deployments", "-n", ns, "-l", instance)["items"]
        if item["metadata"]["name"].endswith("-webserver")
    )
    generation = webserver["metadata"]["generation"]
    upgrade = subprocess.Popen(
        [
            tool("helm"),
            f"--kubeconfig={plane.kubeconfig}",
            "upgrade",
            *install[1:],
            "--wait",
            "--timeout=120s",
            "--set",
            "webserver.podAnnotations.upgraded=yes",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def migrate_job() -> tuple[Json, int] | None:
        jobs = kubectl_json(
            plane, "get", "jobs", "-n", ns, "-l", f"{instance},app.kubernetes.io/component=migrate"
        )
        if not jobs["items"]:
            return None
        current = kubectl_json(plane, "get", "deployment", webserver["metadata"]["name"], "-n", ns)
        return jobs["items"][0], current["metadata"]["generation"]

    job, generation_then = wait_for("the pre-upgrade migrate Job", migrate_job, 60, interval=0.1)
    _out, err = upgrade.communicate(timeout=150)
    assert upgrade.returncode == 0, err
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1].endswith(
        "dagster instance migrate"
    )
    assert generation_then == generation, "the webserver changed before the migration ran"
    after = kubectl_json(plane, "get", "deployment", webserver["metadata"]["name"], "-n", ns)
    assert after["metadata"]["generation"] > generation
    # hook-succeeded: helm deleted the Job once kwok completed its pod.
    assert not kubectl_json(
        plane, "get", "jobs", "-n", ns, "-l", f"{instance},app.kubernetes.io/component=migrate"
    )["items"]

    # A chart bump alone (new version and appVersion, the images pinned) changes no pod template: neither
    # the StatefulSet nor any Deployment gets a new generation, so kcm restarts nothing (no Postgres restart).
    generations = _workload_generations(plane, ns, instance)
    assert any(kind == "statefulsets" for kind, _name in generations)
    bumped = _bumped_chart(tmp_path)
    pinned = [
        arg
        for key in ("webserver", "daemon", "userCode", "operator")
        for arg in ("--set", f"{key}.image.tag=0.1.0")
    ]
    run(plane, "helm", "upgrade", LONG_RELEASE, str(bumped), *install[3:], *pinned, "--set",
        "webserver.podAnnotations.upgraded=yes", "--wait", "--timeout=120s")  # fmt: skip
    assert _workload_generations(plane, ns, instance) == generations
    (sts,) = kubectl_json(plane, "get", "statefulsets", "-n", ns, "-l", instance)["items"]
    assert sts["metadata"]["labels"]["helm.sh/chart"] == "floe-platform-0.2.0"
    for label in ("helm.sh/chart", "app.kubernetes.io/version"):
        assert label not in sts["spec"]["template"]["metadata"]["labels"]
    run(plane, "helm", "uninstall", LONG_RELEASE, "-n", ns, "--wait", "--timeout=120s")


def test_the_readmes_postgres_storage_procedure_replaces_the_statefulset_keeping_pod_and_claim(
    control_plane: ControlPlane, control_plane_namespace: str
) -> None:
    """The README's Upgrade section, on the real kube-apiserver and kcm: an upgrade that changes
    postgresql.persistence.size fails with the error the README quotes (volumeClaimTemplates are
    immutable); `kubectl delete statefulset --cascade=orphan` then the same upgrade succeeds, and the new
    StatefulSet adopts the running pod and keeps its claim (same UIDs). Not shown: resizing the claim
    itself (`kubectl patch pvc`), which needs a StorageClass that allows expansion and a dynamically
    provisioned volume; this control plane's volumes are static. The claim's class names none here, so it
    stays Pending and takes no volume from the control plane's small pool."""
    plane, ns = control_plane, control_plane_namespace
    values = CHART / "ci" / "compute-logs-off-values.yaml"
    sts_name = f"{RELEASE}-floe-platform-postgresql"
    base = ["-n", ns, "-f", str(values), "--set", "postgresql.persistence.storageClass=no-volume-here"]
    run(plane, "helm", "install", RELEASE, str(CHART), *base)

    def pod_and_claim() -> tuple[Json, Json] | None:
        pods = kubectl_json(plane, "get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=postgresql")
        claims = kubectl_json(plane, "get", "pvc", "-n", ns)["items"]
        return (pods["items"][0], claims[0]) if pods["items"] and claims else None

    pod, claim = wait_for("the StatefulSet's pod and claim", pod_and_claim, 60)
    assert claim["metadata"]["name"] == f"data-{sts_name}-0"
    bigger = [*base, "--set", "postgresql.persistence.size=20Gi"]
    refused = subprocess.run(
        [tool("helm"), f"--kubeconfig={plane.kubeconfig}", "upgrade", RELEASE, str(CHART), *bigger],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert refused.returncode != 0
    said = f'StatefulSet.apps "{sts_name}" is invalid: spec.volumeClaimTemplates: Invalid value: '
    assert said in refused.stderr, refused.stderr
    assert refused.stderr.rstrip().endswith("field is immutable"), refused.stderr
    readme = " ".join((CHART / "README.md").read_text().split())
    quoted = (
        'StatefulSet.apps "...-postgresql" is invalid: spec.volumeClaimTemplates: Invalid value: ...: '
        "field is immutable"
    )
    assert quoted in readme

    run(plane, "kubectl", "-n", ns, "delete", "statefulset", sts_name, "--cascade=orphan")
    run(plane, "helm", "upgrade", RELEASE, str(CHART), *bigger)
    sts = kubectl_json(plane, "get", "statefulset", sts_name, "-n", ns)
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"

    def adopted() -> Json | None:
        now = kubectl_json(plane, "get", "pod", pod["metadata"]["name"], "-n", ns)
        owners = now["metadata"].get("ownerReferences") or []
        return now if [owner["uid"] for owner in owners] == [sts["metadata"]["uid"]] else None

    adopted_pod = wait_for("the new StatefulSet to adopt the orphaned pod", adopted, 60)
    assert adopted_pod["metadata"]["uid"] == pod["metadata"]["uid"]
    kept = kubectl_json(plane, "get", "pvc", claim["metadata"]["name"], "-n", ns)
    assert kept["metadata"]["uid"] == claim["metadata"]["uid"]
    run(plane, "helm", "uninstall", RELEASE, "-n", ns)


def _workload_generations(plane: ControlPlane, namespace: str, selector: str) -> dict[tuple[str, str], int]:
    return {
        (kind, item["metadata"]["name"]): item["metadata"]["generation"]
        for kind in ("deployments", "statefulsets")
        for item in kubectl_json(plane, "get", kind, "-n", namespace, "-l", selector)["items"]
    }


def _bumped_chart(tmp_path: Path) -> Path:
    """A copy of the chart whose version and appVersion are 0.2.0."""
    bumped = tmp_path / "floe-platform"
    shutil.copytree(CHART, bumped)
    chart_yaml = yaml.safe_load((bumped / "Chart.yaml").read_text())
    chart_yaml.update(version="0.2.0", appVersion="0.2.0")
    (bumped / "Chart.yaml").write_text(yaml.safe_dump(chart_yaml))
    return bumped


def _finish_pod_as_the_kubelet(plane: ControlPlane, namespace: str, pod: Json, exit_code: int) -> None:
    """Report the container's end, as the kubelet would once the program exited."""
    statuses = []
    for status in pod["status"].get("containerStatuses", []):
        started = (status.get("state", {}).get("running") or {}).get("startedAt")
        finished = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}
        statuses.append(
            {
                **status,
                "ready": False,
                "started": False,
                "state": {"terminated": {**finished, "startedAt": started, "finishedAt": started}},
            }
        )
    body = {"status": {"phase": "Succeeded" if exit_code == 0 else "Failed", "containerStatuses": statuses}}
    run(
        plane,
        "kubectl",
        "patch",
        "pod",
        pod["metadata"]["name"],
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(body),
    )


def test_plain_helm_uninstall_with_a_platform_leaves_no_floeplatform_stuck(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """`helm uninstall` alone, with `platform:` set and the operator running (the real `floe operator`, as
    the chart's operator ServiceAccount). Helm creates the pre-delete hook Job before deleting anything; the
    test runs the hook container's command (`floe delete-platforms ...`) on the host with the hook's own
    ServiceAccount token (its Role: list and delete FloePlatforms, nothing else), and reports its exit code
    as the pod's status. The FloePlatform is gone (it carries no finalizer), and only then does Helm delete
    the release's objects; the operator's PodTemplates go with their owner, by kcm's garbage collector."""
    plane, ns = control_plane, control_plane_namespace
    values = CHART / "ci" / "compute-logs-off-values.yaml"
    # The hook pod stays Running under kwok until this test, playing the kubelet, ends it.
    hold = ["--set", "uninstallHook.podAnnotations.floe\\.dev/test-run-duration=10m"]
    run(
        plane,
        "helm",
        "install",
        RELEASE,
        str(CHART),
        "-n",
        ns,
        "-f",
        str(values),
        *hold,
        "--wait",
        "--timeout=120s",
    )
    operator_sa = f"{RELEASE}-floe-platform-operator"
    kubeconfig = write_service_account_kubeconfig(plane, ns, operator_sa, tmp_path / "operator.kubeconfig")
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", scope=("--namespace", ns)).running()
    try:

        def rendered() -> bool | None:
            selector = f"floe.dev/platform={RELEASE}"
            return (
                True
                if kubectl_json(plane, "get", "podtemplates", "-n", ns, "-l", selector)["items"]
                else None
            )

        wait_for("the operator's PodTemplates", rendered, 60)
        assert not kubectl_json(plane, "get", "fp", RELEASE, "-n", ns)["metadata"].get("finalizers")

        uninstall = subprocess.Popen(
            [
                tool("helm"),
                f"--kubeconfig={plane.kubeconfig}",
                "uninstall",
                RELEASE,
                "-n",
                ns,
                "--wait",
                "--timeout=180s",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        def hook_pod() -> Json | None:
            pods = kubectl_json(
                plane, "get", "pods", "-n", ns, "-l", f"{INSTANCE},app.kubernetes.io/component=uninstall"
            )
            running = [pod for pod in pods["items"] if pod["status"].get("phase") == "Running"]
            return running[0] if running else None

        pod = wait_for("the pre-delete hook's pod", hook_pod, 60)
        # Helm has deleted nothing yet: the operator's Deployment and the FloePlatform are still there.
        assert kubectl_json(plane, "get", "deployment", operator_sa, "-n", ns)["metadata"]["name"]
        hook_sa = pod["spec"]["serviceAccountName"]
        hook_kubeconfig = write_service_account_kubeconfig(plane, ns, hook_sa, tmp_path / "hook.kubeconfig")
        (container,) = pod["spec"]["containers"]
        assert container["command"][:2] == ["floe", "delete-platforms"]
        floe = shutil.which("floe") or str(ROOT / ".venv" / "bin" / "floe")
        hook = subprocess.run(
            [floe, *container["command"][1:]],
            env={"KUBECONFIG": str(hook_kubeconfig), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        print(f"\npre-delete hook as {hook_sa}: {hook.stdout.strip()} {hook.stderr.strip()}")
        assert hook.returncode == 0, hook.stderr
        assert f"1 FloePlatform(s) deleted from {ns}" in hook.stdout
        _finish_pod_as_the_kubelet(plane, ns, pod, hook.returncode)
        _out, err = uninstall.communicate(timeout=200)
        assert uninstall.returncode == 0, err
        assert kubectl_json(plane, "get", "fp", "-n", ns)["items"] == []

        def templates_gone() -> bool | None:
            left = kubectl_json(plane, "get", "podtemplates", "-n", ns, "-l", f"floe.dev/platform={RELEASE}")
            return True if not left["items"] else None

        wait_for("the garbage collector to delete the PodTemplates", templates_gone, 60)
    finally:
        operator.stop()


def test_the_pre_delete_hooks_role_is_exactly_list_and_delete_floeplatforms(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """Least privilege, asked of the real kube-apiserver with the hook's own token (`kubectl auth can-i`)."""
    plane, ns = control_plane, control_plane_namespace
    values = CHART / "ci" / "compute-logs-off-values.yaml"
    rendered = run(
        plane,
        "helm",
        "template",
        RELEASE,
        str(CHART),
        "-n",
        ns,
        "-f",
        str(values),
        "-s",
        "templates/uninstall-serviceaccount.yaml",
        "-s",
        "templates/uninstall-role.yaml",
        "-s",
        "templates/uninstall-rolebinding.yaml",
        *WITHOUT_CLUSTER,
    ).stdout
    run_stdin(plane, rendered, "apply", "-n", ns, "-f", "-")
    hook_sa = f"{RELEASE}-floe-platform-uninstall"
    wait_for_service_account(plane.admin_api(), ns, hook_sa)
    kubeconfig = write_service_account_kubeconfig(plane, ns, hook_sa, tmp_path / "hook.kubeconfig")
    allowed = {}
    for verb in ("list", "delete", "get", "watch", "create", "patch", "update", "deletecollection"):
        result = subprocess.run(
            [
                tool("kubectl"),
                f"--kubeconfig={kubeconfig}",
                "auth",
                "can-i",
                verb,
                "floeplatforms.floe.dev",
                "-n",
                ns,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        allowed[verb] = result.stdout.strip() == "yes"
    assert {verb for verb, yes in allowed.items() if yes} == {"list", "delete"}
    for other in ("pods", "secrets", "podtemplates", "deployments.apps"):
        result = subprocess.run(
            [tool("kubectl"), f"--kubeconfig={kubeconfig}", "auth", "can-i", "delete", other, "-n", ns],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.stdout.strip() == "no", other


def run_stdin(plane: ControlPlane, stdin: str, *args: str) -> None:
    done = subprocess.run(
        [tool("kubectl"), f"--kubeconfig={plane.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr

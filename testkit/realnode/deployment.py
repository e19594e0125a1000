"""The chart's Dagster instance on the session's control plane, whose run pods really run on a RealNode.

As the chart deploys it: the dagster ServiceAccount, Role and RoleBinding, ConfigMaps and Secrets of
``helm template`` (the real helm v4), the PodTemplates of our renderer, and the ``run_launcher``,
``run_monitoring`` and ``run_retries`` of the chart's dagster.yaml, the launcher authenticating as that
ServiceAccount. The code location is ``floe_e2e.probes`` (the e2e image's jobs), loaded in process from
tests/e2e/image; each run's origin names the e2e image and its interpreter, so the run pod runs the same
module from the image.

Where it differs from the chart: the instance is sqlite in a host directory that every run pod mounts at
the same path (hostPath), where the chart uses PostgreSQL; the run coordinator launches at once (the
chart's queued coordinator needs the queue daemon). Run pods tolerate the node's taint and select it
through the run tag ``dagster-k8s/config``, which Dagster copies onto every retry.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import dagster as dg
import yaml
from dagster._core.events import DagsterEventType
from dagster._core.launcher.base import WorkerStatus
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import PARENT_RUN_ID_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.auto_run_reexecution.event_log_consumer import EventLogConsumerDaemon
from dagster._daemon.monitoring.run_monitoring import monitor_started_run
from dagster_k8s.job import get_job_name_from_run_id

from floe_platform.config import load_platform_text
from floe_platform.dagster.profiles import PROFILE_TAG
from floe_platform.render import render_pod_templates
from testkit.controlplane import ControlPlane, wait_for, write_service_account_kubeconfig
from testkit.helm import WITHOUT_CLUSTER
from testkit.realnode.images import E2E_IMAGE
from testkit.realnode.node import RealNode

ROOT = Path(__file__).resolve().parents[2]
E2E_CODE = ROOT / "tests/e2e/image"  # floe_e2e, as the e2e image carries it at /opt/floe-e2e
PROBES_MODULE = "floe_e2e.probes"
LOCATION = "floe-e2e"
POD_PYTHON = "/opt/venv/bin/python"  # the image's interpreter, named in each run's origin
POD_UID = 1000  # the images' user
RUN_TIMEOUT_S = 300.0

PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "PodTemplate": "/api/v1/namespaces/{ns}/podtemplates",
}


def helm_template(platform: dict[str, Any], namespace: str, scratch: Path) -> list[dict[str, Any]]:
    """The chart rendered by the real helm with ``platform`` as its platform.yaml."""
    helm = shutil.which("helm") or str(ROOT / ".tools/bin/helm")
    values = scratch / "values.yaml"
    values.write_text(yaml.safe_dump({"platform": platform}))
    output = subprocess.run(
        [
            helm,
            "template",
            "floe",
            str(ROOT / "charts/floe-platform"),
            *("-n", namespace, "-f", str(values)),
            *WITHOUT_CLUSTER,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def _is_dagster_part(doc: dict[str, Any]) -> bool:
    """The dagster ServiceAccount/Role/RoleBinding, and the ConfigMaps and Secrets a run pod refers to."""
    component = doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
    if doc["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
        return bool(component == "dagster")
    return doc["kind"] in ("ConfigMap", "Secret")


@dataclass
class RealPodDeployment:
    plane: ControlPlane
    node: RealNode
    namespace: str
    platform: dict[str, Any]
    instance: dg.DagsterInstance
    workspace: WorkspaceProcessContext
    shared_dir: Path

    @property
    def launcher(self) -> Any:
        return self.instance.run_launcher

    @property
    def probes(self) -> ModuleType:
        """floe_e2e.probes as the code location loaded it."""
        return importlib.import_module(PROBES_MODULE)

    def submit(self, job_name: str, profile: str, run_config: dict[str, Any] | None = None) -> DagsterRun:
        """Create and submit a run of ``job_name`` on ``profile``, as the webserver does, placed on the real
        node with the shared instance directory mounted at its own path."""
        volume = {"name": "instance", "hostPath": {"path": str(self.shared_dir), "type": "Directory"}}
        k8s_config = {
            "pod_spec_config": {
                "node_selector": self.node.node_selector,
                "tolerations": [self.node.toleration],
                "volumes": [volume],
            },
            "container_config": {
                "volume_mounts": [{"name": "instance", "mount_path": str(self.shared_dir)}],
            },
        }
        context = self.workspace.create_request_context()
        repository = context.get_code_location(LOCATION).get_repository("__repository__")
        remote_job = repository.get_full_job(job_name)
        run = self.instance.create_run_for_job(
            job_def=self.probes.defs.resolve_job_def(job_name),
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            run_config=run_config or {},
            tags={PROFILE_TAG: profile, "dagster-k8s/config": json.dumps(k8s_config)},
        )
        self.instance.submit_run(run.run_id, context)
        self.hand_to_pod_user()
        return self.run(run.run_id)

    def hand_to_pod_user(self) -> None:
        """The run worker runs as the image's user and writes to the sqlite files the host made (a launch
        makes the run's event log): give them to it."""
        for path in [self.shared_dir, *self.shared_dir.rglob("*")]:
            os.chown(path, POD_UID, POD_UID, follow_symlinks=False)

    def run(self, run_id: str) -> DagsterRun:
        found = self.instance.get_run_by_id(run_id)
        assert found is not None
        return found

    def finished(self, run: DagsterRun, timeout: float = 60.0) -> DagsterRun:
        """The run once Dagster records its end."""
        return wait_for(
            f"run {run.run_id} to end",
            lambda: r if (r := self.run(run.run_id)).is_finished else None,
            timeout,
        )

    def pod(self, run: DagsterRun) -> dict[str, Any]:
        job: str = get_job_name_from_run_id(run.run_id)  # type: ignore[no-untyped-call]
        selector = f"job-name%3D{job}"
        path = f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={selector}"
        pods: list[dict[str, Any]] = self.plane.admin_api().get(path)["items"]
        assert len(pods) == 1, pods
        return pods[0]

    def pod_finished(self, run: DagsterRun, timeout: float = RUN_TIMEOUT_S) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            pod = self.pod(run)
            return pod if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

        return wait_for("the run pod to finish", probe, timeout, interval=1.0)

    def fail_dead_worker(self, run: DagsterRun) -> DagsterRun:
        """Wait for the launcher's health check to see the dead worker, then run Dagster's run monitoring
        on the run once, as the monitoring daemon does: it fails the run with the launcher's message."""

        def failed() -> bool | None:
            health = self.launcher.check_run_worker_health(self.run(run.run_id))
            return True if health.status == WorkerStatus.FAILED else None

        wait_for("the failed health check", failed, 60)
        record = self.instance.get_run_record_by_id(run.run_id)
        assert record is not None
        context = self.workspace.create_request_context()
        monitor_started_run(self.instance, context, record, logging.getLogger(__name__))
        return self.run(run.run_id)

    def retry_daemon_tick(self) -> None:
        """One iteration of Dagster's auto-retry daemon (the event-log consumer); the runs it launches get
        their files handed to the pod user."""
        list(EventLogConsumerDaemon().run_iteration(self.workspace))
        self.hand_to_pod_user()

    def retry_of(self, run: DagsterRun) -> DagsterRun | None:
        children = [r for r in self.instance.get_runs() if r.tags.get(PARENT_RUN_ID_TAG) == run.run_id]
        assert len(children) <= 1
        return children[0] if children else None

    def messages(self, run: DagsterRun) -> list[str]:
        """The messages of the run's events, as Dagster's event log stores them (not shortened)."""
        entries = self.instance.all_logs(run.run_id)
        return [entry.dagster_event.message or "" for entry in entries if entry.dagster_event is not None]

    def log_lines(self, run: DagsterRun) -> list[str]:
        """Every event's message, the job's own log lines included."""
        return [entry.message for entry in self.instance.all_logs(run.run_id)]

    def materialization(self, run: DagsterRun) -> dict[str, Any]:
        """The metadata of the run's one asset materialization, as plain values."""
        entries = self.instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        assert len(entries) == 1, entries
        materialization = entries[0].asset_materialization
        assert materialization is not None
        return {name: value.value for name, value in materialization.metadata.items()}

    def template_env(self, profile: str) -> dict[str, str]:
        """The DUCKDB_* variables the renderer puts in the profile's PodTemplate."""
        config = load_platform_text(yaml.safe_dump(self.platform))
        templates = render_pod_templates(config, namespace=self.namespace)
        template = next(t for t in templates if t["metadata"]["name"].endswith(f"-{profile}"))
        container = next(c for c in template["template"]["spec"]["containers"] if c["name"] == "dagster")
        return {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("DUCKDB_")}


@contextmanager
def deploy(
    plane: ControlPlane, namespace: str, node: RealNode, platform: dict[str, Any], scratch: Path
) -> Iterator[RealPodDeployment]:
    """As admin: the chart's dagster RBAC, ConfigMaps and Secrets, and the operator's PodTemplates. Then
    the chart's instance settings with the ServiceAccount's token, and the in-process code location."""
    admin = plane.admin_api()
    docs = helm_template(platform, namespace, scratch)
    for doc in docs:
        if _is_dagster_part(doc):
            admin.create(PATHS[doc["kind"]].format(ns=namespace), doc)
    config = load_platform_text(yaml.safe_dump(platform))
    for template in render_pod_templates(config, namespace=namespace):
        admin.create(PATHS["PodTemplate"].format(ns=namespace), template)
    instance_doc = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-instance")
    )
    dagster_yaml = yaml.safe_load(instance_doc["data"]["dagster.yaml"])
    shared_dir = scratch / "instance"
    shared_dir.mkdir()
    launcher = dagster_yaml["run_launcher"]
    account = launcher["config"]["service_account_name"]
    kubeconfig = shared_dir / "dagster.kubeconfig"
    write_service_account_kubeconfig(plane, namespace, account, kubeconfig)
    launcher["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    overrides = {
        "run_launcher": launcher,
        "run_monitoring": dagster_yaml["run_monitoring"],
        "run_retries": dagster_yaml["run_retries"],
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    }
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=POD_PYTHON,
            module_name=PROBES_MODULE,
            attribute="defs",
            working_directory=str(E2E_CODE),
        ),
        container_image=E2E_IMAGE,
        location_name=LOCATION,
    )
    with (
        dg.instance_for_test(overrides=overrides, temp_dir=str(shared_dir)) as instance,
        WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as workspace,
    ):
        deployment = RealPodDeployment(plane, node, namespace, platform, instance, workspace, shared_dir)
        deployment.retry_daemon_tick()  # the daemon's first tick starts reading the event log from here
        yield deployment

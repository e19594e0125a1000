"""The launcher runs each profile's run worker under `floe-run-worker`, tags requests and limits, and tags
an OOM kill; runs without a profile stay as stock dagster-k8s launches them.

Stand-in: kmock (over real HTTP) for the Kubernetes API, as in ``test_launcher.py`` whose fixtures and
helpers this reuses; every posted Job is validated with kubernetes-validate. Real Dagster (sqlite).
"""

from __future__ import annotations

import kubernetes  # type: ignore[import-untyped]
from test_launcher import (  # the launcher suite's fixtures and helpers
    NAMESPACE,
    _container,
    _launch,
    _only_job,
    _oom_killed_pod,
    _run_started_event,
    cluster,  # noqa: F401
    make_instance,  # noqa: F401
)

from floe_platform.dagster.profiles import PROFILE_TAG
from floe_platform.dagster.run_worker import RUN_WORKER_COMMAND
from floe_platform.usage.tags import (
    CPU_LIMIT_TAG,
    CPU_REQUEST_TAG,
    MEMORY_LIMIT_TAG,
    MEMORY_REQUEST_TAG,
    OOM_TAG,
)


def test_profile_run_pod_runs_the_run_worker_under_the_recorder(cluster, make_instance) -> None:  # noqa: F811
    run = _launch(make_instance(), "plain_job", tags={PROFILE_TAG: "transform"})
    container = _container(_only_job(cluster))
    assert container["command"] == RUN_WORKER_COMMAND
    assert container["args"][1:3] == ["api", "execute_run"] or container["args"][-3:-1] == [
        "api",
        "execute_run",
    ]
    assert {
        key: run.tags[key] for key in (MEMORY_LIMIT_TAG, CPU_LIMIT_TAG, MEMORY_REQUEST_TAG, CPU_REQUEST_TAG)
    } == {
        MEMORY_LIMIT_TAG: "6Gi",
        CPU_LIMIT_TAG: "4",
        MEMORY_REQUEST_TAG: "2Gi",
        CPU_REQUEST_TAG: "1",
    }


def test_a_run_without_profile_keeps_dagsters_own_command(cluster, make_instance) -> None:  # noqa: F811
    _launch(make_instance(), "plain_job")
    assert "command" not in _container(_only_job(cluster))


def test_a_command_set_by_a_higher_layer_is_kept(cluster, make_instance) -> None:  # noqa: F811
    own = {"container_config": {"command": ["/bin/entry"]}}
    _launch(
        make_instance(),
        "plain_job",
        tags={PROFILE_TAG: "transform"},
        container_context={"k8s": {"run_k8s_config": own}},
    )
    assert _container(_only_job(cluster))["command"] == ["/bin/entry"]


def test_an_oom_killed_run_is_tagged_for_the_report(cluster, make_instance) -> None:  # noqa: F811
    """The kubelet's OOMKilled status (written into the emulator) makes the health check tag the run."""
    instance = make_instance()
    run = _launch(instance, "plain_job", tags={PROFILE_TAG: "small"})
    instance.handle_run_event(run.run_id, _run_started_event(run))
    job_name = _only_job(cluster)["metadata"]["name"]
    api = cluster.api_client()
    kubernetes.client.CoreV1Api(api).create_namespaced_pod(NAMESPACE, _oom_killed_pod(job_name, run.run_id))
    kubernetes.client.BatchV1Api(api).patch_namespaced_job(
        job_name, NAMESPACE, {"status": {"failed": 1, "active": 0}}
    )
    instance.run_launcher.check_run_worker_health(instance.get_run_by_id(run.run_id))
    assert instance.get_run_by_id(run.run_id).tags[OOM_TAG] == "true"

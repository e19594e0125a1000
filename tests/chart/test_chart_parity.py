"""What users of the official Dagster chart expect: several code locations, an Ingress and a read-only
webserver, PodDisruptionBudgets, NetworkPolicies, common labels and annotations, per-component pod labels
and priority classes.

Runs the real helm v4 (`helm template`) over the ci/ matrix and with single `--set` changes, and reads the
objects. NetworkPolicies are checked by evaluating their selectors and rules over the rendered pods' own
labels (plus a run pod labelled as dagster-k8s labels it): no network plugin runs here, so what is shown
is which flows the policies allow, not that a plugin enforces them. The objects themselves are validated
by kubernetes-validate --strict (test_chart_manifests) and accepted by a real kube-apiserver
(test_chart_on_apiserver).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import CI_DIR, ROOT, HelmError, Rendered, render

Json = dict[str, Any]


def _component(doc: Json) -> str:
    component: str = doc["metadata"]["labels"]["app.kubernetes.io/component"]
    return component


def _pod_labels(doc: Json) -> dict[str, str]:
    labels: dict[str, str] = doc["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: Json, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions In/NotIn/Exists/DoesNotExist)."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        matched = {
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
        }[operator]
        if not matched:
            return False
    return True


# Several code locations ---------------------------------------------------------------------------


def _locations(release: Rendered) -> dict[str, Json]:
    return {
        doc["metadata"]["labels"]["floe.dev/code-location"]: doc
        for doc in release.of_kind("Deployment")
        if _component(doc) == "user-code"
    }


def test_each_location_gets_its_own_deployment_and_service_and_the_workspace_lists_them_all(
    rendered_matrix: dict[str, Rendered],
) -> None:
    release = rendered_matrix["several-locations"]
    deployments = _locations(release)
    assert sorted(deployments) == ["finance", "ml", "sales"]
    services = {
        doc["metadata"]["labels"]["floe.dev/code-location"]: doc
        for doc in release.of_kind("Service")
        if _component(doc) == "user-code"
    }
    workspace = yaml.safe_load(release.named("ConfigMap", "workspace")["data"]["workspace.yaml"])
    servers = {
        entry["grpc_server"]["location_name"]: entry["grpc_server"] for entry in workspace["load_from"]
    }
    assert sorted(servers) == ["finance", "ml", "sales"]
    for name, deployment in deployments.items():
        service = services[name]
        assert (
            deployment["metadata"]["name"] == service["metadata"]["name"] == f"floe-floe-platform-code-{name}"
        )
        assert servers[name]["host"] == service["metadata"]["name"]
        assert servers[name]["port"] == service["spec"]["ports"][0]["port"]
        # Each Service selects its own location's pods and no other's.
        selected = [
            loc
            for loc, other in deployments.items()
            if _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(other))
        ]
        assert selected == [name]
        assert deployment["spec"]["selector"]["matchLabels"]["floe.dev/code-location"] == name


def test_a_location_takes_its_own_module_args_image_resources_env_and_account(
    rendered_matrix: dict[str, Rendered],
) -> None:
    deployments = _locations(rendered_matrix["several-locations"])

    def container(name: str) -> Json:
        found: Json = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        return found

    assert container("sales")["command"][-2:] == ["-m", "floe_demo.definitions"]
    assert container("ml")["command"][-2:] == ["--package-name", "floe_demo"]
    assert container("ml")["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "2Gi"},
    }
    assert container("finance")["resources"]["limits"] == {"memory": "1Gi"}, "userCode.resources by default"
    assert deployments["ml"]["spec"]["replicas"] == 2
    assert deployments["sales"]["spec"]["replicas"] == 1
    env = {entry["name"]: entry for entry in container("ml")["env"]}
    assert env["MODEL_BUCKET"]["value"] == "models"
    assert "MODEL_BUCKET" not in {entry["name"] for entry in container("sales")["env"]}
    ml_pod = deployments["ml"]["spec"]["template"]["spec"]
    assert ml_pod["serviceAccountName"] == "default"
    assert "automountServiceAccountToken" not in ml_pod
    assert deployments["sales"]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    # The location's image serves its code and, through DAGSTER_CURRENT_IMAGE, runs its runs.
    current = {entry["name"]: entry.get("value") for entry in container("sales")["env"]}
    assert container("sales")["image"] == current["DAGSTER_CURRENT_IMAGE"] == "floe-platform/user-code:0.1.0"


def test_the_single_location_keeps_its_names_and_selector(default_release: Rendered) -> None:
    """Without userCode.locations nothing an upgrade cannot change moves: same names, same selector."""
    deployment = default_release.named("Deployment", "user-code")
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "floe-platform",
        "app.kubernetes.io/instance": "floe",
        "app.kubernetes.io/component": "user-code",
    }
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"][-2:] == [
        "-m",
        "floe_demo.definitions",
    ]
    workspace = yaml.safe_load(default_release.named("ConfigMap", "workspace")["data"]["workspace.yaml"])
    assert workspace["load_from"] == [
        {"grpc_server": {"host": "floe-floe-platform-user-code", "port": 3030, "location_name": "floe-demo"}}
    ]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            [
                "userCode.locations[0].name=a",
                "userCode.locations[0].module=m",
                "userCode.locations[1].name=a",
                "userCode.locations[1].module=n",
            ],
            'userCode.locations[1].name: "a" is used twice; give each code location its own name',
        ),
        (
            [
                "userCode.locations[0].name=a",
                "userCode.locations[0].module=m",
                "userCode.locations[0].args[0]=-f",
            ],
            "userCode.locations[0]: set module or args, not both",
        ),
        (
            ["userCode.locations[0].name=a"],
            "userCode.locations[0] (a): set module (e.g. acme.definitions) or args",
        ),
    ],
    ids=["duplicate-name", "module-and-args", "neither"],
)
def test_bad_locations_are_refused_in_one_line(sets: list[str], message: str) -> None:
    with pytest.raises(HelmError) as refused:
        render(sets=sets)
    assert message in str(refused.value)
    assert len(str(refused.value).splitlines()[0]) < 300


# Ingress and the read-only webserver ----------------------------------------------------------------


def test_ingress_routes_each_host_to_its_webserver_with_tls_class_and_annotations(
    rendered_matrix: dict[str, Rendered],
) -> None:
    release = rendered_matrix["ingress-read-only"]
    ingress = release.named("Ingress", "webserver")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["tls"] == [
        {"hosts": ["dagster.example.com", "dagster-view.example.com"], "secretName": "dagster-tls"}
    ]
    backends = {
        rule["host"]: rule["http"]["paths"][0]["backend"]["service"] for rule in ingress["spec"]["rules"]
    }
    assert backends == {
        "dagster.example.com": {"name": "floe-floe-platform-webserver", "port": {"name": "http"}},
        "dagster-view.example.com": {
            "name": "floe-floe-platform-webserver-read-only",
            "port": {"name": "http"},
        },
    }
    for backend in backends.values():
        service = release.named("Service", backend["name"].removeprefix("floe-floe-platform-"))
        assert service["metadata"]["annotations"] == {
            "service.beta.kubernetes.io/aws-load-balancer-internal": "true"
        }
    assert not rendered_matrix["default"].of_kind("Ingress")


def test_read_only_webserver_is_a_second_deployment_started_read_only(
    rendered_matrix: dict[str, Rendered],
) -> None:
    release = rendered_matrix["ingress-read-only"]
    writable = release.named("Deployment", "webserver")
    read_only = release.named("Deployment", "webserver-read-only")
    assert "--read-only" in read_only["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--read-only" not in writable["spec"]["template"]["spec"]["containers"][0]["command"]
    assert read_only["spec"]["replicas"] == 2
    # Each Service reaches only its own Deployment's pods.
    for name, deployment, other in (
        ("webserver", writable, read_only),
        ("webserver-read-only", read_only, writable),
    ):
        selector = release.named("Service", name)["spec"]["selector"]
        assert _selects({"matchLabels": selector}, _pod_labels(deployment))
        assert not _selects({"matchLabels": selector}, _pod_labels(other))
    assert not rendered_matrix["default"].has("Deployment", "webserver-read-only")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["webserver.ingress.enabled=true"], "webserver.ingress.hosts: give at least one host"),
        (
            [
                "webserver.ingress.enabled=true",
                "webserver.ingress.hosts[0].host=a.example.com",
                "webserver.ingress.hosts[0].readOnly=true",
            ],
            "webserver.ingress.hosts[0].readOnly: the read-only webserver is off",
        ),
    ],
    ids=["no-host", "read-only-host-without-read-only-webserver"],
)
def test_bad_ingress_values_are_refused_in_one_line(sets: list[str], message: str) -> None:
    with pytest.raises(HelmError) as refused:
        render(sets=sets)
    assert message in str(refused.value)


# PodDisruptionBudgets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("default", []),
        ("ingress-read-only", ["floe-floe-platform-webserver-read-only"]),
        ("several-locations", ["floe-floe-platform-code-ml"]),
    ],
)
def test_budgets_exist_only_where_more_than_one_replica_runs(
    rendered_matrix: dict[str, Rendered], case: str, expected: list[str]
) -> None:
    release = rendered_matrix[case]
    budgets = release.of_kind("PodDisruptionBudget")
    assert sorted(doc["metadata"]["name"] for doc in budgets) == expected
    for budget in budgets:
        deployment = next(
            d for d in release.of_kind("Deployment") if d["metadata"]["name"] == budget["metadata"]["name"]
        )
        assert deployment["spec"]["replicas"] > 1
        assert budget["spec"]["maxUnavailable"] == 1
        covered = [
            d["metadata"]["name"]
            for d in release.of_kind("Deployment")
            if _selects(budget["spec"]["selector"], _pod_labels(d))
        ]
        assert covered == [deployment["metadata"]["name"]]


def test_a_budget_follows_the_replica_count() -> None:
    assert render(sets=["webserver.replicas=3"]).has("PodDisruptionBudget", "webserver")
    assert not render(sets=["webserver.replicas=3", "podDisruptionBudget.enabled=false"]).of_kind(
        "PodDisruptionBudget"
    )


# NetworkPolicies ----------------------------------------------------------------------------------------

PORTS = {
    "webserver": 3000,
    "webserver-read-only": 3000,
    "user-code": 3030,
    "postgresql": 5432,
    "localstack": 4566,
}


def _pods(release: Rendered) -> dict[str, dict[str, str]]:
    """Labels of one pod of each kind in the release, and of a run pod as dagster-k8s labels it."""
    pods: dict[str, dict[str, str]] = {}
    for doc, _ in release.workloads():
        labels = doc["metadata"]["labels"] if doc["kind"] == "Pod" else _pod_labels(doc)
        pods[labels["app.kubernetes.io/component"]] = labels
    launcher = release.dagster_yaml()["run_launcher"]["config"]
    pods["runs"] = {**launcher["labels"], "dagster/run-id": "0f1e", "dagster/job": "job"}
    return pods


def _peer_allows(peers: list[Json] | None, labels: dict[str, str]) -> bool:
    if peers is None:
        return True
    return any("podSelector" in peer and _selects(peer["podSelector"], labels) for peer in peers)


def _port_allowed(rule: Json, port: int) -> bool:
    return "ports" not in rule or any(entry["port"] == port for entry in rule["ports"])


def _allowed(policies: list[Json], pods: dict[str, dict[str, str]], source: str, target: str) -> bool:
    """Whether the policies let ``source`` pods open TCP ``PORTS[target]`` on ``target`` pods."""
    port = PORTS[target]
    egress = [p for p in policies if _selects(p["spec"]["podSelector"], pods[source])]
    ingress = [p for p in policies if _selects(p["spec"]["podSelector"], pods[target])]
    out = not egress or any(
        _port_allowed(rule, port) and _peer_allows(rule.get("to"), pods[target])
        for policy in egress
        for rule in policy["spec"].get("egress") or []
    )
    into = not ingress or any(
        _port_allowed(rule, port) and _peer_allows(rule.get("from"), pods[source])
        for policy in ingress
        for rule in policy["spec"].get("ingress") or []
    )
    return out and into


def test_network_policies_allow_exactly_the_platforms_flows(rendered_matrix: dict[str, Rendered]) -> None:
    release = rendered_matrix["network-policy"]
    policies = release.of_kind("NetworkPolicy")
    pods = _pods(release)
    sources = sorted(pods)
    targets = sorted(set(PORTS) & set(pods))
    allowed = {(s, t) for s in sources for t in targets if s != t and _allowed(policies, pods, s, t)}
    webservers = {"webserver", "webserver-read-only"}
    instance_users = webservers | {"daemon", "user-code", "runs"}
    expected = (
        {(s, "postgresql") for s in instance_users | {"migrate"}}
        | {(s, "localstack") for s in instance_users}
        | {(s, "user-code") for s in webservers | {"daemon"}}
        | {("test", "webserver"), ("test", "localstack")}  # the helm test also checks the bucket
    )
    assert allowed == expected
    _each_pod_has_exactly_one_policy(release)


def _each_pod_has_exactly_one_policy(release: Rendered) -> None:
    """Every pod of the release is selected by exactly one policy, so nothing else gets through; and every
    policy selects a pod the release makes (a hook's policy exists exactly when its Job does)."""
    policies = release.of_kind("NetworkPolicy")
    pods = _pods(release)
    for component, labels in pods.items():
        selecting = [p["metadata"]["name"] for p in policies if _selects(p["spec"]["podSelector"], labels)]
        assert len(selecting) == 1, (component, selecting)
    for policy in policies:
        selected = [c for c, labels in pods.items() if _selects(policy["spec"]["podSelector"], labels)]
        assert selected, f"{policy['metadata']['name']} selects no pod of the release"


def test_hook_policies_follow_their_jobs_on_a_release_with_its_own_s3_and_a_platform() -> None:
    """three-profiles: own S3 with the bucket Job, a platform (so the pre-delete hook), step Jobs on."""
    release = render(
        [CI_DIR / "three-profiles-values.yaml"],
        sets=["networkPolicy.enabled=true", "computeLogBucketJob.enabled=true"],
    )
    assert release.has("NetworkPolicy", "create-bucket-net")
    assert release.has("NetworkPolicy", "uninstall-net")
    _each_pod_has_exactly_one_policy(release)
    bucket_ports = {
        e["port"] for p in _egress_peers(release, "create-bucket") if "ipBlock" in p for e in p["ports"]
    }
    assert bucket_ports == {443}


def test_with_step_jobs_the_run_worker_reaches_the_api_server_and_without_it_does_not(
    rendered_matrix: dict[str, Rendered],
) -> None:
    with_steps = render([CI_DIR / "network-policy-values.yaml"], sets=["dagster.stepJobs.enabled=true"])
    api = {p["ipBlock"]["cidr"] for p in _egress_peers(with_steps, "runs") if "ipBlock" in p}
    assert api == {"10.0.0.1/32", "172.18.0.2/32"}
    without = rendered_matrix["network-policy"]
    assert [p for p in _egress_peers(without, "runs") if "ipBlock" in p] == []


def test_the_run_policy_selects_only_this_releases_run_pods(rendered_matrix: dict[str, Rendered]) -> None:
    release = rendered_matrix["network-policy"]
    policy = release.named("NetworkPolicy", "runs-net")
    ours = _pods(release)["runs"]
    other_release = {**ours, "app.kubernetes.io/instance": "another-release"}
    assert _selects(policy["spec"]["podSelector"], ours)
    assert not _selects(policy["spec"]["podSelector"], other_release)


def _egress_peers(release: Rendered, component: str) -> list[Json]:
    pods = _pods(release)
    policy = next(
        p for p in release.of_kind("NetworkPolicy") if _selects(p["spec"]["podSelector"], pods[component])
    )
    return [peer | {"ports": rule.get("ports")} for rule in policy["spec"]["egress"] for peer in rule["to"]]


def test_dns_for_all_and_the_api_server_only_for_its_callers(rendered_matrix: dict[str, Rendered]) -> None:
    release = rendered_matrix["network-policy"]
    for component in _pods(release):
        peers = _egress_peers(release, component)
        dns = [p for p in peers if "namespaceSelector" in p]
        assert [p["namespaceSelector"]["matchLabels"] for p in dns] == [
            {"kubernetes.io/metadata.name": "kube-system"}
        ]
        api = sorted({p["ipBlock"]["cidr"] for p in peers if "ipBlock" in p})
        if component in ("webserver", "webserver-read-only", "daemon", "operator"):
            assert api == ["10.0.0.1/32", "172.18.0.2/32"], component
        else:
            assert api == [], component


def test_webserver_takes_traffic_from_the_named_peers_and_the_helm_test(
    rendered_matrix: dict[str, Rendered],
) -> None:
    release = rendered_matrix["network-policy"]
    policy = release.named("NetworkPolicy", "webserver-net")
    peers = policy["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in peers
    assert not _peer_allows(peers, {"app.kubernetes.io/component": "daemon"})


def test_external_database_and_s3_are_reached_on_their_own_ports() -> None:
    """three-profiles keeps compute logs on its own https S3; with an external database on 6432, the runs
    may reach 6432 and 443 on externalCidrs only, and no policy exists for a database or LocalStack the
    release does not have."""
    release = render(
        [CI_DIR / "three-profiles-values.yaml"],
        sets=[
            "networkPolicy.enabled=true",
            "postgresql.enabled=false",
            "externalPostgresql.host=db.example.com",
            "externalPostgresql.port=6432",
            "externalPostgresql.existingSecret=db",
            "networkPolicy.externalCidrs[0]=10.20.0.0/16",
            "dagster.stepJobs.enabled=false",  # else runs may also reach the API server (tested below)
        ],
    )
    external = [p for p in _egress_peers(release, "runs") if "ipBlock" in p]
    assert {p["ipBlock"]["cidr"] for p in external} == {"10.20.0.0/16"}
    assert {entry["port"] for p in external for entry in p["ports"]} == {6432, 443}
    assert not release.has("NetworkPolicy", "postgresql-net")
    assert not release.has("NetworkPolicy", "localstack-net")


PROFILES = {
    "infrastructure": {
        "resource_profiles": {
            "default": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
        }
    }
}
OWN_LOG_STORAGE = {
    "logs": {"endpoint": "https://s3.example.com:9443", "credentials": {"secret_name": "logs"}}
}


def _with_platform(platform: Json, tmp_path: Path, sets: Sequence[str] = ()) -> Rendered:
    values = tmp_path / "platform-values.yaml"
    values.write_text(yaml.safe_dump({"platform": platform}))
    return render([CI_DIR / "network-policy-values.yaml", values], sets=sets)


@pytest.mark.parametrize(
    "logs",
    [
        {"observability": {"compute_logs": {"enabled": False}}},
        {"observability": {"compute_logs": {"manager_type": "local"}}},
        {"observability": {"compute_logs": {"storage_ref": "logs"}}, "storage": OWN_LOG_STORAGE},
    ],
    ids=["disabled", "local", "own storage"],
)
def test_runs_reach_the_catalogs_builtin_s3_and_postgresql_wherever_compute_logs_go(
    logs: Json, tmp_path: Path
) -> None:
    """The catalog's data files are on LocalStack by default, whatever compute logs use; the runs write
    them, so they reach LocalStack (and LocalStack takes them), and the catalog's metadata database."""
    release = _with_platform({**PROFILES, **logs}, tmp_path)
    policies = release.of_kind("NetworkPolicy")
    pods = _pods(release)
    assert _allowed(policies, pods, "runs", "localstack")
    assert _allowed(policies, pods, "runs", "postgresql")
    # Compute logs are not on LocalStack here, so the catalog opened it to the runs only.
    assert not _allowed(policies, pods, "daemon", "localstack")


def _catalog_example_of_the_docs() -> Json:
    """The values example of docs/catalog.md ("Pointing at your own S3 and PostgreSQL")."""
    text = (ROOT / "docs" / "catalog.md").read_text()
    section = text.split("Pointing at your own S3 and PostgreSQL:", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    platform: Json = yaml.safe_load(block)["platform"]
    return platform


def test_runs_reach_an_external_catalog_database_and_s3_as_docs_catalog_md_shows_them(tmp_path: Path) -> None:
    """The docs' example: the catalog's PostgreSQL (5432) and S3 (443) are outside the cluster, reached on
    externalCidrs; compute logs stay on LocalStack, so the runs keep that flow too."""
    platform = {**PROFILES, **_catalog_example_of_the_docs()}
    release = _with_platform(platform, tmp_path, sets=["networkPolicy.externalCidrs[0]=10.30.0.0/16"])
    assert release.of_kind("FloePlatform")[0]["spec"]["catalog"]["database"]["host"] == (
        "catalog-db.example.internal"
    )
    external = [p for p in _egress_peers(release, "runs") if "ipBlock" in p]
    assert {p["ipBlock"]["cidr"] for p in external} == {"10.30.0.0/16"}
    assert {entry["port"] for p in external for entry in p["ports"]} == {443, 5432}
    assert _allowed(release.of_kind("NetworkPolicy"), _pods(release), "runs", "localstack")


def test_a_catalog_on_aws_s3_without_localstack_is_reached_on_443(tmp_path: Path) -> None:
    """storage_ref default with no LocalStack and no storage named default: AWS S3 with the pod's identity."""
    platform = {**PROFILES, "observability": {"compute_logs": {"enabled": False}}}
    release = _with_platform(platform, tmp_path, sets=["localstack.enabled=false"])
    external = [p for p in _egress_peers(release, "runs") if "ipBlock" in p]
    assert {entry["port"] for p in external for entry in p["ports"]} == {443}
    assert not release.has("NetworkPolicy", "localstack-net")


def test_a_disabled_catalog_opens_no_flow(tmp_path: Path) -> None:
    platform = {
        **PROFILES,
        "observability": {"compute_logs": {"enabled": False}},
        "catalog": {"enabled": False},
    }
    release = _with_platform(platform, tmp_path)
    assert not _allowed(release.of_kind("NetworkPolicy"), _pods(release), "runs", "localstack")
    assert not [p for p in _egress_peers(release, "runs") if "ipBlock" in p]


def test_no_network_policy_unless_enabled(default_release: Rendered) -> None:
    assert not default_release.of_kind("NetworkPolicy")


# Metadata ------------------------------------------------------------------------------------------------


def test_common_labels_and_annotations_reach_every_object_and_pod() -> None:
    release = render(sets=["commonLabels.team=data", "commonAnnotations.owner=platform-team"])
    # crds/ is installed verbatim by Helm, never templated: the CRD is the one object without them.
    objects = [doc for doc in release.docs if doc["kind"] != "CustomResourceDefinition"]
    assert len(objects) == len(release.docs) - 1
    for doc in objects:
        assert doc["metadata"]["labels"]["team"] == "data", doc["metadata"]["name"]
        assert doc["metadata"]["annotations"]["owner"] == "platform-team", doc["metadata"]["name"]
    for doc, _ in release.workloads():
        if doc["kind"] != "Pod":
            assert _pod_labels(doc)["team"] == "data"
    # Hooks keep their own annotations beside the common ones.
    assert release.named("Job", "migrate")["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        (
            "commonLabels.app\\.kubernetes\\.io/name=x",
            "commonLabels.app.kubernetes.io/name: app.kubernetes.io/*",
        ),
        (
            "commonAnnotations.helm\\.sh/hook=test",
            "commonAnnotations.helm.sh/hook: helm.sh/* annotations steer Helm",
        ),
    ],
    ids=["label", "annotation"],
)
def test_the_charts_own_metadata_keys_are_refused(assignment: str, message: str) -> None:
    with pytest.raises(HelmError) as refused:
        render(sets=[assignment])
    assert message in str(refused.value)


@pytest.mark.parametrize(
    "component", ["webserver", "daemon", "userCode", "postgresql", "localstack", "operator"]
)
def test_pod_labels_and_priority_class_reach_only_their_components_pods(component: str) -> None:
    release = render(sets=[f"{component}.podLabels.tier=gold", f"{component}.priorityClassName=floe-high"])
    label = {"userCode": "user-code"}.get(component, component)
    # The pre-upgrade migrate hook is scheduled as the daemon is (same image, priority class and placement).
    scheduled_alike = {label, "migrate"} if component == "daemon" else {label}
    marked = [
        doc["metadata"]["name"]
        for doc, pod in release.workloads()
        if doc["kind"] != "Pod"
        and _pod_labels(doc).get("tier") == "gold"
        and pod.get("priorityClassName") == "floe-high"
    ]
    others = [
        doc["metadata"]["name"]
        for doc, pod in release.workloads()
        if doc["kind"] != "Pod"
        and _component(doc) not in scheduled_alike
        and ("tier" in _pod_labels(doc) or "priorityClassName" in pod)
    ]
    assert len(marked) == 1, marked
    assert marked[0].endswith(label), marked
    assert others == []


def test_a_locations_own_limits_reach_the_namespace_limits() -> None:
    """The LimitRange maximum must not lock out a code location larger than userCode's defaults."""
    release = render(
        [CI_DIR / "three-profiles-values.yaml"],
        sets=[
            "userCode.locations[0].name=big",
            "userCode.locations[0].module=acme.definitions",
            "userCode.locations[0].resources.limits.memory=16Gi",
        ],
    )
    spec = release.of_kind("FloePlatform")[0]["spec"]
    limits = spec["infrastructure"]["namespace_limits"]["service_container_limits"]
    assert {"memory": "16Gi"} in limits

"""The rendered chart, over the ci/ matrix: valid Kubernetes objects that keep the chart's invariants.

Runs the real helm v4 binary (`helm lint --strict`, `helm template`) and checks its output against
Kubernetes 1.37's own OpenAPI schemas with kubernetes-validate --strict, and FloePlatform objects
against the CRD's schema with jsonschema. No API server runs: admission (Pod Security, quotas) is
checked as the invariants below, not enforced.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chart_render import (
    CHART,
    CI_DIR,
    CI_NAMES,
    HelmError,
    Rendered,
    containers,
    env_of,
    release_name,
    render,
    run_helm,
)

from testkit.helm import WITHOUT_CLUSTER

KUBERNETES_VERSION = "1.37.0"
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
)
# LocalStack's image starts as root (documented in values.yaml): it meets Pod Security "baseline".
ROOT_EXCEPTIONS = {"localstack"}
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
CRD_FILE = CHART / "crds" / "floeplatforms.floe.dev.yaml"


def _crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _component(doc: dict[str, Any]) -> str:
    component: str = doc["metadata"]["labels"]["app.kubernetes.io/component"]
    return component


@pytest.mark.parametrize("case", CI_NAMES)
def test_helm_lint_strict_passes(case: str) -> None:
    """`helm lint --strict` (real helm v4) with each ci/ values file."""
    result = run_helm(
        ["lint", "--strict", str(CHART), "--values", str(CI_DIR / f"{case}-values.yaml"), *WITHOUT_CLUSTER]
    )
    assert result.returncode == 0, result.stdout + result.stderr


# The ci/ files issue 15 asks for, each with what its render must show.
REQUIRED_CASES = {
    "gitops": "the database password from an existing Secret, rendered with the GitOps guard on",
    "several-locations": "a Deployment and Service per code location, all in the workspace",
    "ingress-read-only": "an Ingress and the read-only webserver",
    "network-policy": "NetworkPolicies",
    "long-release-name": "a 53-character release name",
}


def test_ci_matrix_covers_the_required_cases() -> None:
    """The ci/ directory holds the matrix the chart is tested over (a missing file would shrink it)."""
    assert {
        "default",
        "external-postgres",
        "compute-logs-off",
        "cluster-wide",
        "three-profiles",
        "instance-settings",
        *REQUIRED_CASES,
    } <= set(CI_NAMES)


def test_each_required_ci_case_renders_what_it_is_for(rendered_matrix: dict[str, Rendered]) -> None:
    """Each of the five required ci/ files renders (real helm v4) and shows what it exists for."""
    gitops = CI_DIR / "gitops-values.yaml"
    guarded = render([gitops], release=release_name(gitops), gitops_guard=True)
    statefulset = guarded.named("StatefulSet", "postgresql")["spec"]["template"]["spec"]
    password = env_of(statefulset["containers"][0])["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password["name"] == guarded.values["postgresql"]["auth"]["existingSecret"]
    assert not guarded.has("Secret", "postgresql")

    several = rendered_matrix["several-locations"]
    names = [location["name"] for location in several.values["userCode"]["locations"]]
    assert _workspace_locations(several) == names
    for name in names:
        assert several.has("Deployment", f"code-{name}")
        assert several.has("Service", f"code-{name}")

    ingress = rendered_matrix["ingress-read-only"]
    assert ingress.has("Ingress", "webserver")
    assert ingress.has("Deployment", "webserver-read-only")

    assert rendered_matrix["network-policy"].of_kind("NetworkPolicy")

    long_name = rendered_matrix["long-release-name"]
    assert len(long_name.release) == 53
    assert long_name.of_kind("StatefulSet")


def test_every_object_validates_against_kubernetes_schemas(release: Rendered) -> None:
    """Each object helm v4 renders is valid for Kubernetes 1.37 (kubernetes-validate --strict)."""
    for doc in release.docs:
        if doc["kind"] == "FloePlatform":
            continue  # a custom resource: checked against the CRD below
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_strict_validation_refuses_an_unknown_field(default_release: Rendered) -> None:
    """Guard: kubernetes-validate --strict does fail on a typo, so the test above can fail."""
    deployment = copy.deepcopy(default_release.named("Deployment", "webserver"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def _without_catalog_defaults(spec: dict[str, Any], platform: dict[str, Any]) -> dict[str, Any]:
    """The spec less what the chart fills in for the shared catalog (tests/chart/test_chart_catalog.py)."""
    given_catalog = platform.get("catalog", {})
    catalog = spec.get("catalog", {})
    if "database" not in given_catalog:
        catalog.pop("database", None)
    if not catalog and "catalog" not in platform:
        spec.pop("catalog", None)
    storage = spec.get("storage", {})
    if "default" not in platform.get("storage", {}):
        storage.pop("default", None)
    if not storage and "storage" not in platform:
        spec.pop("storage", None)
    return spec


def test_floeplatform_objects_validate_against_the_crd(release: Rendered) -> None:
    """A FloePlatform rendered from `platform:` fits the CRD's openAPIV3Schema (jsonschema; the CRD's
    CEL rules need an API server and are not evaluated here)."""
    schema = _crd_schema()
    for doc in release.of_kind("FloePlatform"):
        jsonschema.validate(doc, schema)
        spec = copy.deepcopy(doc["spec"])
        spec["infrastructure"].pop(
            "namespace_limits", None
        )  # from namespaceLimits: test_chart_namespace_limits
        assert _without_catalog_defaults(spec, release.values["platform"]) == release.values["platform"], (
            "the spec is platform.yaml content, verbatim"
        )


def test_floeplatform_is_rendered_only_from_the_platform_value(release: Rendered) -> None:
    expected = 1 if release.values.get("platform") else 0
    assert len(release.of_kind("FloePlatform")) == expected


def test_every_object_has_the_standard_labels(release: Rendered) -> None:
    for doc in release.docs:
        if doc["kind"] == "CustomResourceDefinition":
            continue  # generated by the operator's models, outside templates/
        labels = doc["metadata"].get("labels", {})
        missing = [label for label in STANDARD_LABELS if label not in labels]
        assert not missing, f"{doc['kind']} {doc['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == release.release


def test_every_image_is_pinned(release: Rendered) -> None:
    for doc, pod in release.workloads():
        for container in containers(pod):
            image = container["image"]
            repository, _, tag = image.rpartition(":")
            assert repository, f"{doc['metadata']['name']}: {image} has no tag"
            assert "/" not in tag, f"{doc['metadata']['name']}: {image} has no tag"
            assert tag not in ("", "latest"), f"{doc['metadata']['name']}: {image} is not pinned"


def test_dagster_images_default_to_the_chart_app_version(default_release: Rendered) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for _, pod in default_release.workloads():
        for container in containers(pod):
            if "floe-platform/" in container["image"]:
                assert container["image"].endswith(f":{app_version}")


def test_third_party_images_keep_their_own_pinned_tags(default_release: Rendered) -> None:
    """postgres and LocalStack run the tags values.yaml pins, never the chart's appVersion."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    images = {container["image"] for _, pod in default_release.workloads() for container in containers(pod)}
    for key in ("postgresql", "localstack"):
        image = values[key]["image"]
        assert image["tag"]
        assert image["tag"] != app_version
        assert f"{image['repository']}:{image['tag']}" in images


@pytest.mark.parametrize("key", ["postgresql", "localstack"])
def test_an_empty_third_party_tag_is_refused_even_past_the_schema(key: str) -> None:
    """The template refuses too (helm v4 with --skip-schema-validation): an empty tag never becomes
    `postgres:<chart version>`."""
    result = run_helm(
        [
            "template",
            "floe",
            str(CHART),
            "--skip-schema-validation",
            "--set",
            f"{key}.image.tag=",
            *WITHOUT_CLUSTER,
        ]
    )
    assert result.returncode != 0
    assert f"{key}.image.tag is required" in result.stderr


def test_every_container_requests_resources_and_limits_memory(release: Rendered) -> None:
    for doc, pod in release.workloads():
        for container in containers(pod):
            resources = container.get("resources", {})
            where = f"{doc['kind']} {doc['metadata']['name']} container {container['name']}"
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), f"{where}: requests"
            assert "memory" in resources.get("limits", {}), f"{where}: memory limit"


def _security_problems(component: str, pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """What keeps this container from Pod Security "restricted" (LocalStack: from "baseline")."""
    pod_context, context = pod.get("securityContext", {}), container.get("securityContext", {})
    problems = []
    seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        problems.append("seccompProfile RuntimeDefault")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation false")
    capabilities = context.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []):
        problems.append("capabilities drop ALL")
    if component in ROOT_EXCEPTIONS:
        if set(capabilities.get("add", [])) - BASELINE_CAPABILITIES:
            problems.append("only baseline capabilities added")
        return problems
    if capabilities.get("add"):
        problems.append("no capabilities added")
    if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
        problems.append("runAsNonRoot")
    if context.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem")
    return problems


def test_every_container_meets_the_restricted_security_profile(release: Rendered) -> None:
    for doc, pod in release.workloads():
        for container in containers(pod):
            problems = _security_problems(_component(doc), pod, container)
            assert not problems, f"{doc['metadata']['name']}/{container['name']} needs {problems}"


def test_security_check_catches_a_missing_field(default_release: Rendered) -> None:
    """Guard: removing one field makes the security check report it."""
    deployment = copy.deepcopy(default_release.named("Deployment", "webserver"))
    pod = deployment["spec"]["template"]["spec"]
    del pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"]
    assert _security_problems("webserver", pod, pod["containers"][0]) == ["readOnlyRootFilesystem"]


def test_long_running_containers_have_probes(release: Rendered) -> None:
    """Liveness for all; readiness for every container that serves a port (the operator's /healthz too,
    which kopf serves only after its startup handlers ran); a startup probe for the Dagster services, the
    database and the operator, so a slow first start is not killed by the liveness probe."""
    for doc in [*release.of_kind("Deployment"), *release.of_kind("StatefulSet")]:
        for container in doc["spec"]["template"]["spec"]["containers"]:
            name = doc["metadata"]["name"]
            assert "livenessProbe" in container, f"{name}: liveness probe"
            if container.get("ports"):
                assert "readinessProbe" in container, f"{name}: readiness probe"
            if _component(doc) != "localstack":
                startup = container["startupProbe"]
                assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, name


DAGSTER_SERVICES = {"webserver", "webserver-read-only", "daemon", "user-code"}


def test_every_service_that_needs_the_database_waits_for_it_and_has_a_startup_probe(
    release: Rendered,
) -> None:
    """Each long-running pod whose containers read the database password (found from the pods, not listed:
    the webserver and its read-only twin, the daemon, every code server) first waits for PostgreSQL in its
    init container, at the address dagster.yaml names and with the same Secret, and each of its containers
    has a startup probe. The pre-upgrade migrate Job runs while the database already does."""
    postgres = release.dagster_yaml()["run_storage"]["config"]["postgres_db"]
    needing = []
    for doc in release.of_kind("Deployment"):
        pod = doc["spec"]["template"]["spec"]
        passwords = [
            env_of(c)["DAGSTER_PG_PASSWORD"] for c in pod["containers"] if "DAGSTER_PG_PASSWORD" in env_of(c)
        ]
        if not passwords:
            assert _component(doc) not in DAGSTER_SERVICES, doc["metadata"]["name"]
            continue
        needing.append(doc)
        name = doc["metadata"]["name"]
        (wait,) = pod.get("initContainers", [])
        assert wait["name"] == "wait-for-postgres", name
        wait_env = env_of(wait)
        assert wait_env["PGHOST"]["value"] == postgres["hostname"], name
        assert wait_env["PGPORT"]["value"] == str(postgres["port"]), name
        assert wait_env["PGUSER"]["value"] == postgres["username"], name
        assert wait_env["DAGSTER_PG_PASSWORD"]["valueFrom"] == passwords[0]["valueFrom"], name
        for container in pod["containers"]:
            assert "startupProbe" in container, f"{name}/{container['name']}"
    components = [_component(doc) for doc in needing]
    assert {"webserver", "daemon", "user-code"} <= set(components)
    workspace = yaml.safe_load(release.named("ConfigMap", "workspace")["data"]["workspace.yaml"])
    assert components.count("user-code") == len(workspace["load_from"])
    if release.values.get("webserver", {}).get("readOnly", {}).get("enabled"):
        assert "webserver-read-only" in components


def test_the_operator_is_ready_only_once_it_serves_healthz(release: Rendered) -> None:
    """kopf serves /healthz after its startup handlers ran: readiness and startup probes both ask it."""
    for doc in release.of_kind("Deployment"):
        if _component(doc) == "operator":
            (operator,) = doc["spec"]["template"]["spec"]["containers"]
            for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
                assert operator[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
            assert {"name": "health", "containerPort": 8080} in [
                {key: port[key] for key in ("name", "containerPort")} for port in operator["ports"]
            ]


def test_daemon_liveness_check_has_a_real_timeout(default_release: Rendered) -> None:
    """The 1 s default crash-looped floe-runtime's daemon; the check reads Postgres heartbeats."""
    daemon = default_release.named("Deployment", "daemon")["spec"]["template"]["spec"]["containers"][0]
    probe = daemon["livenessProbe"]
    assert probe["exec"]["command"] == ["dagster-daemon", "liveness-check"]
    assert probe["timeoutSeconds"] >= 10


def test_dagster_services_run_the_contract_commands(default_release: Rendered) -> None:
    def command(suffix: str) -> list[str]:
        spec = default_release.named("Deployment", suffix)["spec"]["template"]["spec"]
        result: list[str] = spec["containers"][0]["command"]
        return result

    workspace = "/opt/dagster/workspace/workspace.yaml"
    assert command("webserver") == ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", workspace]
    assert command("daemon") == ["dagster-daemon", "run", "-w", workspace]
    assert command("user-code") == [
        "dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "3030", "-m", "floe_demo.definitions",
    ]  # fmt: skip


def test_probes_target_server_info_and_grpc_health(default_release: Rendered) -> None:
    webserver = default_release.named("Deployment", "webserver")["spec"]["template"]["spec"]["containers"][0]
    assert webserver["readinessProbe"]["httpGet"]["path"] == "/server_info"
    assert webserver["livenessProbe"]["httpGet"]["path"] == "/server_info"
    code = default_release.named("Deployment", "user-code")["spec"]["template"]["spec"]["containers"][0]
    assert code["livenessProbe"]["grpc"] == {"port": 3030, "service": "DagsterApi"}


def test_workspace_points_at_the_code_server_service(default_release: Rendered) -> None:
    workspace = yaml.safe_load(default_release.named("ConfigMap", "workspace")["data"]["workspace.yaml"])
    server = workspace["load_from"][0]["grpc_server"]
    service = default_release.named("Service", "user-code")
    assert server["host"] == service["metadata"]["name"]
    assert server["port"] == service["spec"]["ports"][0]["port"] == 3030


def test_no_credential_is_written_into_a_configmap(release: Rendered) -> None:
    """Secrets' values never appear in ConfigMaps, and dagster.yaml reads the password from env."""
    secret_values = [value for secret in release.of_kind("Secret") for value in secret["data"].values()]
    for configmap in release.of_kind("ConfigMap"):
        text = yaml.safe_dump(configmap["data"])
        assert not [value for value in secret_values if value in text]
        assert "AWS_SECRET_ACCESS_KEY=" not in text
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        db = release.dagster_yaml()[storage]["config"]["postgres_db"]
        assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}


def test_dagster_containers_take_the_postgres_password_from_its_secret(release: Rendered) -> None:
    dagster_components = ("webserver", "webserver-read-only", "daemon", "user-code")
    deployments = [
        doc
        for doc in release.of_kind("Deployment")
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] in dagster_components
    ]
    assert len(deployments) >= 3
    for deployment in deployments:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        reference = env_of(container)["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert reference["key"] == "postgresql-password"
        expected = (
            release.values.get("externalPostgresql", {}).get("existingSecret")
            or release.values.get("postgresql", {}).get("auth", {}).get("existingSecret")
            or release.named("Secret", "postgresql")["metadata"]["name"]
        )
        assert reference["name"] == expected


def test_external_postgres_replaces_the_built_in_database(rendered_matrix: dict[str, Rendered]) -> None:
    release = rendered_matrix["external-postgres"]
    assert not release.of_kind("StatefulSet")
    assert not release.has("Secret", "postgresql")
    db = release.dagster_yaml()["run_storage"]["config"]["postgres_db"]
    assert (db["hostname"], db["port"], db["db_name"], db["params"]) == (
        "db.example.internal", 6432, "floe_dagster", {"sslmode": "require"},
    )  # fmt: skip


def test_helm_test_pod_checks_webserver_and_bucket(default_release: Rendered) -> None:
    test_pod = default_release.named("Pod", "test")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    env = env_of(test_pod["spec"]["containers"][0])
    assert env["WEBSERVER_URL"]["value"] == "http://floe-floe-platform-webserver:3000"
    assert env["BUCKET"]["value"] == "dagster-compute-logs"
    scripts = default_release.named("ConfigMap", "scripts")["data"]
    assert scripts["smoke-test.py"] == (CHART / "files" / "smoke-test.py").read_text()


def _workspace_locations(rendered: Rendered) -> list[str]:
    workspace = yaml.safe_load(rendered.named("ConfigMap", "workspace")["data"]["workspace.yaml"])
    return [entry["grpc_server"]["location_name"] for entry in workspace["load_from"]]


def test_helm_test_runs_its_job_in_a_location_of_the_workspace(release: Rendered) -> None:
    """The test pod launches its job in a code location the webserver knows: with several locations the
    first of them, never userCode.locationName (not in that workspace, so the launch would fail)."""
    env = env_of(release.named("Pod", "test")["spec"]["containers"][0])
    locations = _workspace_locations(release)
    assert env["LOCATION"]["value"] == locations[0], locations
    dagster = release.values.get("dagster", {})
    poll = dagster.get("runMonitoring", {}).get("pollIntervalSeconds", 120)
    assert env["RUN_SECONDS"]["value"] == str(poll + 15)


def test_helm_test_takes_the_named_location_and_refuses_one_not_in_the_workspace() -> None:
    several = CI_DIR / "several-locations-values.yaml"
    chosen = render([several], sets=["tests.run.location=ml"])
    assert env_of(chosen.named("Pod", "test")["spec"]["containers"][0])["LOCATION"]["value"] == "ml"
    with pytest.raises(HelmError) as refused:
        render([several], sets=["tests.run.location=floe-demo"])
    first_line = str(refused.value).splitlines()[0]
    assert 'tests.run.location: "floe-demo" is not a code location of the workspace (sales, ml, finance)' in (
        first_line
    )
    # Without a run, the location does not matter.
    render([several], sets=["tests.run.location=floe-demo", "tests.run.job="])


# The project's images default to the appVersion; a user who pins them keeps them through a chart bump.
PINNED_IMAGES = [f"{key}.image.tag=0.1.0" for key in ("webserver", "daemon", "userCode", "operator")]
POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "Job")


def _pod_templates(case: str, chart: Path) -> dict[tuple[str, str], Any]:
    values = CI_DIR / f"{case}-values.yaml"
    args = ["template", release_name(values), str(chart), "--namespace", "floe", "--values", str(values)]
    pins = [arg for pin in PINNED_IMAGES for arg in ("--set", pin)]
    result = run_helm([*args, *pins, *WITHOUT_CLUSTER])
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    versions = {doc["metadata"]["labels"]["helm.sh/chart"] for doc in docs if doc["kind"] == "ConfigMap"}
    assert versions == {f"floe-platform-{yaml.safe_load((chart / 'Chart.yaml').read_text())['version']}"}
    return {
        (doc["kind"], doc["metadata"]["name"]): doc["spec"]["template"]
        for doc in docs
        if doc["kind"] in POD_TEMPLATE_KINDS
    }


@pytest.mark.parametrize("case", CI_NAMES)
def test_a_chart_and_app_version_bump_leaves_every_pod_template_unchanged(case: str, tmp_path: Path) -> None:
    """A chart bump alone restarts no pod: the chart copied with a new version and appVersion (the images
    pinned, so nothing else changes) renders every Deployment's, StatefulSet's and Job's pod template as
    before. helm.sh/chart and app.kubernetes.io/version stay on the objects, and no checksum annotation
    hashes them in."""
    bumped = tmp_path / "floe-platform"
    shutil.copytree(CHART, bumped)
    chart_yaml = yaml.safe_load((bumped / "Chart.yaml").read_text())
    chart_yaml.update(version="0.2.0", appVersion="0.2.0")
    (bumped / "Chart.yaml").write_text(yaml.safe_dump(chart_yaml))
    before, after = _pod_templates(case, CHART), _pod_templates(case, bumped)
    assert any(kind == "Deployment" for kind, _name in before)
    assert before.keys() == after.keys()
    changed = [
        f"{kind}/{name}" for (kind, name), template in before.items() if after[(kind, name)] != template
    ]
    assert changed == []
    for template in before.values():
        labels = template["metadata"]["labels"]
        assert "helm.sh/chart" not in labels
        assert "app.kubernetes.io/version" not in labels


def test_a_changed_configuration_restarts_the_pods_that_read_it(default_release: Rendered) -> None:
    """The checksum annotations hash the ConfigMaps' data: a new dagster.yaml setting or a new code location
    changes the pod templates of the webserver and daemon (and the code server's for dagster.yaml)."""

    def annotations(rendered: Rendered) -> dict[str, dict[str, str]]:
        return {
            doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["annotations"]
            for doc in rendered.of_kind("Deployment")
            if _component(doc) in ("webserver", "daemon", "user-code")
        }

    before = annotations(default_release)
    polled = annotations(render(sets=["dagster.runMonitoring.pollIntervalSeconds=60"]))
    assert set(before) == set(polled)
    assert len(before) == 3
    for name, old in before.items():
        assert polled[name]["checksum/instance"] != old["checksum/instance"], name
    relocated = annotations(render(sets=["userCode.locationName=renamed"]))
    for name, old in before.items():
        if "checksum/workspace" in old:
            assert relocated[name]["checksum/workspace"] != old["checksum/workspace"], name
            assert relocated[name]["checksum/instance"] == old["checksum/instance"], name


def test_notes_name_the_next_commands() -> None:
    """NOTES.txt as `helm install --dry-run=client` (real helm v4, no cluster) prints it."""
    result = run_helm(
        ["install", "floe", str(CHART), "--namespace", "floe", "--dry-run=client", *WITHOUT_CLUSTER]
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    for command in (
        "kubectl -n floe port-forward svc/floe-floe-platform-webserver 3000:3000",
        "floe cr platform.yaml --name floe -n floe | kubectl apply -f -",
        "kubectl -n floe get fp",
        "helm test floe -n floe",
    ):
        assert command in notes


def test_every_service_selects_pods_with_the_named_port(release: Rendered) -> None:
    """A Service whose selector or targetPort matches no pod would render fine and route nowhere."""
    pods = [
        (doc["spec"]["template"]["metadata"]["labels"], containers(doc["spec"]["template"]["spec"]))
        for doc in [*release.of_kind("Deployment"), *release.of_kind("StatefulSet")]
    ]
    for service in release.of_kind("Service"):
        selector = service["spec"]["selector"]
        matching = [pod for pod in pods if selector.items() <= pod[0].items()]
        assert len(matching) == 1, f"Service {service['metadata']['name']} selects {len(matching)} workloads"
        port_names = {port["name"] for container in matching[0][1] for port in container.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{service['metadata']['name']}: {port['targetPort']}"


def test_pull_secrets_and_placement_reach_every_pod() -> None:
    """imagePullSecrets go to every pod; a component's nodeSelector, tolerations and affinity to its own."""
    toleration = {"key": "dedicated", "operator": "Equal", "value": "dagster", "effect": "NoSchedule"}
    release = render(
        sets=[
            "imagePullSecrets[0].name=registry",
            "daemon.nodeSelector.disk=ssd",
            "daemon.tolerations[0].key=dedicated",
            "daemon.tolerations[0].operator=Equal",
            "daemon.tolerations[0].value=dagster",
            "daemon.tolerations[0].effect=NoSchedule",
        ]
    )
    for doc, pod in release.workloads():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert pod["imagePullSecrets"] == [{"name": "registry"}], doc["metadata"]["name"]
    daemon = release.named("Deployment", "daemon")["spec"]["template"]["spec"]
    assert (daemon["nodeSelector"], daemon["tolerations"]) == ({"disk": "ssd"}, [toleration])
    assert "nodeSelector" not in release.named("Deployment", "webserver")["spec"]["template"]["spec"]

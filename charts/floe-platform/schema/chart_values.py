"""The Helm chart's values as pydantic models, which generate ``charts/floe-platform/values.schema.json``.

Development only, like dagster's ``helm/dagster/schema``: ``python -m floe_platform.codegen``
(``make schemas``) loads this file; neither the chart package nor the wheel carries it.

Every model forbids unknown keys, so the generated schema has ``additionalProperties: false`` at every level
and a typo in a values file fails at ``helm install``. Fields that pass Kubernetes objects through verbatim
(security contexts, affinity, tolerations, extra env) are left open here: the rendered manifests are checked
against Kubernetes' own schemas instead. The ``platform`` key takes its schema from
``floe_platform.codegen.platform_schema.platform_json_schema()``, so platform.yaml has a single source of
truth.

Pure: imports no Kubernetes client and no Dagster.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticUndefined

from floe_platform.codegen.platform_schema import platform_json_schema
from floe_platform.config.models import (
    DNS_LABEL,
    DNS_LABEL_MAX,
    LABEL_KEY,
    LABEL_KEY_MAX,
    LABEL_VALUE,
    LABEL_VALUE_MAX,
    LIBPQ_CREDENTIALS,
    LIBPQ_KEYWORD,
    LIBPQ_KEYWORD_MAX,
    LIBPQ_OWN_FIELDS,
    QUANTITY_JSON_SCHEMA,
    CatalogDatabase,
    LibpqKeyword,
    LibpqValue,
    Quantity,
    S3BucketName,
    keys_matching,
)


def _libpq_params() -> dict[str, Any]:
    """externalPostgresql.params as the catalog's database takes them (the chart copies them there): libpq's
    keyword grammar, neither a credential nor a keyword the chart sets from a field of its own, and an
    sslmode the catalog's own sslmode field accepts."""
    names = keys_matching(LIBPQ_KEYWORD, LIBPQ_KEYWORD_MAX)["propertyNames"]
    reserved = sorted({*LIBPQ_OWN_FIELDS, *LIBPQ_CREDENTIALS} - {"sslmode"})
    sslmode = CatalogDatabase.model_fields["sslmode"].annotation
    modes = [mode for arm in typing.get_args(sslmode) for mode in typing.get_args(arm)]
    return {
        "propertyNames": {**names, "not": {"enum": reserved}},
        "properties": {"sslmode": {"type": "string", "enum": modes}},
    }


CHART_SCHEMA_ID = "https://floe.dev/schemas/chart-values.schema.json"
NAME = DNS_LABEL.pattern
# Kubernetes' DNS-1123 subdomain (Secret, ServiceAccount and StorageClass names), at most 253 characters.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_SUBDOMAIN_MAX = 253
# No lookahead: Helm validates with Go's RE2 regular expressions.
_TAG = r"^[\w][\w.-]{0,127}$"
ImageTag = Annotated[str, Field(pattern=f"^$|{_TAG}", json_schema_extra={"not": {"const": "latest"}})]
PinnedImageTag = Annotated[str, Field(pattern=_TAG, json_schema_extra={"not": {"const": "latest"}})]
# The chart's quantities follow platform.yaml's grammar (config/quantity.py): one definition, one schema.
KubeQuantity = Quantity
OptionalQuantity = Annotated[Quantity | None, WithJsonSchema(QUANTITY_JSON_SCHEMA)]
KubeObject = dict[str, Any]
# Empty, or a name Kubernetes accepts; the models' own patterns, with "" meaning "derive it".
NameOrEmpty = Annotated[str, Field(pattern=f"^$|{DNS_LABEL.pattern}", max_length=DNS_LABEL_MAX)]
SubdomainOrEmpty = Annotated[str, Field(pattern=f"^$|{DNS_SUBDOMAIN}", max_length=DNS_SUBDOMAIN_MAX)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE.pattern, max_length=LABEL_VALUE_MAX)]


class ValuesModel(BaseModel):
    """camelCase keys as Helm charts spell them; unknown keys refused."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, use_attribute_docstrings=True
    )


class Image(ValuesModel):
    """An image of this project (operator, user code): its tag defaults to the chart's appVersion."""

    repository: str
    """Image name with its registry, e.g. floe-platform/operator."""
    tag: ImageTag = ""
    """Empty means the chart's appVersion. `latest` is refused: every image is pinned."""
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """Kubernetes imagePullPolicy."""


class ThirdPartyImage(Image):
    """An image from another project (postgres, LocalStack): the chart's version means nothing to it, so its
    tag is pinned in values.yaml and an empty one is refused."""

    tag: PinnedImageTag
    """Pinned tag; neither empty nor `latest`."""


class ResourceAmounts(ValuesModel):
    cpu: OptionalQuantity = None
    memory: OptionalQuantity = None
    ephemeral_storage: OptionalQuantity = Field(default=None, alias="ephemeral-storage")


class ContainerResources(ValuesModel):
    """Requests and limits of a container; a memory limit is always expected."""

    requests: ResourceAmounts = ResourceAmounts()
    limits: ResourceAmounts = ResourceAmounts()


class ServiceAccount(ValuesModel):
    create: bool = True
    name: SubdomainOrEmpty = ""
    """Empty means a name derived from the release."""
    annotations: dict[str, str] = Field(
        default_factory=dict, json_schema_extra=keys_matching(LABEL_KEY, LABEL_KEY_MAX)
    )
    """E.g. eks.amazonaws.com/role-arn for IRSA."""


class Service(ValuesModel):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    """Kubernetes Service type."""
    port: int = Field(ge=1, le=65535)
    """Port of the Service."""
    annotations: dict[str, str] = Field(
        default_factory=dict, json_schema_extra=keys_matching(LABEL_KEY, LABEL_KEY_MAX)
    )
    """Annotations of the Service, e.g. for a cloud load balancer."""


class Component(ValuesModel):
    """The shape every component's values share, so learning one teaches all."""

    image: Image
    """Image of the container; an empty tag means the chart's appVersion."""
    resources: ContainerResources
    """Requests and limits; every container sets CPU and memory requests and a memory limit."""
    pod_security_context: KubeObject = Field(default_factory=dict)
    """Pod-level securityContext, passed through verbatim."""
    security_context: KubeObject = Field(default_factory=dict)
    """Container-level securityContext, passed through verbatim."""
    node_selector: dict[str, LabelValue] = Field(
        default_factory=dict, json_schema_extra=keys_matching(LABEL_KEY, LABEL_KEY_MAX)
    )
    """nodeSelector of the pods."""
    tolerations: list[KubeObject] = Field(default_factory=list)
    """Tolerations of the pods, passed through verbatim."""
    affinity: KubeObject = Field(default_factory=dict)
    """Affinity of the pods, passed through verbatim."""
    extra_env: list[KubeObject] = Field(default_factory=list)
    """Extra container env entries (name/value or name/valueFrom)."""
    pod_annotations: dict[str, str] = Field(
        default_factory=dict, json_schema_extra=keys_matching(LABEL_KEY, LABEL_KEY_MAX)
    )
    """Extra annotations of the pods."""
    pod_labels: dict[str, LabelValue] = Field(
        default_factory=dict, json_schema_extra=keys_matching(LABEL_KEY, LABEL_KEY_MAX)
    )
    """Extra labels of the pods (never the chart's own app.kubernetes.io/* selector labels)."""
    priority_class_name: SubdomainOrEmpty = ""
    """PriorityClass of the pods; empty means the cluster default."""


class Probe(ValuesModel):
    initial_delay_seconds: int = Field(default=10, ge=0)
    period_seconds: int = Field(default=20, ge=1)
    timeout_seconds: int = Field(default=10, ge=1)
    failure_threshold: int = Field(default=3, ge=1)


class ReadOnlyWebserver(ValuesModel):
    """A second webserver Deployment and Service started with --read-only: it shows runs and assets but
    cannot launch, cancel or change anything, for people who should only look."""

    enabled: bool = False
    """Render the read-only webserver's Deployment and Service."""
    replicas: int = Field(default=1, ge=0)
    """Pods of the read-only webserver (same image, resources and settings as the webserver)."""


class IngressHost(ValuesModel):
    host: Annotated[str, Field(pattern=DNS_SUBDOMAIN.replace("^[a-z0-9]", "^([*][.])?[a-z0-9]", 1))]
    """Host name, e.g. dagster.example.com (a leading `*.` for a wildcard)."""
    path: Annotated[str, Field(pattern=r"^$|^/")] = ""
    """Empty means webserver.pathPrefix, else /."""
    path_type: Literal["Prefix", "Exact", "ImplementationSpecific"] = "Prefix"
    """Kubernetes pathType of the path."""
    read_only: bool = False
    """Route this host to the read-only webserver (needs webserver.readOnly.enabled)."""


class IngressTls(ValuesModel):
    secret_name: SubdomainOrEmpty = ""
    """The TLS Secret; empty lets the Ingress controller use its default certificate."""
    hosts: list[str] = Field(default_factory=list)
    """Hosts the certificate covers."""


class Ingress(ValuesModel):
    """An Ingress in front of the webserver (and, per host, the read-only webserver)."""

    enabled: bool = False
    """Render an Ingress in front of the webserver (needs an Ingress controller in the cluster)."""
    class_name: SubdomainOrEmpty = ""
    """IngressClass; empty means the cluster's default class."""
    annotations: dict[str, str] = Field(
        default_factory=dict, json_schema_extra=keys_matching(LABEL_KEY, LABEL_KEY_MAX)
    )
    """E.g. cert-manager.io/cluster-issuer."""
    hosts: list[IngressHost] = Field(default_factory=list)
    """At least one when enabled."""
    tls: list[IngressTls] = Field(default_factory=list)
    """TLS of the Ingress: Secrets and the hosts they cover; empty means plain HTTP."""


class Webserver(Component):
    replicas: int = Field(default=1, ge=0)
    """Webserver pods (stateless; more than one needs a session-affine Ingress for the UI)."""
    service: Service
    """Service in front of the UI and GraphQL API, on this port."""
    path_prefix: str = ""
    """Serve the UI below this path, e.g. /dagster."""
    read_only: ReadOnlyWebserver = ReadOnlyWebserver()
    ingress: Ingress = Ingress()


class Daemon(Component):
    liveness_probe: Probe
    """The daemon's liveness check reads heartbeats from Postgres, which takes more than Kubernetes'
    1-second default; a short timeout crash-loops a healthy daemon."""


class LocationServiceAccount(ValuesModel):
    name: SubdomainOrEmpty = ""
    """An existing ServiceAccount for this location's code server, which then gets its token (e.g. for
    IRSA); empty means none, and no token."""


class CodeLocation(ValuesModel):
    """One code location: a gRPC code server of its own. Unset keys take userCode's."""

    name: Annotated[str, Field(pattern=NAME, max_length=40)]
    """Location name in the workspace, and part of its Deployment and Service names."""
    module: str = ""
    """Python module holding the Definitions (`-m`); or give args."""
    args: list[str] = Field(default_factory=list)
    """Arguments of `dagster code-server start` that say what to load, e.g. [--package-name, acme]; used
    instead of module."""
    image: Image | None = None
    """Image of the code server and of this location's runs; null means userCode.image."""
    replicas: int | None = Field(default=None, ge=0)
    """Code server pods; null means userCode.replicas."""
    resources: ContainerResources | None = None
    """Null means userCode.resources."""
    env: list[KubeObject] = Field(default_factory=list)
    """Extra env entries of this location, after userCode.extraEnv."""
    service_account: LocationServiceAccount = LocationServiceAccount()


class UserCode(Component):
    replicas: int = Field(default=1, ge=0)
    """Code server pods."""
    service: Service
    """Service of the gRPC code server, on this port (the workspace points at it)."""
    location_name: Annotated[str, Field(pattern=NAME)] = "floe-demo"
    """Name of the code location in the workspace."""
    module: str = "floe_demo.definitions"
    """Python module holding the Definitions."""
    locations: list[CodeLocation] = Field(default_factory=list)
    """Several code locations, each its own Deployment and Service, all listed in the workspace; empty
    means the one location above (locationName, module)."""


class RunK8sConfig(ValuesModel):
    """Kubernetes config of every run Job: layer 1 of the launcher's four, below the profile's
    PodTemplate, the code location and the run's dagster-k8s/config tag. Each part is passed through
    verbatim to dagster-k8s (Kubernetes field names, snake_case or camelCase)."""

    container_config: KubeObject = Field(default_factory=dict)
    """The run container, e.g. {envFrom: [{secretRef: {name: warehouse}}], volumeMounts: [...]}."""
    pod_template_spec_metadata: KubeObject = Field(default_factory=dict)
    """Labels and annotations of the run pod."""
    pod_spec_config: KubeObject = Field(default_factory=dict)
    """The run pod's spec, e.g. {priorityClassName: batch, volumes: [...]}."""
    job_metadata: KubeObject = Field(default_factory=dict)
    """Labels and annotations of the run Job."""
    job_spec_config: KubeObject = Field(default_factory=dict)
    """The run Job's spec, e.g. {ttlSecondsAfterFinished: 3600} (dagster-k8s' default is one day)."""


class RunLauncher(ValuesModel):
    """ProfileK8sRunLauncher: one Kubernetes Job per run, shaped by the run's resource profile."""

    platform_name: str = ""
    """The FloePlatform's name; empty means platform.platform.name, else `floe`."""
    default_profile: str = ""
    """Profile of runs without a floe/resource-profile tag; empty means `default` when the platform has
    such a profile (or no platform is given), else the platform's alphabetically first profile."""
    profile_cache_seconds: int = Field(default=30, ge=0)
    """How long the launcher reuses a PodTemplate it has read."""
    fail_pod_on_run_failure: bool = True
    """Exit the run pod non-zero when the run fails, so Kubernetes records the failure."""
    run_k8s_config: RunK8sConfig = Field(default_factory=RunK8sConfig, alias="runK8sConfig")


class TagValueGroup(ValuesModel):
    """A tag limit's value as a group: the limit applies to each distinct value of the key."""

    apply_limit_per_unique_value: bool
    """true: at most `limit` runs per distinct value of the tag."""


class TagConcurrencyLimit(ValuesModel):
    """At most `limit` runs in progress that carry the tag `key` (with `value`, when given)."""

    key: Annotated[str, Field(min_length=1)]
    """Run tag key, e.g. floe/resource-profile."""
    value: str | TagValueGroup | None = None
    """A tag value; absent: every value of the key counts together; {applyLimitPerUniqueValue: true}:
    the limit applies per distinct value."""
    limit: int = Field(ge=0)
    """Runs in progress at most."""


class RunCoordinator(ValuesModel):
    max_concurrent_runs: int = Field(default=10, ge=-1)
    """-1 means unlimited."""
    tag_concurrency_limits: list[TagConcurrencyLimit] = Field(default_factory=list)
    """Limits on runs in progress by run tag, e.g. [{key: floe/resource-profile, value: transform,
    limit: 2}]."""
    dequeue_interval_seconds: int | None = Field(default=None, ge=1)
    """How often the daemon dequeues runs; null means Dagster's default."""
    dequeue_use_threads: bool = False
    """Launch dequeued runs in worker threads, so one slow launch does not hold up the queue."""
    dequeue_num_workers: int | None = Field(default=None, ge=1)
    """Worker threads with dequeueUseThreads; null means Dagster's default."""


class RunMonitoring(ValuesModel):
    enabled: bool = True
    """Let the daemon watch run pods and fail runs whose pod died."""
    start_timeout_seconds: int = Field(default=300, ge=1)
    """A run whose pod has not started in this time is marked failed (e.g. an unschedulable profile)."""
    cancel_timeout_seconds: int = Field(default=180, ge=1)
    """A run still cancelling after this time is marked canceled."""
    max_runtime_seconds: int = Field(default=0, ge=0)
    """0 means no limit."""
    poll_interval_seconds: int = Field(default=120, ge=1)
    """How often the daemon checks run pods."""
    max_resume_run_attempts: int = Field(default=0, ge=0)
    """Times the daemon relaunches a run whose run pod died (a new Job, resuming the steps left);
    0 fails the run instead."""
    free_slots_after_run_end_seconds: int = Field(default=0, ge=0)
    """Free the op concurrency slots a finished run still holds after this time; 0 means never."""


TickPurgeDays = int | dict[Literal["skipped", "success", "failure", "started"], int]


class TickRetentionOf(ValuesModel):
    purge_after_days: TickPurgeDays
    """Days to keep ticks: one number for every status, or per status (skipped, success, failure,
    started); -1 keeps them for ever."""


class TickRetention(ValuesModel):
    """How long the daemon keeps schedule, sensor and auto-materialize ticks."""

    enabled: bool = False
    """Write the retention section; off means Dagster's defaults."""
    schedule: TickRetentionOf = TickRetentionOf(purge_after_days=-1)
    sensor: TickRetentionOf = TickRetentionOf(
        purge_after_days={"skipped": 7, "success": -1, "failure": -1, "started": -1}
    )
    auto_materialize: TickRetentionOf = TickRetentionOf(
        purge_after_days={"skipped": 7, "success": -1, "failure": -1, "started": -1}
    )


class StepJobs(ValuesModel):
    """Per-step resource profiles: runs whose job uses floe_platform.dagster.executor launch each step as
    its own Kubernetes Job, from the run pod."""

    enabled: bool = False
    """Give run pods an API token and a Role to create, watch and delete step Jobs (and read the profiles'
    PodTemplates). Off: run pods get no token, and a run using the step executor fails its launch."""
    service_account: ServiceAccount = ServiceAccount()
    """The run pods' identity when enabled (step pods get no token)."""


class RunRetries(ValuesModel):
    """Dagster's run retries (the daemon re-executes failed runs); a profile's escalate_to needs them."""

    enabled: bool = True
    """Let the daemon retry failed runs; off, an OOM-killed run is never retried on a larger profile."""
    max_retries: int = Field(default=0, ge=0)
    """Retries of a run that sets no dagster/max_retries tag. 0: only OOM kills on a profile with
    escalate_to are retried (the launcher gives those their retry)."""
    retry_on_asset_or_op_failure: bool = True
    """Also retry runs that failed because an op or asset raised (false: only crashed run workers)."""


class Migrate(ValuesModel):
    """The pre-upgrade hook Job that runs `dagster instance migrate`."""

    enabled: bool = True
    """Run `dagster instance migrate` with the new image and dagster.yaml before every `helm upgrade` replaces
    the webserver and daemon (a pre-upgrade hook; a failure stops the upgrade before anything changed)."""
    backoff_limit: int = Field(default=2, ge=0)
    """Retries of the migration Job."""
    resources: ContainerResources
    """Of the migration Job (it runs the daemon's image, with its security context and scheduling)."""


class Dagster(ValuesModel):
    """Instance settings that go into dagster.yaml."""

    run_launcher: RunLauncher = RunLauncher()
    run_coordinator: RunCoordinator = RunCoordinator()
    run_monitoring: RunMonitoring = RunMonitoring()
    retention: TickRetention = TickRetention()
    additional_instance_config: KubeObject = Field(default_factory=dict)
    """More dagster.yaml sections, written verbatim (e.g. `code_servers`, `concurrency`, `sensors`); a
    section the chart writes itself is refused: set it through its own value."""
    run_retries: RunRetries = RunRetries()
    telemetry: bool = False
    """Dagster telemetry; off by default."""
    service_account: ServiceAccount = ServiceAccount()
    """Used by webserver, daemon (they launch and watch run Jobs) and run pods (unless stepJobs.enabled)."""
    step_jobs: StepJobs = StepJobs()
    migrate: Migrate


class PostgresAuth(ValuesModel):
    username: str = "dagster"
    """Database user."""
    database: str = "dagster"
    """Database holding Dagster's runs, events and schedules."""
    existing_secret: SubdomainOrEmpty = ""
    """A Secret with the key `postgresql-password` (the key dagster-k8s reads); empty means the chart
    generates a password that survives upgrades (read back with lookup). Set it for GitOps (Argo CD,
    `helm template`): without a cluster, every render makes a new password."""
    fail_without_cluster: bool = True
    """Refuse to render a generated password without a cluster to read it back from (`helm template`, Argo
    CD), so a GitOps setup that forgot existingSecret fails at its first render. `false` renders anyway
    (a throwaway preview); `helm install` and `helm upgrade` are never refused."""


class Persistence(ValuesModel):
    enabled: bool = True
    """Off means an emptyDir: data is lost with the pod."""
    size: KubeQuantity = "8Gi"
    """Size of the volume, a Kubernetes quantity such as 8Gi."""
    storage_class: SubdomainOrEmpty = ""
    """StorageClass of the volume; empty means the cluster default."""


class Postgresql(Component):
    """The built-in PostgreSQL (a StatefulSet)."""

    image: ThirdPartyImage
    """docker.io/library/postgres at a pinned tag."""
    enabled: bool = True
    """Off means an external database, set under externalPostgresql."""
    auth: PostgresAuth = PostgresAuth()
    persistence: Persistence = Persistence()


class ExternalPostgresql(ValuesModel):
    """Used when postgresql.enabled is false."""

    host: str = ""
    """Host name of the database (required when postgresql.enabled is false)."""
    port: int = Field(default=5432, ge=1, le=65535)
    """Port of the database."""
    username: str = "dagster"
    """Database user."""
    database: str = "dagster"
    """Database name."""
    existing_secret: SubdomainOrEmpty = ""
    """A Secret with the key `postgresql-password` (required with an external database)."""
    params: dict[LibpqKeyword, LibpqValue] = Field(default_factory=dict, json_schema_extra=_libpq_params())
    """libpq parameters of Dagster's connection and the shared catalog's, e.g. sslmode: require (values
    without spaces, quotes or backslashes); not host, port, dbname or user (the fields above), nor password or
    passfile (the Secret)."""


class SecretKeyRef(ValuesModel):
    name: SubdomainOrEmpty = ""
    """The Secret holding the value; empty means none."""
    key: str = "LOCALSTACK_AUTH_TOKEN"
    """The Secret's key holding the value."""


class ComputeLogBucketJob(ValuesModel):
    """The compute-log bucket on your own S3; the built-in LocalStack creates its own on every start."""

    enabled: bool = False
    """Create the bucket on your own S3 (platform.storage) and apply retention_days as its lifecycle rule,
    in a post-install/post-upgrade hook Job; needs s3:CreateBucket and s3:PutLifecycleConfiguration. Off:
    retention_days is not applied there, manage the bucket's expiry yourself."""
    resources: ContainerResources
    """Of that Job."""
    backoff_limit: int = Field(default=6, ge=0)
    """Retries of that Job."""


class UninstallHook(ValuesModel):
    """The pre-delete hook that deletes the release's FloePlatforms (rendered with platform only)."""

    enabled: bool = True
    """Delete the release's FloePlatforms before `helm uninstall` removes the operator, and wait until the
    operator has let each go; off, delete them yourself first (kubectl delete fp --all)."""
    timeout_seconds: int = Field(default=300, ge=1)
    """How long the hook waits; after that it fails the uninstall naming the FloePlatforms left."""
    resources: ContainerResources
    """Of the hook Job (it runs the operator image, with the operator's security context and scheduling)."""
    pod_annotations: dict[str, str] = Field(
        default_factory=dict, json_schema_extra=keys_matching(LABEL_KEY, LABEL_KEY_MAX)
    )
    """Extra annotations of the hook's pod."""


class Localstack(Component):
    """The built-in S3 (LocalStack), for compute logs on a local cluster."""

    image: ThirdPartyImage
    """docker.io/localstack/localstack at a pinned tag."""
    enabled: bool = True
    """Off when compute logs and the catalog use your own S3 (platform.storage) or are off."""
    auth_token: SecretKeyRef = SecretKeyRef()
    """LocalStack images after 4.14.0 need LOCALSTACK_AUTH_TOKEN; name the Secret holding it."""
    region: str = "us-east-1"
    """Region LocalStack reports and clients use. On every start, LocalStack's ready.d hook creates the
    compute-log bucket and its lifecycle rule (retention_days) and the shared catalog's bucket, so a restart,
    which loses its state (every object), does not lose the buckets."""
    extra_buckets: list[S3BucketName] = Field(default_factory=list)
    """More buckets the same hook creates on every start, with no lifecycle rule: those of a FloePlatform
    you apply yourself (not through platform:) whose storage is this LocalStack, e.g. its catalog's
    floe-lake."""


class Operator(Component):
    """The floe operator: FloePlatform -> one PodTemplate per profile."""

    enabled: bool = True
    """Off when another release's operator (clusterWide) already watches this namespace."""
    cluster_wide: bool = False
    """Watch FloePlatforms in every namespace (ClusterRole) instead of watchNamespaces (Roles)."""
    watch_namespaces: list[Annotated[str, Field(pattern=NAME)]] = Field(default_factory=list)
    """Namespaces to watch; empty means the release namespace."""
    service_account: ServiceAccount = ServiceAccount()
    """The operator's ServiceAccount (bound to its Role or ClusterRole)."""
    liveness_probe: Probe
    """Probe timings of the operator's /healthz on port 8080."""


class HeadroomValues(ValuesModel):
    cpu: KubeQuantity
    """CPU, a Kubernetes quantity such as 4 or 500m."""
    memory: KubeQuantity
    """Memory, a Kubernetes quantity such as 8Gi."""


class NamespaceLimitsValues(ValuesModel):
    """Namespace guardrails: the chart writes them into the FloePlatform's spec, the operator applies them."""

    enabled: bool = False
    """Set platform.infrastructure.namespace_limits, so that the operator applies a LimitRange (no container
    above the largest profile or service) and a ResourceQuota; needs platform."""
    concurrent_runs: int = Field(default=0, ge=0)
    """Run pods the quota must fit; 0 means dagster.runCoordinator.maxConcurrentRuns."""
    services_headroom: HeadroomValues
    """Added to the quota for the webserver, daemon, code server, database and operator."""


class SmokeTestRun(ValuesModel):
    """The run `helm test` launches through the webserver's GraphQL API."""

    job: str = "floe_smoke_test"
    """Job of `location` to launch on the default profile (floe_platform.dagster.smoke's smoke_test_job;
    the demo location has it). It stays in progress past one run-monitoring poll and must end in SUCCESS.
    Empty: no run, only /server_info and the bucket are checked."""
    location: str = ""
    """Code location that has `job`: one of userCode.locations[].name. Empty: the first of
    userCode.locations, else userCode.locationName."""
    timeout_seconds: int = Field(default=600, ge=1)
    """How long the test waits for the run to end."""


class Tests(ValuesModel):
    resources: ContainerResources
    """Of the `helm test` pod."""
    run: SmokeTestRun = SmokeTestRun()


class PodDisruptionBudget(ValuesModel):
    """PodDisruptionBudgets for the Deployments that run more than one replica (webserver, read-only
    webserver, code servers); one replica gets none, so that draining a node is never blocked."""

    enabled: bool = True
    """Render a PodDisruptionBudget for each Deployment that runs more than one replica."""
    max_unavailable: int = Field(default=1, ge=1)
    """Pods of one Deployment a voluntary disruption (a node drain) may take down at once."""


class NetworkPolicy(ValuesModel):
    """NetworkPolicies that allow only the platform's own flows: runs, webserver, daemon and code servers
    to the database and S3; webserver and daemon to the code servers; DNS; the API server for the
    components that call it. Needs a network plugin that enforces NetworkPolicy."""

    enabled: bool = False
    """Render the NetworkPolicies; off, the platform's pods take traffic from anywhere."""
    webserver_from: list[KubeObject] = Field(default_factory=list)
    """NetworkPolicy peers allowed to reach the webserver (e.g. the Ingress controller's namespace);
    empty allows every source."""
    api_server_cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"])
    """Where the Kubernetes API server is (kubectl get endpoints kubernetes); narrow it when you can."""
    api_server_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=lambda: [443, 6443])
    """Ports of the API server (the Service port 443, and the endpoints' port)."""
    dns_namespace: NameOrEmpty = "kube-system"
    """Namespace of the cluster DNS."""
    external_cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"])
    """Where an external database or S3 is (their ports only)."""


class ChartValues(ValuesModel):
    """values.yaml of charts/floe-platform."""

    global_: KubeObject = Field(default_factory=dict, alias="global")
    """Helm's values shared between a parent chart and its subcharts; Helm adds it when this chart is a
    subchart. This chart reads nothing from it."""
    name_override: NameOrEmpty = ""
    """Replaces the chart name in object names."""
    fullname_override: NameOrEmpty = ""
    """Replaces <release>-<chart> as the prefix of every object name."""
    image_pull_secrets: list[KubeObject] = Field(default_factory=list)
    """Secrets for private registries, e.g. [{name: my-registry}], used by every pod."""
    common_labels: dict[str, LabelValue] = Field(
        default_factory=dict, json_schema_extra=keys_matching(LABEL_KEY, LABEL_KEY_MAX)
    )
    """Labels added to every object the chart renders (and their pods)."""
    common_annotations: dict[str, str] = Field(
        default_factory=dict, json_schema_extra=keys_matching(LABEL_KEY, LABEL_KEY_MAX)
    )
    """Annotations added to every object the chart renders."""
    pod_disruption_budget: PodDisruptionBudget = PodDisruptionBudget()
    network_policy: NetworkPolicy = NetworkPolicy()
    webserver: Webserver
    daemon: Daemon
    user_code: UserCode
    dagster: Dagster
    postgresql: Postgresql
    external_postgresql: ExternalPostgresql = ExternalPostgresql()
    localstack: Localstack
    compute_log_bucket_job: ComputeLogBucketJob
    uninstall_hook: UninstallHook
    operator: Operator
    namespace_limits: NamespaceLimitsValues
    tests: Tests
    platform: dict[str, Any] | None = None
    """platform.yaml content. When set, the chart renders it as a FloePlatform resource and takes
    compute-log settings from it; otherwise apply the output of `floe cr` yourself."""


def _platform_schema_into(schema: dict[str, Any]) -> None:
    """Replace the ``platform`` property by the platform.yaml schema, its definitions moved to the root."""
    platform = platform_json_schema()
    definitions = schema.setdefault("$defs", {})
    clashes = set(definitions) & set(platform.get("$defs", {}))
    if clashes:
        raise ValueError(f"values and platform.yaml models share definition names: {sorted(clashes)}")
    definitions.update(platform.pop("$defs", {}))
    for key in ("$schema", "$id"):
        platform.pop(key, None)
    definitions["PlatformConfig"] = platform
    description = schema["properties"]["platform"].get("description", "")
    schema["properties"]["platform"] = {
        "description": description,
        "anyOf": [{"$ref": "#/$defs/PlatformConfig"}, {"type": "null"}],
    }


def chart_values_schema() -> dict[str, Any]:
    """The chart's ``values.schema.json``."""
    schema = ChartValues.model_json_schema(mode="validation", by_alias=True)
    _platform_schema_into(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": CHART_SCHEMA_ID, **schema}


# Shown as one row each: small objects whose keys read best together.
_REFERENCE_LEAVES = (Image, ContainerResources, Probe, ServiceAccount, HeadroomValues)


def _nested_model(annotation: Any) -> type[ValuesModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, ValuesModel):
        return None if issubclass(annotation, _REFERENCE_LEAVES) else annotation
    return None


def _models_within(annotation: Any) -> list[type[ValuesModel]]:
    """The models of a list's items or of a union's members (list[CodeLocation], str | TagValueGroup)."""
    return [model for argument in typing.get_args(annotation) if (model := _nested_model(argument))]


def _reference_rows(model: type[ValuesModel], values: dict[str, Any], prefix: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        if name == "global_":
            continue
        key = field.alias or name
        value = values.get(key, field.get_default(call_default_factory=True))
        if isinstance(value, BaseModel):
            value = value.model_dump(by_alias=True, mode="json")
        nested = _nested_model(field.annotation)
        if nested is not None and isinstance(value, dict):
            yield from _reference_rows(nested, value, f"{prefix}{key}.")
            continue
        required = value is PydanticUndefined
        default = (
            "required" if required else f"`{json.dumps(value, separators=(', ', ': '))}`".replace("|", "\\|")
        )
        description = " ".join((field.description or "").split()).replace("|", "\\|")
        yield f"| `{prefix}{key}` | {default} | {description} |"
        # The keys of a list's items (`key[].field`) or of a union's object form (`key.field`).
        item_prefix = (
            f"{prefix}{key}[]." if typing.get_origin(field.annotation) is list else f"{prefix}{key}."
        )
        for inner in _models_within(field.annotation):
            yield from _reference_rows(inner, {}, item_prefix)


def values_reference(defaults: dict[str, Any]) -> str:
    """The chart README's values reference table: every key, its default in ``defaults``
    (values.yaml) and the model's description of it."""
    header = ["| Key | Default | Description |", "|---|---|---|"]
    return "\n".join([*header, *_reference_rows(ChartValues, defaults, "")]) + "\n"

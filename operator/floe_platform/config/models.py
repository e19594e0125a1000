"""The platform.yaml contract: frozen pydantic models that reject unknown keys.

Every cross-field rule raises ``field_error`` so that the message names the exact field path, including
keys below the field that carries the validator (for example ``env.DUCKDB_MEMORY_LIMIT``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from floe_platform.config.quantity import QUANTITY_PATTERN, QuantityError, parse_duckdb_size, parse_quantity

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
BUILTIN_STORAGE = "default"
"""A ``storage_ref`` of this name resolves to the chart's built-in S3 (LocalStack) unless ``storage``
defines a storage with the same name."""


def field_error(subpath: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """An error whose location is the validated field plus ``subpath``; see ``errors.format_errors``."""
    return PydanticCustomError("floe_field", "{message}", {"message": message, "subpath": subpath})


def _quantity_text(value: Any) -> Any:
    """Accept ``cpu: 2`` as YAML writes it, and check the quantity grammar.

    A YAML float (``cpu: 0.5``) is refused: the CRD, like Kubernetes itself, takes an integer or a string.
    """
    if isinstance(value, float):
        message = (
            f"{value!r} must be written as a string or in millicores, e.g. '{value}' or {int(value * 1000)}m"
        )
        raise PydanticCustomError("quantity", "{message}", {"message": message})
    if isinstance(value, bool) or not isinstance(value, str | int):
        return value  # let the str type report it
    try:
        magnitude = parse_quantity(value)
    except QuantityError as error:
        raise PydanticCustomError("quantity", "{message}", {"message": str(error)}) from None
    if magnitude < 0:
        message = f"{value!r} is negative; resources and sizes must be zero or more"
        raise PydanticCustomError("quantity", "{message}", {"message": message})
    return str(value)


def _dns_label(value: str) -> str:
    if len(value) > 63 or not DNS_LABEL.match(value):
        message = (
            f"{value!r} is not a valid Kubernetes name (use at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit)"
        )
        raise PydanticCustomError("dns_label", "{message}", {"message": message})
    return value


def _version_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


QUANTITY_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string", "pattern": QUANTITY_PATTERN}, {"type": "integer"}]
}
"""How a quantity looks in the generated schemas (YAML writes `cpu: 2` as a number: int-or-string)."""

Quantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    WithJsonSchema(QUANTITY_JSON_SCHEMA),
    Field(examples=["4Gi"]),
]
KubernetesName = Annotated[str, AfterValidator(_dns_label)]


class StrictModel(BaseModel):
    """Frozen, strict about types, and refusing keys it does not know (a typo fails loudly)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True)


class Resources(StrictModel):
    """CPU and memory of a container, as Kubernetes quantities."""

    cpu: Quantity
    """CPU in cores or millicores, e.g. 1000m or 2."""
    memory: Quantity
    """Memory in bytes with a suffix, e.g. 4Gi."""

    def cpu_cores(self) -> Decimal:
        return parse_quantity(self.cpu)

    def memory_bytes(self) -> int:
        return int(parse_quantity(self.memory))


class Toleration(StrictModel):
    """A Kubernetes toleration, written in snake_case."""

    key: str | None = None
    """Taint key to tolerate; empty with operator Exists tolerates every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    """Taint value (operator Equal)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to tolerate; empty tolerates all effects."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """Only with effect NoExecute: how long the pod stays bound after the taint appears."""


class ResourceProfile(StrictModel):
    """What a Dagster run pod of this profile gets: resources, env, placement and DuckDB spill space."""

    requests: Resources
    """What the scheduler guarantees; each must be at most the matching limit."""
    limits: Resources
    """The most the pod may use; DUCKDB_MEMORY_LIMIT and DUCKDB_THREADS are derived from these."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment of the run container. DUCKDB_MEMORY_LIMIT, DUCKDB_THREADS and DUCKDB_TEMP_DIRECTORY
    given here win over the derived values."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels the run pod must be scheduled on."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints the run pod tolerates."""
    temp_volume_size: Quantity = "10Gi"
    """Size limit of the emptyDir volume mounted at DUCKDB_TEMP_DIRECTORY, where DuckDB spills."""

    @field_validator("limits")
    @classmethod
    def _requests_within_limits(cls, limits: Resources, info: ValidationInfo) -> Resources:
        requests = info.data.get("requests")
        if requests is None:
            return limits
        for resource in ("cpu", "memory"):
            requested, limit = getattr(requests, resource), getattr(limits, resource)
            if parse_quantity(requested) > parse_quantity(limit):
                raise field_error(
                    (resource,),
                    f"limit {limit} is below the request {requested}; raise the limit or lower "
                    f"requests.{resource}",
                )
        return limits

    @field_validator("env")
    @classmethod
    def _duckdb_env_is_consistent(cls, env: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        for name in env:
            if not ENV_NAME.match(name):
                raise field_error((name,), f"{name!r} is not a valid environment variable name")
        limits: Resources | None = info.data.get("limits")
        if "DUCKDB_MEMORY_LIMIT" in env:
            _check_duckdb_memory(env["DUCKDB_MEMORY_LIMIT"], limits)
        if "DUCKDB_THREADS" in env:
            threads = env["DUCKDB_THREADS"].strip()
            if not threads.isdigit() or int(threads) < 1:
                raise field_error(
                    ("DUCKDB_THREADS",),
                    f"{env['DUCKDB_THREADS']!r} is not a positive whole number of threads",
                )
        temp_dir = env.get("DUCKDB_TEMP_DIRECTORY")
        if temp_dir is not None and not temp_dir.startswith("/"):
            raise field_error(
                ("DUCKDB_TEMP_DIRECTORY",), f"{temp_dir!r} must be an absolute path such as /tmp/duckdb"
            )
        return env


def _check_duckdb_memory(text: str, limits: Resources | None) -> None:
    subpath = ("DUCKDB_MEMORY_LIMIT",)
    try:
        duckdb_bytes = parse_duckdb_size(text)
    except QuantityError as error:
        raise field_error(subpath, str(error)) from None
    if limits is not None and duckdb_bytes >= limits.memory_bytes():
        raise field_error(
            subpath,
            f"{text!r} is not below the memory limit {limits.memory}; DuckDB needs headroom for Python "
            f"and Arrow, so use about two thirds of the limit or remove it to derive one",
        )


class Headroom(StrictModel):
    """CPU and memory requested by the platform's own services (webserver, daemon, code server, ...)."""

    cpu: Quantity = "0"
    """Added to the quota's requests.cpu."""
    memory: Quantity = "0"
    """Added to the quota's requests.memory and limits.memory."""


class ContainerLimits(StrictModel):
    """The limits of one of the platform's own containers, as its Deployment sets them."""

    # The schema is the quantity's alone: an absent key is how YAML says "no limit" (and a structural
    # schema cannot express a nullable int-or-string).
    cpu: Annotated[Quantity | None, WithJsonSchema(QUANTITY_JSON_SCHEMA)] = None
    """Its CPU limit, if it has one."""
    memory: Annotated[Quantity | None, WithJsonSchema(QUANTITY_JSON_SCHEMA)] = None
    """Its memory limit, if it has one."""


class NamespaceLimits(StrictModel):
    """A LimitRange and a ResourceQuota for the platform's namespace, derived from the profiles.

    The operator applies both as children of the FloePlatform: no container above the largest profile (or
    the platform's own containers), and room for concurrent_runs run pods of the largest profile.
    """

    enabled: bool = False
    """Apply the LimitRange <platform>-limits and the ResourceQuota <platform>-quota."""
    concurrent_runs: int = Field(default=1, ge=1)
    """Run pods of the largest profile that the quota must fit at once."""
    services_headroom: Headroom = Headroom()
    """Added to the quota for the platform's own services."""
    service_container_limits: list[ContainerLimits] = Field(default_factory=list)
    """Limits of the platform's own containers, so that the LimitRange maximum never locks them out (the
    chart fills it from its components' resources.limits)."""


class Infrastructure(StrictModel):
    """Where and how Dagster runs execute."""

    resource_profiles: dict[KubernetesName, ResourceProfile] = Field(min_length=1)
    """Named resource profiles; each becomes one PodTemplate named <platform>-<profile>."""
    namespace_limits: NamespaceLimits = NamespaceLimits()
    """Namespace guardrails derived from the profiles; off by default."""


class ComputeLogs(StrictModel):
    """Where Dagster keeps the stdout and stderr of every step."""

    enabled: bool = True
    """Off means Dagster keeps no compute logs beyond the run's event log."""
    manager_type: Literal["s3", "local", "noop"] = "s3"
    """s3 uploads to the storage named by storage_ref; local keeps files in local_dir; noop keeps none."""
    storage_ref: str = BUILTIN_STORAGE
    """A storage defined under `storage`, or `default` for the chart's built-in S3 (LocalStack)."""
    bucket: Annotated[str, Field(pattern=S3_BUCKET.pattern)] = "dagster-compute-logs"
    """Bucket for the logs; the chart creates it on the built-in S3."""
    prefix: str = "compute-logs/"
    """Key prefix of every log object."""
    retention_days: int = Field(default=30, ge=1, le=365)
    """Objects older than this are expired by a bucket lifecycle rule."""
    local_dir: str = "/tmp/dagster-compute-logs"
    """Where logs are written before upload (and kept, for manager_type local)."""
    upload_interval: int = Field(default=30, ge=1, le=300)
    """Seconds between partial uploads while a step runs."""


class Observability(StrictModel):
    """Logs and telemetry of the platform."""

    compute_logs: ComputeLogs = ComputeLogs()


class SecretRef(StrictModel):
    """A Kubernetes Secret holding S3 credentials; platform.yaml never holds the credentials themselves."""

    secret_name: KubernetesName
    """Name of the Secret, in the platform's namespace."""
    access_key_id_key: str = "AWS_ACCESS_KEY_ID"
    """Key in the Secret that holds the access key id."""
    secret_access_key_key: str = "AWS_SECRET_ACCESS_KEY"
    """Key in the Secret that holds the secret access key."""


_INLINE_CREDENTIAL_KEYS = frozenset(
    {
        "access_key",
        "access_key_id",
        "secret_key",
        "secret_access_key",
        "aws_access_key_id",
        "aws_secret_access_key",
        "password",
        "token",
    }
)


class S3Storage(StrictModel):
    """An S3-compatible endpoint."""

    endpoint: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")] | None = None
    """URL of the S3 API; leave empty for AWS S3."""
    region: str = "us-east-1"
    """Signing region."""
    bucket: Annotated[str, Field(pattern=S3_BUCKET.pattern)] | None = None
    """Default bucket of this storage, for data (compute logs name their own bucket)."""
    path_style_access: bool = False
    """True for MinIO and LocalStack style addressing (http://host/bucket/key)."""
    credentials: SecretRef | None = None
    """The Secret with the access keys; empty means the pod's own identity (IRSA, workload identity)."""

    @model_validator(mode="before")
    @classmethod
    def _no_inline_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if str(key).lower() in _INLINE_CREDENTIAL_KEYS:
                    raise field_error(
                        (key,),
                        "credentials must not be written in platform.yaml; put them in a Secret and "
                        "reference it with credentials.secret_name",
                    )
        return data


class PlatformMeta(StrictModel):
    """Identity of the platform."""

    name: KubernetesName = "floe"
    """Prefix of every rendered object name: <name>-<profile>."""
    environment: str = "local"
    """Free-form label value (local, staging, production)."""


class PlatformConfig(StrictModel):
    """The whole platform.yaml."""

    version: Annotated[Literal["1"], BeforeValidator(_version_text), WithJsonSchema({"enum": ["1", 1]})] = "1"
    """Version of the platform.yaml format."""
    platform: PlatformMeta = PlatformMeta()
    infrastructure: Infrastructure
    observability: Observability = Observability()
    storage: dict[KubernetesName, S3Storage] = Field(default_factory=dict)
    """Named S3-compatible storages that other sections reference by name."""

    @model_validator(mode="after")
    def _storage_refs_resolve(self) -> PlatformConfig:
        logs = self.observability.compute_logs
        uses_storage = logs.enabled and logs.manager_type == "s3"
        if uses_storage and logs.storage_ref not in self.storage and logs.storage_ref != BUILTIN_STORAGE:
            known = ", ".join(sorted(self.storage)) or "none"
            raise field_error(
                ("observability", "compute_logs", "storage_ref"),
                f"{logs.storage_ref!r} is not a storage defined under storage (defined: {known}); "
                f"add it there or use '{BUILTIN_STORAGE}' for the built-in S3",
            )
        return self

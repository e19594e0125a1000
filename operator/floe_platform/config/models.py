"""The platform.yaml contract: frozen pydantic models that reject unknown keys.

Every cross-field rule raises ``field_error`` so that the message names the exact field path, including
keys below the field that carries the validator (for example ``env.DUCKDB_MEMORY_LIMIT``).
"""

from __future__ import annotations

import math
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

from floe_platform.config.quantity import (
    MAX_QUANTITY,
    MAX_QUANTITY_LENGTH,
    MAX_QUANTITY_TEXT,
    QUANTITY_PATTERN,
    QuantityError,
    parse_duckdb_size,
    parse_quantity,
    shown,
)

# Kubernetes' own naming rules (apimachinery/pkg/util/validation), each as one pattern that the models
# apply with fullmatch and the generated schemas carry as they stand. `[.]` rather than an escaped dot, so
# that the same text is also a valid CEL string literal in the CRD.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_LABEL_MAX = 63
LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_KEY_PREFIX_MAX = 253
LABEL_KEY_MAX = LABEL_KEY_PREFIX_MAX + 1 + 63
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_VALUE_MAX = 63
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_NAME_MAX = 256
S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

# Bounds on every list and map, the same in the models and the CRD (whose CEL cost needs them): far above
# any real platform, and low enough that validating and rendering the largest file takes well under 2 s.
MAX_PROFILES = 64
MAX_NAMED_MAP_ENTRIES = 64
MAX_ENV_ENTRIES = 256
MAX_TOLERATIONS = 32
MAX_DUCKDB_THREADS = 1024
MIN_MEMORY_LIMIT = 64 * 1024**2
"""Smallest limits.memory (64Mi): below it a Python process with DuckDB loaded does not start, and the
derived DUCKDB_MEMORY_LIMIT (half the limit, whole MiB) would round to nothing."""
MIN_MEMORY_LIMIT_TEXT = "64Mi"
BUILTIN_STORAGE = "default"
"""A ``storage_ref`` of this name resolves to the chart's built-in S3 (LocalStack) unless ``storage``
defines a storage with the same name."""


def field_error(subpath: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """An error whose location is the validated field plus ``subpath``; see ``errors.format_errors``."""
    return PydanticCustomError("floe_field", "{message}", {"message": message, "subpath": subpath})


def value_error(message: str) -> PydanticCustomError:
    """An error on the validated value itself, whose message is shown as it stands."""
    return PydanticCustomError("floe_value", "{message}", {"message": message})


def _float_hint(value: float) -> str:
    """A valid quantity for a YAML float, if there is an obvious one (0.5 -> '0.5' or 500m)."""
    if not math.isfinite(value) or not 0 <= value <= 1e15:
        return "e.g. '500m' or '2'"
    exact = Decimal(repr(value))
    millicores = exact * 1000
    if millicores == millicores.to_integral_value():
        return f"e.g. '{exact}' or {int(millicores)}m"
    return f"e.g. '{exact}'"


def _quantity_text(value: Any) -> Any:
    """Accept ``cpu: 2`` as YAML writes it, and check the quantity grammar (``quantity.parse_quantity``).

    A YAML float (``cpu: 0.5``) is refused: the CRD, like Kubernetes itself, takes an integer or a string.
    """
    if isinstance(value, float):
        raise value_error(
            f"{shown(value)} must be written as a string or in millicores, {_float_hint(value)}"
        )
    if isinstance(value, bool) or not isinstance(value, str | int):
        return value  # let the str type report it
    try:
        parse_quantity(value)
    except QuantityError as error:
        raise value_error(str(error)) from None
    return str(value)


def _matching(pattern: re.Pattern[str], max_length: int, rule: str) -> Any:
    """A check for one Kubernetes naming rule: ``pattern`` matches all of it, within ``max_length``."""

    def check(value: str) -> str:
        if len(value) > max_length or not pattern.fullmatch(value):
            raise value_error(f"{shown(value)} is not {rule}")
        return value

    return check


def _schema(pattern: re.Pattern[str], max_length: int) -> WithJsonSchema:
    """The JSON schema of a string that ``pattern`` matches whole, within ``max_length``."""
    return WithJsonSchema({"type": "string", "pattern": pattern.pattern, "maxLength": max_length})


def _ruled(pattern: re.Pattern[str], max_length: int, rule: str) -> tuple[AfterValidator, WithJsonSchema]:
    """A string type's check (one line naming ``rule``) and its JSON schema, from one pattern and length."""
    return AfterValidator(_matching(pattern, max_length, rule)), _schema(pattern, max_length)


def _label_key(value: str) -> str:
    prefix = value.rpartition("/")[0]
    if len(prefix) > LABEL_KEY_PREFIX_MAX:
        raise value_error(f"{shown(value)} has a prefix longer than {LABEL_KEY_PREFIX_MAX} characters")
    return value


def _version_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


QUANTITY_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": QUANTITY_PATTERN, "maxLength": MAX_QUANTITY_LENGTH},
        {"type": "integer", "minimum": 0, "maximum": int(MAX_QUANTITY)},
    ]
}
"""How a quantity looks in the generated schemas (YAML writes `cpu: 2` as a number: int-or-string)."""

Quantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    WithJsonSchema(QUANTITY_JSON_SCHEMA),
    Field(examples=["4Gi"]),
]
_NAME_RULE = (
    f"a valid Kubernetes name (use at most {DNS_LABEL_MAX} lowercase letters, digits and '-', starting and "
    "ending with a letter or digit)"
)
_LABEL_KEY_RULE = (
    "a valid Kubernetes label key (an optional DNS prefix and '/', then at most 63 letters, digits, '-', "
    "'_' and '.', starting and ending with a letter or digit)"
)
_LABEL_VALUE_RULE = (
    f"a valid Kubernetes label value (at most {LABEL_VALUE_MAX} letters, digits, '-', '_' and '.', starting "
    "and ending with a letter or digit, or empty)"
)
_NAME_CHECK = AfterValidator(_matching(DNS_LABEL, DNS_LABEL_MAX, _NAME_RULE))
_LABEL_KEY_CHECKS = (
    AfterValidator(_matching(LABEL_KEY, LABEL_KEY_MAX, _LABEL_KEY_RULE)),
    AfterValidator(_label_key),
)
KubernetesName = Annotated[str, _NAME_CHECK, _schema(DNS_LABEL, DNS_LABEL_MAX)]
S3BucketName = Annotated[
    str,
    *_ruled(
        S3_BUCKET,
        63,
        "a valid S3 bucket name (3 to 63 lowercase letters, digits, '-' and '.', starting and ending "
        "with a letter or digit)",
    ),
]
LabelKey = Annotated[str, *_LABEL_KEY_CHECKS, _schema(LABEL_KEY, LABEL_KEY_MAX)]
LabelValue = Annotated[str, *_ruled(LABEL_VALUE, LABEL_VALUE_MAX, _LABEL_VALUE_RULE)]
# As map keys the same rules carry no schema of their own: pydantic would write patternProperties, which a
# CRD cannot have; the map's `propertyNames` (see keys_matching) says it instead.
NameKey = Annotated[str, _NAME_CHECK]
LabelKeyKey = Annotated[str, *_LABEL_KEY_CHECKS]
EnvName = Annotated[
    str,
    AfterValidator(
        _matching(
            ENV_NAME,
            ENV_NAME_MAX,
            "a valid environment variable name (letters, digits and _, not first a digit)",
        )
    ),
]


def keys_matching(pattern: re.Pattern[str], max_length: int) -> dict[str, Any]:
    """JSON schema of a map's key names; the CRD turns it into a CEL rule (structural schemas have none)."""
    return {"propertyNames": {"pattern": pattern.pattern, "maxLength": max_length}}


def check_kubernetes_name(value: str) -> str | None:
    """Why ``value`` cannot be a platform name or namespace (a DNS-1123 label), or None if it can.

    For the CLI's --name and --namespace, which become label values and the prefix of PodTemplate names.
    """
    if len(value) > DNS_LABEL_MAX or not DNS_LABEL.fullmatch(value):
        return f"{shown(value)} is not {_NAME_RULE}"
    return None


class StrictModel(BaseModel):
    """Frozen, strict about types, and refusing keys it does not know (a typo fails loudly)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True)


class Resources(StrictModel):
    """CPU and memory of a container, as Kubernetes quantities."""

    cpu: Quantity
    """CPU in cores or millicores, e.g. 1000m or 2."""
    memory: Quantity
    """Memory in bytes with a suffix, e.g. 4Gi."""
    # An absent key is how YAML says "none" (a structural schema cannot express a nullable int-or-string).
    ephemeral_storage: Annotated[Quantity | None, WithJsonSchema(QUANTITY_JSON_SCHEMA)] = None
    """Node-local disk (container writes and logs, not the DuckDB temp volume), e.g. 20Gi."""

    def cpu_cores(self) -> Decimal:
        return parse_quantity(self.cpu)

    def memory_bytes(self) -> int:
        return int(parse_quantity(self.memory))


class Toleration(StrictModel):
    """A Kubernetes toleration, written in snake_case, with Kubernetes' own rules for it."""

    key: LabelKey | None = None
    """Taint key to tolerate; empty with operator Exists tolerates every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    value: LabelValue | None = None
    """Taint value (operator Equal)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to tolerate; empty tolerates all effects."""
    toleration_seconds: int | None = Field(default=None, ge=0, le=2**63 - 1)
    """Only with effect NoExecute: how long the pod stays bound after the taint appears."""

    @model_validator(mode="after")
    def _kubernetes_toleration_rules(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise field_error(
                ("value",), "must be empty with operator Exists; remove it or use operator Equal"
            )
        if self.key is None and self.operator != "Exists":
            raise field_error(("operator",), "must be Exists when key is empty (that tolerates every taint)")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise field_error(
                ("toleration_seconds",),
                "applies only to effect NoExecute; remove it or set effect: NoExecute",
            )
        return self


# An extended resource is domain-qualified and outside kubernetes.io (Kubernetes' own rule).
EXTENDED_RESOURCE = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
TEMP_VOLUME = "duckdb-temp"
_AFFINITY_KINDS = ("nodeAffinity", "podAffinity", "podAntiAffinity")
_SPREAD_REQUIRED = ("maxSkew", "topologyKey", "whenUnsatisfiable")
_RESERVED_LABEL_PREFIXES = ("floe.dev/", "app.kubernetes.io/")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise value_error(
            f"{shown(value)} is not a valid Kubernetes name (lowercase letters, digits, '-' and '.')"
        )
    return value


def _extended_resource(value: str) -> str:
    if len(value) > LABEL_KEY_MAX or not EXTENDED_RESOURCE.fullmatch(value):
        raise value_error(
            f"{shown(value)} is not an extended resource name such as nvidia.com/gpu (domain/name)"
        )
    if value.split("/", 1)[0].endswith("kubernetes.io"):
        raise value_error(
            f"{shown(value)} is in the kubernetes.io domain; extended resources are a vendor's, "
            "e.g. nvidia.com/gpu"
        )
    return value


ExtendedResourceName = Annotated[str, AfterValidator(_extended_resource)]
SubdomainName = Annotated[
    str,
    AfterValidator(_subdomain),
    _schema(_DNS_SUBDOMAIN, 253),
]


class EnvFrom(StrictModel):
    """One Secret or ConfigMap whose keys become env variables of the run container."""

    secret: SubdomainName | None = None
    """Name of a Secret (set this or config_map)."""
    config_map: SubdomainName | None = None
    """Name of a ConfigMap (set this or secret)."""
    prefix: EnvName | None = None
    """Put before every variable name, e.g. WAREHOUSE_."""
    optional: bool = False
    """Start the pod even when the Secret or ConfigMap does not exist."""

    @model_validator(mode="after")
    def _one_source(self) -> EnvFrom:
        if (self.secret is None) == (self.config_map is None):
            raise value_error("set exactly one of secret or config_map")
        return self


class ExtraVolume(StrictModel):
    """A volume mounted into the run container: exactly one of secret, config_map,
    persistent_volume_claim or empty_dir_size."""

    name: KubernetesName
    """Volume name in the pod."""
    mount_path: str
    """Absolute path in the run container."""
    read_only: bool = False
    secret: SubdomainName | None = None
    """Name of a Secret to mount."""
    config_map: SubdomainName | None = None
    """Name of a ConfigMap to mount."""
    persistent_volume_claim: SubdomainName | None = None
    """Name of a PersistentVolumeClaim to mount."""
    empty_dir_size: Annotated[Quantity | None, WithJsonSchema(QUANTITY_JSON_SCHEMA)] = None
    """An empty scratch directory of at most this size."""

    @field_validator("mount_path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not path.startswith("/") or ".." in path.split("/") or len(path) > 4096 or not path.isprintable():
            raise value_error(f"{shown(path)} must be an absolute path such as /opt/dbt/profiles")
        return path

    @model_validator(mode="after")
    def _one_source(self) -> ExtraVolume:
        sources = [self.secret, self.config_map, self.persistent_volume_claim, self.empty_dir_size]
        if sum(source is not None for source in sources) != 1:
            raise value_error(
                "set exactly one of secret, config_map, persistent_volume_claim or empty_dir_size"
            )
        return self


class ResourceProfile(StrictModel):
    """What a Dagster run pod of this profile gets: resources, env, placement and DuckDB spill space."""

    requests: Resources
    """What the scheduler guarantees; each must be at most the matching limit."""
    limits: Resources
    """The most the pod may use (memory at least 64Mi); DUCKDB_MEMORY_LIMIT and DUCKDB_THREADS are
    derived from these."""
    env: dict[EnvName, str] = Field(
        default_factory=dict,
        max_length=MAX_ENV_ENTRIES,
        json_schema_extra=keys_matching(ENV_NAME, ENV_NAME_MAX),
    )
    """Environment of the run container. DUCKDB_MEMORY_LIMIT, DUCKDB_THREADS and DUCKDB_TEMP_DIRECTORY
    given here win over the derived values."""
    node_selector: dict[LabelKeyKey, LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_NAMED_MAP_ENTRIES,
        json_schema_extra=keys_matching(LABEL_KEY, LABEL_KEY_MAX),
    )
    """Node labels the run pod must be scheduled on."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=MAX_TOLERATIONS)
    """Taints the run pod tolerates."""
    temp_volume_size: Quantity = "10Gi"
    """Size limit of the emptyDir volume mounted at DUCKDB_TEMP_DIRECTORY, where DuckDB spills."""
    escalate_to: KubernetesName | None = None
    """A profile with a larger limits.memory: a run whose pod is OOMKilled on this profile is retried on
    that one (through Dagster's run retries), and so on up the ladder."""

    # Pod shape beyond CPU and memory (kept together: extended resources, placement, env sources,
    # metadata, volumes). DuckDB's derivation reads only limits.cpu and limits.memory.
    extended_resources: dict[ExtendedResourceName, Quantity] = Field(
        default_factory=dict,
        max_length=MAX_NAMED_MAP_ENTRIES,
        json_schema_extra=keys_matching(EXTENDED_RESOURCE, LABEL_KEY_MAX),
    )
    """Device-plugin resources in whole units, e.g. nvidia.com/gpu: 1; set as both request and limit
    (Kubernetes allows no overcommit of them)."""
    affinity: dict[str, Any] = Field(default_factory=dict)
    """Kubernetes affinity of the run pod, written as in a pod spec (nodeAffinity, podAffinity,
    podAntiAffinity); the API server validates it when the operator applies the PodTemplate."""
    priority_class_name: Annotated[str, AfterValidator(_subdomain)] | None = None
    """PriorityClass of the run pod, e.g. batch-high."""
    topology_spread_constraints: list[dict[str, Any]] = Field(
        default_factory=list, max_length=MAX_TOLERATIONS
    )
    """Kubernetes topologySpreadConstraints of the run pod, written as in a pod spec (maxSkew,
    topologyKey, whenUnsatisfiable, labelSelector)."""
    env_from: list[EnvFrom] = Field(default_factory=list, max_length=MAX_TOLERATIONS)
    """Secrets and ConfigMaps whose keys become env variables of the run container."""
    annotations: dict[LabelKeyKey, str] = Field(
        default_factory=dict,
        max_length=MAX_NAMED_MAP_ENTRIES,
        json_schema_extra=keys_matching(LABEL_KEY, LABEL_KEY_MAX),
    )
    """Annotations of the run pod."""
    labels: dict[LabelKeyKey, LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_NAMED_MAP_ENTRIES,
        json_schema_extra=keys_matching(LABEL_KEY, LABEL_KEY_MAX),
    )
    """Labels of the run pod (floe.dev/* and app.kubernetes.io/* stay the platform's)."""
    volumes: list[ExtraVolume] = Field(default_factory=list, max_length=MAX_TOLERATIONS)
    """Volumes mounted into the run container besides DuckDB's temp volume."""

    @field_validator("limits")
    @classmethod
    def _requests_within_limits(cls, limits: Resources, info: ValidationInfo) -> Resources:
        if limits.memory_bytes() < MIN_MEMORY_LIMIT:
            raise field_error(
                ("memory",),
                f"{shown(limits.memory)} is below {MIN_MEMORY_LIMIT_TEXT}, the least a run pod with DuckDB "
                f"needs; use at least {MIN_MEMORY_LIMIT_TEXT}",
            )
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

    @field_validator("extended_resources")
    @classmethod
    def _whole_units(cls, resources: dict[str, str]) -> dict[str, str]:
        for name, amount in resources.items():
            value = parse_quantity(amount)
            if value != value.to_integral_value() or value < 1:
                raise field_error((name,), f"{shown(amount)} is not a whole number of devices; use e.g. 1")
        return resources

    @field_validator("affinity")
    @classmethod
    def _affinity_kinds(cls, affinity: dict[str, Any]) -> dict[str, Any]:
        for key in affinity:
            if key not in _AFFINITY_KINDS:
                raise field_error(
                    (key,), f"is not a kind of affinity; use {', '.join(_AFFINITY_KINDS)} (as in a pod spec)"
                )
        return affinity

    @field_validator("topology_spread_constraints")
    @classmethod
    def _spread_fields(cls, constraints: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, constraint in enumerate(constraints):
            missing = [key for key in _SPREAD_REQUIRED if key not in constraint]
            if missing:
                raise field_error(
                    (index,),
                    f"needs {', '.join(missing)} (as in a pod spec, e.g. maxSkew: 1, "
                    "topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway)",
                )
        return constraints

    @field_validator("labels")
    @classmethod
    def _labels_not_the_platforms(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if key.startswith(_RESERVED_LABEL_PREFIXES):
                raise field_error(
                    (key,), "floe.dev/* and app.kubernetes.io/* labels are the platform's; use another key"
                )
        return labels

    @field_validator("volumes")
    @classmethod
    def _volumes_distinct(cls, volumes: list[ExtraVolume]) -> list[ExtraVolume]:
        names: set[str] = {TEMP_VOLUME}
        for index, volume in enumerate(volumes):
            if volume.name in names:
                raise field_error(
                    (index, "name"),
                    f"{shown(volume.name)} is used twice (or is DuckDB's {TEMP_VOLUME!r}); give each volume "
                    "its own name",
                )
            names.add(volume.name)
        return volumes

    @model_validator(mode="after")
    def _ephemeral_storage_within_limit(self) -> ResourceProfile:
        requested, limit = self.requests.ephemeral_storage, self.limits.ephemeral_storage
        if requested is not None and limit is not None and parse_quantity(requested) > parse_quantity(limit):
            raise field_error(
                ("limits", "ephemeral_storage"),
                f"limit {limit} is below the request {requested}; raise the limit or lower "
                "requests.ephemeral_storage",
            )
        return self

    @field_validator("env")
    @classmethod
    def _duckdb_env_is_consistent(cls, env: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        limits: Resources | None = info.data.get("limits")
        if "DUCKDB_MEMORY_LIMIT" in env:
            _check_duckdb_memory(env["DUCKDB_MEMORY_LIMIT"], limits)
        if "DUCKDB_THREADS" in env:
            _check_duckdb_threads(env["DUCKDB_THREADS"])
        if "DUCKDB_TEMP_DIRECTORY" in env:
            _check_temp_directory(env["DUCKDB_TEMP_DIRECTORY"])
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
            f"{shown(text)} is not below the memory limit {limits.memory}; DuckDB needs headroom for Python "
            f"and Arrow, so use about two thirds of the limit or remove it to derive one",
        )


_THREADS = re.compile(r"[1-9][0-9]{0,3}")


def _check_duckdb_threads(text: str) -> None:
    # ASCII digits only: str.isdigit() also takes '²' and '٣', which int() or DuckDB then refuse.
    if not _THREADS.fullmatch(text) or int(text) > MAX_DUCKDB_THREADS:
        raise field_error(
            ("DUCKDB_THREADS",),
            f"{shown(text)} is not a positive whole number of threads (1 to {MAX_DUCKDB_THREADS}, e.g. '4')",
        )


def _check_temp_directory(path: str) -> None:
    # It becomes the run container's volume mountPath: absolute, and without '..' (Kubernetes refuses it).
    if not path.startswith("/") or ".." in path.split("/") or len(path) > 4096 or not path.isprintable():
        raise field_error(
            ("DUCKDB_TEMP_DIRECTORY",), f"{shown(path)} must be an absolute path such as /tmp/duckdb"
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
    service_container_limits: list[ContainerLimits] = Field(default_factory=list, max_length=64)
    """Limits of the platform's own containers, so that the LimitRange maximum never locks them out (the
    chart fills it from its components' resources.limits)."""


class Infrastructure(StrictModel):
    """Where and how Dagster runs execute."""

    resource_profiles: dict[NameKey, ResourceProfile] = Field(
        min_length=1, max_length=MAX_PROFILES, json_schema_extra=keys_matching(DNS_LABEL, DNS_LABEL_MAX)
    )
    """Named resource profiles; each becomes one PodTemplate named <platform>-<profile>."""
    namespace_limits: NamespaceLimits = NamespaceLimits()
    """Namespace guardrails derived from the profiles; off by default."""

    @model_validator(mode="after")
    def _escalation_ladders_climb(self) -> Infrastructure:
        # Order matters for the message: a missing target first, then a cycle (which always also has a step
        # that is not larger, but "cycle" names the real mistake), then each step's memory.
        profiles = self.resource_profiles
        for name, profile in profiles.items():
            target = profile.escalate_to
            if target is not None and target not in profiles:
                raise field_error(
                    ("resource_profiles", name, "escalate_to"),
                    f"{target!r} is not a profile (profiles: {', '.join(sorted(profiles))}); name one of "
                    "them or remove escalate_to",
                )
        for name in profiles:
            cycle = _escalation_cycle(profiles, name)
            if cycle:
                raise field_error(
                    ("resource_profiles", name, "escalate_to"),
                    f"the ladder {' -> '.join(cycle)} is a cycle; the top profile must not escalate",
                )
        for name, profile in profiles.items():
            target = profile.escalate_to
            if target is not None and profiles[target].limits.memory_bytes() <= profile.limits.memory_bytes():
                raise field_error(
                    ("resource_profiles", name, "escalate_to"),
                    f"{target!r} has limits.memory {profiles[target].limits.memory}, not more than the "
                    f"{profile.limits.memory} of {name!r}; escalate to a profile with more memory",
                )
        return self

    @model_validator(mode="after")
    def _quota_fits_a_quantity(self) -> Infrastructure:
        # The quota's limits.memory (runs x the largest memory limit + headroom) must itself be a quantity
        # Kubernetes can hold, or the ResourceQuota the operator applies could never be written.
        limits = self.namespace_limits
        if not limits.enabled:
            return self
        largest = max(parse_quantity(p.limits.memory) for p in self.resource_profiles.values())
        total = limits.concurrent_runs * largest + parse_quantity(limits.services_headroom.memory)
        if total > MAX_QUANTITY:
            raise field_error(
                ("namespace_limits", "concurrent_runs"),
                f"{limits.concurrent_runs} runs of the largest memory limit need a quota above "
                f"{MAX_QUANTITY_TEXT}, the largest Kubernetes holds; lower concurrent_runs or the limit",
            )
        return self


def _escalation_cycle(profiles: dict[str, ResourceProfile], start: str) -> list[str] | None:
    """The profiles from ``start`` round its escalation cycle back to ``start``, or None if there is none."""
    path = [start]
    current = profiles[start].escalate_to
    while current is not None and current in profiles:
        path.append(current)
        if current == start:
            return path
        if current in path[:-1]:
            return None  # a cycle further up the ladder; reported when its own member is checked
        current = profiles[current].escalate_to
    return None


class ComputeLogs(StrictModel):
    """Where Dagster keeps the stdout and stderr of every step."""

    enabled: bool = True
    """Off means Dagster keeps no compute logs beyond the run's event log."""
    manager_type: Literal["s3", "local", "noop"] = "s3"
    """s3 uploads to the storage named by storage_ref; local keeps files in local_dir; noop keeps none."""
    storage_ref: str = BUILTIN_STORAGE
    """A storage defined under `storage`, or `default` for the chart's built-in S3 (LocalStack)."""
    bucket: S3BucketName = "dagster-compute-logs"
    """Bucket for the logs; the chart creates it on the built-in S3."""
    prefix: str = "compute-logs/"
    """Key prefix of every log object."""
    retention_days: int = Field(default=30, ge=1, le=365)
    """Objects older than this expire, by a lifecycle rule on the bucket where the Helm chart manages it:
    always on the built-in S3, on your own S3 only with the chart's computeLogBucketJob.enabled. Otherwise
    nothing expires until you set such a rule on the bucket yourself."""
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
    bucket: S3BucketName | None = None
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


CATALOG_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
CATALOG_NAME_MAX = 63
HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")
HOSTNAME_MAX = 253
S3_PREFIX = re.compile(r"^([A-Za-z0-9!_.*'()-]+/)*$")
LIBPQ_KEYWORD = re.compile(r"^[a-z_]+$")
LIBPQ_KEYWORD_MAX = 64
LIBPQ_VALUE = re.compile(r"^[^\s'\\]+$")
LIBPQ_VALUE_MAX = 1024
LIBPQ_OWN_FIELDS = {
    "host": "host",
    "hostaddr": "host",
    "port": "port",
    "dbname": "database",
    "user": "username",
    "sslmode": "sslmode",
}
"""libpq keywords that CatalogDatabase has fields for."""
LIBPQ_CREDENTIALS = ("password", "passfile")
"""libpq keywords that would put a credential into the spec: it belongs in a Secret."""


LibpqKeyword = Annotated[
    str,
    AfterValidator(
        _matching(LIBPQ_KEYWORD, LIBPQ_KEYWORD_MAX, "a libpq connection parameter such as connect_timeout")
    ),
]
LibpqValue = Annotated[
    str,
    *_ruled(LIBPQ_VALUE, LIBPQ_VALUE_MAX, "a libpq parameter value without spaces, quotes or backslashes"),
]
CatalogIdentifier = Annotated[
    str,
    *_ruled(
        CATALOG_NAME,
        CATALOG_NAME_MAX,
        f"a name DuckDB and PostgreSQL take unquoted (at most {CATALOG_NAME_MAX} lowercase letters, "
        "digits and '_', not starting with a digit), e.g. 'floe_lake'",
    ),
]


class PasswordSecretRef(StrictModel):
    """A key of a Kubernetes Secret that holds a database password."""

    secret_name: KubernetesName
    """Name of the Secret, in the platform's namespace."""
    key: Annotated[str, Field(pattern=r"^[-._A-Za-z0-9]+$", max_length=253)] = "postgresql-password"
    """Key in the Secret that holds the password."""


class CatalogDatabase(StrictModel):
    """The PostgreSQL database that holds the catalog's metadata (DuckLake's tables)."""

    host: Annotated[str, Field(pattern=HOSTNAME.pattern, max_length=HOSTNAME_MAX)]
    """Host name of the PostgreSQL server."""
    port: int = Field(default=5432, ge=1, le=65535)
    """Port of the PostgreSQL server."""
    database: CatalogIdentifier = "floe_catalog"
    """Database of the catalog; it must exist (the chart uses its own PostgreSQL's database)."""
    metadata_schema: CatalogIdentifier = "floe_catalog"
    """Schema of DuckLake's metadata tables in that database; DuckLake creates it on first use."""
    username: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$", max_length=63)] = "dagster"
    """Role the run pods connect as."""
    password: PasswordSecretRef | None = None
    """The Secret key with the role's password; empty means no password (certificate or trust auth)."""
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    """libpq's sslmode; empty means libpq's default (prefer)."""
    params: dict[LibpqKeyword, LibpqValue] = Field(
        default_factory=dict,
        max_length=MAX_NAMED_MAP_ENTRIES,
        json_schema_extra=keys_matching(LIBPQ_KEYWORD, LIBPQ_KEYWORD_MAX),
    )
    """More libpq connection parameters as text, e.g. connect_timeout: "10" (the chart copies
    externalPostgresql.params here); host, port, dbname, user and sslmode have fields of their own."""

    @field_validator("params")
    @classmethod
    def _params_are_not_fields_or_credentials(cls, params: dict[str, str]) -> dict[str, str]:
        for keyword in params:
            if keyword in LIBPQ_CREDENTIALS:
                raise value_error(
                    f"{keyword!r}: credentials must not be written in platform.yaml; put the password in a "
                    "Secret and reference it with password.secret_name and password.key"
                )
            if keyword in LIBPQ_OWN_FIELDS:
                raise value_error(
                    f"{keyword!r} has a field of its own: set catalog.database.{LIBPQ_OWN_FIELDS[keyword]}"
                )
        return params

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("password"), str):
            raise field_error(
                ("password",),
                "a password must not be written in platform.yaml; put it in a Secret and reference it "
                "with password.secret_name and password.key",
            )
        return data


class Catalog(StrictModel):
    """The lakehouse catalog every run pod attaches: DuckLake, metadata in PostgreSQL, data files in S3."""

    enabled: bool = True
    """Off means each run keeps its tables in a DuckDB file inside its own pod (lost with the pod)."""
    name: CatalogIdentifier = "lake"
    """Name of the attached catalog in DuckDB (ATTACH ... AS name) and in dbt (the profile's database)."""
    storage_ref: str = BUILTIN_STORAGE
    """A storage defined under `storage`, or `default` for the chart's built-in S3 (LocalStack)."""
    bucket: S3BucketName = "floe-lake"
    """Bucket of the data files and blobs; the chart creates it on the built-in S3."""
    data_prefix: Annotated[str, Field(pattern=S3_PREFIX.pattern, max_length=512)] = "lake/"
    """Key prefix of the catalog's Parquet data files."""
    blob_prefix: Annotated[str, Field(pattern=S3_PREFIX.pattern, max_length=512)] = "blobs/"
    """Key prefix of the blob I/O manager's objects (artifacts that are not tables)."""
    database: CatalogDatabase | None = None
    """The metadata database. Empty: the chart's PostgreSQL, which the chart fills in; outside the chart,
    an empty database leaves the runs without a shared catalog."""


class PlatformMeta(StrictModel):
    """Identity of the platform."""

    name: KubernetesName = "floe"
    """Prefix of every rendered object name: <name>-<profile>."""
    environment: LabelValue = "local"
    """A label value (local, staging, production)."""


class PlatformConfig(StrictModel):
    """The whole platform.yaml."""

    version: Annotated[Literal["1"], BeforeValidator(_version_text), WithJsonSchema({"enum": ["1", 1]})] = "1"
    """Version of the platform.yaml format."""
    platform: PlatformMeta = PlatformMeta()
    infrastructure: Infrastructure
    observability: Observability = Observability()
    catalog: Catalog = Catalog()
    """The shared lakehouse catalog of every run."""
    storage: dict[NameKey, S3Storage] = Field(
        default_factory=dict,
        max_length=MAX_NAMED_MAP_ENTRIES,
        json_schema_extra=keys_matching(DNS_LABEL, DNS_LABEL_MAX),
    )
    """Named S3-compatible storages that other sections reference by name."""

    @model_validator(mode="after")
    def _storage_refs_resolve(self) -> PlatformConfig:
        logs = self.observability.compute_logs
        refs: list[tuple[tuple[str, ...], str]] = []
        if logs.enabled and logs.manager_type == "s3":
            refs.append((("observability", "compute_logs", "storage_ref"), logs.storage_ref))
        if self.catalog.enabled:
            refs.append((("catalog", "storage_ref"), self.catalog.storage_ref))
        for path, ref in refs:
            if ref not in self.storage and ref != BUILTIN_STORAGE:
                known = ", ".join(sorted(self.storage)) or "none"
                raise field_error(
                    path,
                    f"{ref!r} is not a storage defined under storage (defined: {known}); "
                    f"add it there or use '{BUILTIN_STORAGE}' for the built-in S3",
                )
        return self

"""``ProfileK8sRunLauncher``: dagster-k8s's run launcher, launching each run from its profile's PodTemplate.

Precedence of the run pod's config, lowest to highest (each layer deep-merges over the one below, the
last value of an env name wins):

1. the launcher's own config (``run_k8s_config``, ``resources``, ``env_vars``, ...);
2. the resource profile's PodTemplate ``<platform_name>-<profile>``;
3. the code location's container context;
4. the run's ``dagster-k8s/config`` tag.

When layer 3 or 4 changes the CPU or memory limit, the DUCKDB_* values the renderer derived from the
profile's limits are recomputed from the effective limits; values set explicitly are kept.

The profile is chosen by the run tag ``floe/resource-profile``, else the job's tag, else the tag on the
run's assets (``op_tags``), else ``default_profile``. An unknown profile fails the launch before any Job
is created, with the list of profiles that exist. A run pod killed for memory fails the run with one
sentence naming the profile and its limit (hooked into run-worker health checks and debug info).

Runs of ``floe_platform.dagster.executor`` (one Job per step) need ``step_jobs: true`` (the chart's
``dagster.stepJobs.enabled``): their run pods then get the API token the profiles switch off, and their ops'
tags choose their steps' profiles, not the run pod's. Without it such a run fails its launch, naming the
switch.

Escalation on OOM (see ``escalation``): when the OOM-killed run's profile has ``escalate_to``, the health
check marks the run ``floe/oom-killed`` and makes sure ``dagster/max_retries`` leaves it a retry; Dagster's
own run retries then re-execute it, and this launcher launches that retry on the profile one rung up.

Launch cost: the run's config is planned once per launch (``launch_run`` hands its plan to the stock
code's ``get_container_context_for_run`` call), and the profile's record goes into the stock "Creating
Kubernetes run worker job" event instead of an event of its own. Health checks, debug info and terminate
only need the Job's namespace, which no profile sets, so they skip the profile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import kubernetes  # type: ignore[import-untyped]
import yaml
from dagster import Field, IntSource, Noneable, StringSource
from dagster._core.events import EngineEventData
from dagster._core.launcher import LaunchRunContext, ResumeRunContext
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import MAX_RETRIES_TAG, PARENT_RUN_ID_TAG
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import UserDefinedDagsterK8sConfig, get_job_name_from_run_id
from dagster_k8s.launcher import K8sRunLauncher

from floe_platform.dagster.escalation import (
    LADDER_TAG,
    Rung,
    climbed_ladder,
    describe_ladder,
    escalation_target,
    format_ladder,
    parse_ladder,
    retry_budget,
    retry_sentence,
)
from floe_platform.dagster.profiles import (
    MEMORY_LIMIT_TAG,
    PROFILE_TAG,
    ProfileChoice,
    ProfileError,
    select_profile,
    settle_env,
    template_to_k8s_config,
)
from floe_platform.dagster.run_worker import RUN_WORKER_COMMAND
from floe_platform.render import PROFILE_LABEL, template_name
from floe_platform.render.podtemplate import PLATFORM_LABEL
from floe_platform.usage.tags import OOM_TAG, resource_tags

LOGGER = logging.getLogger(__name__)
PROFILE_SOURCES = ("api", "file")
_NOT_FOUND = 404
_NO_RUN = DagsterRun(job_name="floe-launcher-layer")
"""A run without code location or tags: what create_for_run needs to give the launcher's layer alone."""
_SNAPSHOT_CACHE_SIZE = 512
_PLAN_CACHE_SIZE = 1024
STEP_EXECUTOR_NAME = "floe_k8s"
"""Name of ``floe_platform.dagster.executor``'s executor, as recorded in a run's execution plan."""
STEP_JOBS_SWITCH = "dagster.stepJobs.enabled"
"""The chart value that gives run pods an API token and a Role to launch step Jobs."""
# Run pods of the step executor call the Kubernetes API; the profiles' PodTemplates switch the token off.
_API_TOKEN_LAYER = K8sContainerContext(
    run_k8s_config=UserDefinedDagsterK8sConfig(pod_spec_config={"automountServiceAccountToken": True})
)

# A PodTemplate read that the API server failed (not refused) is tried again, as dagster-k8s does for its
# own calls, so one 5xx does not fail the run: up to READ_ATTEMPTS, waiting 0.5 s, 1 s, 2 s between them.
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
READ_ATTEMPTS = 4
READ_BACKOFF_SECONDS = 0.5


class StepJobsDisabledError(Exception):
    """A run uses the step executor, but run pods may not call the Kubernetes API on this platform."""


@dataclass(frozen=True)
class ResolvedProfile:
    """A chosen profile and its PodTemplate (a plain dict, as the API serializes it)."""

    choice: ProfileChoice
    template: dict[str, Any]


@dataclass(frozen=True)
class ProfileLaunch:
    """Everything launching a run on its profile decides: the run pod's container context, and the record
    of it (the profile, the limits the pod really gets, and the DUCKDB_* values recomputed for them)."""

    resolved: ResolvedProfile
    container_context: K8sContainerContext
    effective_limits: dict[str, str]
    effective_requests: dict[str, str]
    recomputed: dict[str, str]


def profile_launch(
    run: DagsterRun,
    launcher: K8sRunLauncher,
    resolved: ResolvedProfile,
    user_layers: K8sContainerContext,
    *,
    launcher_layer: K8sContainerContext | None = None,
    profile_layer: K8sContainerContext | None = None,
) -> ProfileLaunch:
    """The four config layers of a run on ``resolved``, merged, with DUCKDB_* settled: no API calls.

    Layers, lowest first: the launcher's own config, the profile's PodTemplate, then ``user_layers`` (the
    code location's container context and the run's ``dagster-k8s/config`` tag, already validated). A
    caller that keeps the first two (they depend only on the launcher and the template) may pass them in.
    """
    launcher_layer = launcher_layer or launcher_context(launcher)
    launch = layer_on_profile(launcher_layer, resolved, user_layers, profile_layer=profile_layer)
    container_config = dict(launch.container_context.run_k8s_config.container_config)
    # Right-sizing: dagster-k8s passes the run worker as `args`; a command a higher layer set is kept.
    container_config.setdefault("command", list(RUN_WORKER_COMMAND))
    settled = launch.container_context.run_k8s_config._replace(container_config=container_config)
    return replace(launch, container_context=launch.container_context._replace(run_k8s_config=settled))


def layer_on_profile(
    base: K8sContainerContext,
    resolved: ResolvedProfile,
    user_layers: K8sContainerContext,
    *,
    profile_layer: K8sContainerContext | None = None,
) -> ProfileLaunch:
    """``base``, then the profile's PodTemplate, then ``user_layers``, merged, with DUCKDB_* settled.

    The one merge of run pods (``profile_launch``) and step pods (``floe_platform.dagster.executor``).
    """
    template = resolved.template
    profile_layer = profile_layer or profile_context(template)
    merged = base.merge(profile_layer).merge(user_layers)
    container_config = dict(merged.run_k8s_config.container_config)
    env, recomputed = settle_env(container_config, template)
    container_config["env"] = env
    resources = container_config.get("resources") or {}
    limits, requests = dict(resources.get("limits") or {}), dict(resources.get("requests") or {})
    settled = merged.run_k8s_config._replace(container_config=container_config)
    return ProfileLaunch(resolved, merged._replace(run_k8s_config=settled), limits, requests, recomputed)


def launcher_context(launcher: K8sRunLauncher) -> K8sContainerContext:
    """Layer 1: the launcher's own config, as dagster-k8s reads it (no run, no code location)."""
    return K8sContainerContext.create_for_run(_NO_RUN, launcher, include_run_tags=False)


def profile_context(pod_template: Mapping[str, Any]) -> K8sContainerContext:
    """Layer 2: the profile's PodTemplate."""
    return K8sContainerContext(run_k8s_config=_config_from_dict(template_to_k8s_config(pod_template)))


# dagster-k8s leaves these untyped; typed aliases keep mypy --strict meaningful at the call sites.
_config_from_dict: Callable[[Mapping[str, Any]], UserDefinedDagsterK8sConfig] = (
    UserDefinedDagsterK8sConfig.from_dict
)
_job_name: Callable[..., str] = get_job_name_from_run_id
_stock_config_type: Callable[[], dict[str, Any]] = K8sRunLauncher.config_type
_stock_terminate: Callable[[K8sRunLauncher, str], bool] = K8sRunLauncher.terminate


class TemplateStore:
    """PodTemplates by name, from the Kubernetes API or a directory, cached for ``cache_seconds``."""

    def __init__(
        self,
        *,
        source: str,
        namespace: str,
        platform_name: str,
        core_api: Any,
        profile_dir: str | None,
        cache_seconds: int,
    ) -> None:
        self._source = source
        self._namespace = namespace
        self._platform_name = platform_name
        self._core_api = core_api
        self._profile_dir = Path(profile_dir) if profile_dir else None
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> dict[str, Any] | None:
        """The PodTemplate called ``name``, or None. Found templates are cached; misses are not."""
        with self._lock:
            cached = self._cache.get(name)
            if cached and cached[0] > time.monotonic():
                return cached[1]
        template = self._read(name)
        if template is not None:
            with self._lock:
                self._cache[name] = (time.monotonic() + self._cache_seconds, template)
        return template

    def available_profiles(self) -> list[str]:
        """Profile names of this platform's templates (filtered here too: not every API honours selectors)."""
        templates = self._list_api() if self._source == "api" else list(self._read_dir().values())
        profiles = {
            (template["metadata"].get("labels") or {}).get(PROFILE_LABEL)
            for template in templates
            if (template["metadata"].get("labels") or {}).get(PLATFORM_LABEL) == self._platform_name
        }
        return sorted(profile for profile in profiles if profile)

    def _read(self, name: str) -> dict[str, Any] | None:
        if self._source == "file":
            return self._read_dir().get(name)
        for attempt in range(READ_ATTEMPTS):
            try:
                found = self._core_api.read_namespaced_pod_template(name, self._namespace)
                return cast(dict[str, Any], self._core_api.api_client.sanitize_for_serialization(found))
            except kubernetes.client.ApiException as error:
                if error.status == _NOT_FOUND:
                    return None
                if error.status not in _TRANSIENT_STATUSES or attempt == READ_ATTEMPTS - 1:
                    raise
                LOGGER.warning("Reading PodTemplate %s failed (HTTP %s); trying again", name, error.status)
            time.sleep(READ_BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _list_api(self) -> list[dict[str, Any]]:
        listed = self._core_api.list_namespaced_pod_template(
            self._namespace, label_selector=f"{PLATFORM_LABEL}={self._platform_name}"
        )
        serialized = self._core_api.api_client.sanitize_for_serialization(listed)
        return cast(list[dict[str, Any]], serialized.get("items") or [])

    def _read_dir(self) -> dict[str, dict[str, Any]]:
        """Every PodTemplate in the YAML/JSON files of ``profile_dir`` (e.g. a mounted ConfigMap)."""
        assert self._profile_dir is not None
        templates: dict[str, dict[str, Any]] = {}
        for path in sorted(self._profile_dir.iterdir()):
            if path.name.startswith(".") or path.suffix not in (".yaml", ".yml", ".json"):
                continue
            for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if isinstance(document, dict) and document.get("kind") == "PodTemplate":
                    templates[document["metadata"]["name"]] = document
        return templates


class ProfileK8sRunLauncher(K8sRunLauncher):
    """A ``K8sRunLauncher`` that launches each run from the PodTemplate of its resource profile."""

    def __init__(
        self,
        platform_name: str = "floe",
        default_profile: str | None = None,
        profile_source: str = "api",
        profile_dir: str | None = None,
        profile_cache_seconds: int = 30,
        *,
        step_jobs: bool = False,
        **k8s_launcher_config: Any,
    ) -> None:
        super().__init__(**k8s_launcher_config)
        if profile_source not in PROFILE_SOURCES:
            raise ValueError(f"run_launcher.config.profile_source: {profile_source!r} is not 'api' or 'file'")
        if profile_source == "file" and not profile_dir:
            raise ValueError("run_launcher.config.profile_dir: required when profile_source is 'file'")
        self.platform_name = platform_name
        self.default_profile = default_profile
        self.step_jobs = step_jobs
        # Execution plan snapshot id -> runs with the step executor; ids are content hashes, never stale.
        self._step_executor_plans: dict[str, bool] = {}
        self.templates = TemplateStore(
            source=profile_source,
            namespace=self.job_namespace,
            platform_name=platform_name,
            core_api=self._api_client.core_api,
            profile_dir=profile_dir,
            cache_seconds=profile_cache_seconds,
        )
        # What each run being launched (or health-checked) gets, by run id, while that call runs: the stock
        # code asks get_container_context_for_run for it, and planning twice costs launch time.
        self._in_flight: dict[str, _InFlight] = {}
        # What launches repeat, kept: the launcher's layer (fixed by its config), each template's layer (for
        # as long as the store returns the same template), and the tags in each job snapshot (a snapshot id
        # is a hash of its content, so the entry never goes stale).
        self._launcher_layer: K8sContainerContext | None = None
        self._profile_layers: dict[str, tuple[dict[str, Any], K8sContainerContext]] = {}
        self._snapshot_tags: dict[str, tuple[Mapping[str, str], dict[str, Mapping[str, str]]]] = {}

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            **_stock_config_type(),
            "platform_name": Field(StringSource, is_required=False, default_value="floe"),
            "default_profile": Field(Noneable(StringSource), is_required=False, default_value=None),
            "profile_source": Field(StringSource, is_required=False, default_value="api"),
            "profile_dir": Field(Noneable(StringSource), is_required=False, default_value=None),
            "profile_cache_seconds": Field(IntSource, is_required=False, default_value=30),
            "step_jobs": Field(bool, is_required=False, default_value=False),
        }

    # Launch: resolve the profile first, so an unknown one fails before any Job exists.

    def launch_run(self, context: LaunchRunContext) -> None:
        self.check_step_jobs(context.dagster_run)
        run = context.dagster_run
        escalation = self.escalation_of(run)
        launch = self.plan_launch(run, escalation.choice if escalation else None)
        with self._in_flight_while(run, launch, escalation) as in_flight:
            try:
                super().launch_run(context)
            except BaseException:
                if launch is not None and in_flight.job is not None:  # no Job: say which one and where
                    self._report_profile_job(run, launch, escalation, in_flight.job, created=False)
                raise
        if launch is not None:
            self._record_tags(run, launch, escalation, launched=True)

    def resume_run(self, context: ResumeRunContext) -> None:
        self.check_step_jobs(context.dagster_run)
        run = context.dagster_run
        launch = self.plan_launch(run)
        with self._in_flight_while(run, launch, None) as in_flight:
            try:
                super().resume_run(context)
            except BaseException:
                if launch is not None and in_flight.job is not None:
                    self._report_profile_job(run, launch, None, in_flight.job, created=False)
                raise
        if launch is not None:
            self._record_tags(run, launch, None, launched=False)

    def plan_launch(self, run: DagsterRun, choice: ProfileChoice | None = None) -> ProfileLaunch | None:
        """The run's ``ProfileLaunch``; None when no profile applies, ``ProfileError`` for an unknown one.

        ``choice`` overrides the run's own tags (an escalated retry).
        """
        resolved = self.resolve_profile(run, choice)
        if resolved is None:
            return None
        user_layers = K8sContainerContext.create_for_run(
            run, None, include_run_tags=True
        ).validate_user_k8s_config_for_run(
            self.only_allow_user_defined_k8s_config_fields, self.only_allow_user_defined_env_vars
        )
        if self._launcher_layer is None:
            self._launcher_layer = launcher_context(self)
        return profile_launch(
            run,
            self,
            resolved,
            user_layers,
            launcher_layer=self._launcher_layer,
            profile_layer=self._profile_layer(resolved.template),
        )

    def _profile_layer(self, template: dict[str, Any]) -> K8sContainerContext:
        name = template["metadata"]["name"]
        cached = self._profile_layers.get(name)
        if cached is not None and cached[0] is template:
            return cached[1]
        layer = profile_context(template)
        self._profile_layers[name] = (template, layer)
        return layer

    def resolve_profile(self, run: DagsterRun, choice: ProfileChoice | None = None) -> ResolvedProfile | None:
        """The run's profile and its PodTemplate; ``ProfileError`` if it names one that does not exist."""
        if choice is None:
            # The job snapshot is read (and deserialized) only when the run tag does not already decide.
            job_tags, op_tags = ({}, {}) if PROFILE_TAG in run.tags else self._job_and_op_tags(run)
            choice = select_profile(run.tags, job_tags, op_tags, self.default_profile)
        if choice is None:
            return None
        return self.resolve_choice(choice)

    def resolve_choice(self, choice: ProfileChoice) -> ResolvedProfile:
        """``choice`` with its PodTemplate; ``ProfileError`` naming the available profiles if it has none."""
        name = template_name(self.platform_name, choice.name)
        template = self.templates.get(name)
        if template is None:
            available = self.templates.available_profiles()
            listing = ", ".join(available) if available else "none"
            raise ProfileError(
                f"Resource profile {choice.name!r} (from the {choice.source}) does not exist: there is no "
                f"PodTemplate {name!r} in namespace {self.job_namespace!r}. Available profiles: {listing}. "
                f"Set {PROFILE_TAG} to one of them, or add the profile to platform.yaml."
            )
        return ResolvedProfile(choice, template)

    def escalation_of(self, run: DagsterRun) -> Escalation | None:
        """The escalation this run is, if it re-executes a run that was OOMKilled on a profile with
        ``escalate_to`` (Dagster's auto-retry, or a re-execution that keeps the parent's tags)."""
        parent_id = run.tags.get(PARENT_RUN_ID_TAG)
        parent = self._instance.get_run_by_id(parent_id) if parent_id else None
        if parent is None or parent.tags.get(OOM_TAG) != "true" or PROFILE_TAG not in parent.tags:
            return None
        parent_profile = parent.tags[PROFILE_TAG]
        # Dagster copies the parent's tags; a different profile tag is one the user set for this run.
        if run.tags.get(PROFILE_TAG, parent_profile) != parent_profile:
            return None
        template = self.templates.get(template_name(self.platform_name, parent_profile))
        target = escalation_target(template) if template else None
        if target is None:
            return None
        parent_rung = Rung(parent_profile, parent.tags.get(MEMORY_LIMIT_TAG) or "unknown")
        return Escalation(parent.run_id, parent_rung, parent.tags.get(LADDER_TAG), target)

    def _job_and_op_tags(self, run: DagsterRun) -> tuple[Mapping[str, str], dict[str, Mapping[str, str]]]:
        job_tags, op_tags = self._snapshot_job_and_op_tags(run)
        if self.uses_step_executor(run):  # ops' tags choose their step pods' profiles, not the run pod's
            return job_tags, {}
        return job_tags, op_tags

    def _snapshot_job_and_op_tags(
        self, run: DagsterRun
    ) -> tuple[Mapping[str, str], dict[str, Mapping[str, str]]]:
        snapshot_id = run.job_snapshot_id
        if snapshot_id is None:
            return {}, {}
        cached = self._snapshot_tags.get(snapshot_id)
        if cached is not None:
            return cached
        snapshot = self._instance.get_job_snapshot(snapshot_id)
        op_tags = {op.name: op.tags for op in snapshot.node_defs_snapshot.op_def_snaps}
        found = (snapshot.tags or {}, op_tags)
        if len(self._snapshot_tags) >= _SNAPSHOT_CACHE_SIZE:
            self._snapshot_tags.clear()  # many distinct jobs: start over rather than grow without bound
        self._snapshot_tags[snapshot_id] = found
        return found

    def uses_step_executor(self, run: DagsterRun) -> bool:
        """Whether the run executes with ``floe_platform.dagster.executor`` (one Job per step)."""
        snapshot_id = run.execution_plan_snapshot_id
        if not snapshot_id:
            return False
        known = self._step_executor_plans.get(snapshot_id)
        if known is None:  # one storage read per job version, not per launch or health check
            plan = self._instance.get_execution_plan_snapshot(snapshot_id)
            known = plan is not None and plan.executor_name == STEP_EXECUTOR_NAME
            if len(self._step_executor_plans) >= _PLAN_CACHE_SIZE:
                self._step_executor_plans.clear()
            self._step_executor_plans[snapshot_id] = known
        return known

    def check_step_jobs(self, run: DagsterRun) -> None:
        """Fail the launch of a step-executor run on a platform whose run pods may not launch Jobs."""
        if self.step_jobs or not self.uses_step_executor(run):
            return
        raise StepJobsDisabledError(
            f"Job {run.job_name!r} uses the executor {STEP_EXECUTOR_NAME!r}, which launches each step as its "
            "own Kubernetes Job from the run pod, but run pods here have no Kubernetes API access: set the "
            f"chart value {STEP_JOBS_SWITCH}=true (run launcher config step_jobs: true), or give the job "
            "another executor."
        )

    def get_container_context_for_run(self, dagster_run: DagsterRun) -> K8sContainerContext:
        """The same context ``launch_run`` gives the run pod, for every caller (launch, health, terminate)."""
        in_flight = self._in_flight.get(dagster_run.run_id)
        context = in_flight.context if in_flight is not None else self._planned_context(dagster_run)
        if self.step_jobs and self.uses_step_executor(dagster_run):
            return context.merge(_API_TOKEN_LAYER)
        return context

    def _planned_context(self, dagster_run: DagsterRun) -> K8sContainerContext:
        try:
            launch = self.plan_launch(dagster_run)
        except ProfileError:
            if dagster_run.status == DagsterRunStatus.NOT_STARTED:
                raise
            # A profile removed after its run launched must not break health checks or terminate.
            LOGGER.warning(
                "Profile of run %s no longer exists; using the launcher's config", dagster_run.run_id
            )
            launch = None
        if launch is None:
            return super().get_container_context_for_run(dagster_run)
        return launch.container_context

    @contextmanager
    def _in_flight_while(
        self, run: DagsterRun, launch: ProfileLaunch | None, escalation: Escalation | None
    ) -> Iterator[_InFlight]:
        """Within the block, ``get_container_context_for_run(run)`` is ``launch``'s context, or the stock
        one when ``launch`` is None (no profile, or a caller that only needs the namespace)."""
        context = launch.container_context if launch else super().get_container_context_for_run(run)
        in_flight = self._in_flight[run.run_id] = _InFlight(context, launch, escalation)
        try:
            yield in_flight
        finally:
            self._in_flight.pop(run.run_id, None)

    def _report_run_worker_creating(self, run: DagsterRun, job_name: str, namespace: str) -> None:
        """Stock: an event before the Job is created. On a profile, the event waits for the Job (see
        ``_report_run_worker_created``), and is written here only if creating the Job fails."""
        in_flight = self._in_flight.get(run.run_id)
        if in_flight is None or in_flight.launch is None:
            super()._report_run_worker_creating(run, job_name, namespace)
            return
        in_flight.job = (job_name, namespace)

    def _report_run_worker_created(self, run: DagsterRun) -> None:
        """On a profile, one event instead of the stock two: the Job, its profile (or its escalation)."""
        in_flight = self._in_flight.get(run.run_id)
        if in_flight is None or in_flight.launch is None or in_flight.job is None:
            super()._report_run_worker_created(run)
            return
        job, in_flight.job = in_flight.job, None
        self._report_profile_job(run, in_flight.launch, in_flight.escalation, job, created=True)

    def _report_profile_job(
        self,
        run: DagsterRun,
        plan: ProfileLaunch,
        escalation: Escalation | None,
        job: tuple[str, str],
        *,
        created: bool,
    ) -> None:
        job_name, namespace = job
        choice = plan.resolved.choice
        limits = plan.effective_limits
        details = {
            "Kubernetes Job name": job_name,
            "Kubernetes Namespace": namespace,
            "Run ID": run.run_id,
            "Profile": choice.name,
            "Chosen by": choice.source,
            "PodTemplate": template_name(self.platform_name, choice.name),
            "Limits": ", ".join(f"{key} {value}" for key, value in sorted(limits.items())),
        }
        details.update({f"Recomputed {name}": value for name, value in plan.recomputed.items()})
        on_profile = f"on resource profile {choice.name!r} ({choice.source})"
        if escalation is not None and created:
            child = Rung(choice.name, limits.get("memory", "unknown"))
            message = retry_sentence(escalation.parent_run_id, escalation.parent, child)
            details["Escalation ladder"] = describe_ladder(escalation.ladder(child))
        elif created:
            message = f"Kubernetes run worker job created {on_profile}"
        else:
            message = f"Creating Kubernetes run worker job {on_profile}"
        # The escalation's sentence stands alone (no "[ProfileK8sRunLauncher]" prefix): it is the run's story.
        cls = None if escalation is not None and created else self.__class__
        self._instance.report_engine_event(message, run, EngineEventData(details), cls=cls)

    def _record_tags(
        self, run: DagsterRun, launch: ProfileLaunch, escalation: Escalation | None, *, launched: bool
    ) -> None:
        choice = launch.resolved.choice
        limits = launch.effective_limits
        tags = {PROFILE_TAG: choice.name, **resource_tags(launch.effective_requests, limits)}
        if escalation is not None:
            child = Rung(choice.name, limits.get("memory", "unknown"))
            tags[LADDER_TAG] = format_ladder(escalation.ladder(child))
        if launched and run.tags.get(OOM_TAG) == "true":
            tags[OOM_TAG] = "false"  # copied from an OOM-killed parent by Dagster: not this run's
        self._instance.add_run_tags(run.run_id, tags)

    # Health: name an OOM kill in one sentence instead of "K8s job failed"; escalate it.

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        with self._in_flight_while(run, None, None):
            result: CheckRunHealthResult = super().check_run_worker_health(run)
        if result.status != WorkerStatus.FAILED:
            return result
        oom = self.oom_message(run)
        if oom:
            self._mark_oom_killed(run)
        return CheckRunHealthResult(WorkerStatus.FAILED, oom) if oom else result

    def get_run_worker_debug_info(
        self, run: DagsterRun, include_container_logs: bool | None = True
    ) -> str | None:
        with self._in_flight_while(run, None, None):
            debug_info = super().get_run_worker_debug_info(run, include_container_logs=include_container_logs)
        oom = self.oom_message(run)
        if oom is None:
            return debug_info
        return f"{oom}\n{debug_info}" if debug_info else oom

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None:
            return _stock_terminate(self, run_id)
        with self._in_flight_while(run, None, None):
            return _stock_terminate(self, run_id)

    def _mark_oom_killed(self, run: DagsterRun) -> None:
        """``floe/oom-killed``, and a retry in ``dagster/max_retries`` when the profile escalates (one write,
        before run monitoring fails the run: Dagster decides on the retry from the tags at that moment)."""
        tags = {OOM_TAG: "true"}  # right-sizing counts OOM kills, and the retry's launch escalates on it
        if self._escalation_target(run) and self._instance.run_retries_enabled:
            group = self._instance.get_run_group(run.run_id)
            runs_in_group = len(list(group[1])) if group else 1
            budget = retry_budget(
                run.tags.get(MAX_RETRIES_TAG), self._instance.run_retries_max_retries, runs_in_group
            )
            if budget is not None:
                tags[MAX_RETRIES_TAG] = budget
        self._instance.add_run_tags(run.run_id, tags)

    def _escalation_target(self, run: DagsterRun) -> str | None:
        profile = run.tags.get(PROFILE_TAG)
        template = self.templates.get(template_name(self.platform_name, profile)) if profile else None
        return escalation_target(template) if template else None

    def oom_message(self, run: DagsterRun) -> str | None:
        """One sentence when a pod of this run's Job was OOMKilled, else None."""
        namespace = super().get_container_context_for_run(run).namespace
        job_name = _job_name(run.run_id, resume_attempt_number=self._get_resume_attempt_number(run))
        pod = oom_killed_pod(self._api_client.core_api, namespace, job_name)
        if pod is None:
            return None
        return _oom_sentence(pod, run, self._escalation_target(run), self._instance.run_retries_enabled)


def oom_killed_pod(core_api: Any, namespace: str | None, job_name: str) -> Any | None:
    """A pod of Job ``job_name`` that was OOMKilled, else None (also when the pods cannot be listed)."""
    try:
        pods = core_api.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}")
    except Exception:  # ApiException, urllib3 connection errors and timeouts alike
        # No pod access must not break run monitoring: the stock message still goes out.
        LOGGER.warning("Could not list the pods of Job %s to look for an OOM kill", job_name, exc_info=True)
        return None
    for pod in pods.items:
        # Filtered here as well: the selector is a server-side convenience, not a guarantee.
        if (pod.metadata.labels or {}).get("job-name") == job_name and _was_oom_killed(pod):
            return pod
    return None


@dataclass
class _InFlight:
    """A run inside launch_run, resume_run or a health check, debug info or terminate call."""

    context: K8sContainerContext
    launch: ProfileLaunch | None
    escalation: Escalation | None
    job: tuple[str, str] | None = None
    """The Job's name and namespace, from the stock "creating" hook until its event is written."""


@dataclass(frozen=True)
class Escalation:
    """A retry of a run OOMKilled on ``parent``'s profile, launched on ``target``."""

    parent_run_id: str
    parent: Rung
    parent_ladder: str | None
    target: str

    @property
    def choice(self) -> ProfileChoice:
        return ProfileChoice(self.target, f"escalation after OOM of run {self.parent_run_id}")

    def ladder(self, child: Rung) -> list[Rung]:
        return climbed_ladder(self.parent_ladder, self.parent, child)


def _was_oom_killed(pod: Any) -> bool:
    for status in (pod.status.container_statuses if pod.status else None) or []:
        for state in (status.state, status.last_state):
            terminated = state.terminated if state else None
            if terminated is not None and terminated.reason == "OOMKilled":
                return True
    return False


def _oom_sentence(pod: Any, run: DagsterRun, target: str | None, retries_enabled: bool) -> str:
    return oom_sentence(
        pod,
        run.tags.get(PROFILE_TAG),
        run.tags.get(MEMORY_LIMIT_TAG),
        target=target,
        retries_enabled=retries_enabled,
        ladder=parse_ladder(run.tags.get(LADDER_TAG)),
    )


def oom_sentence(
    pod: Any,
    profile: str | None,
    memory: str | None,
    worker: str = "Run worker",
    tag: str = "run tag",
    *,
    target: str | None = None,
    retries_enabled: bool = False,
    ladder: Sequence[Rung] = (),
) -> str:
    """The one sentence of an OOM kill: the pod, its memory limit and profile, how to fix it, and where the
    escalation ladder (``target``, the rungs tried) takes it."""
    memory = memory or _pod_memory_limit(pod) or "unknown"
    killed = f"{worker} pod {pod.metadata.name} was OOMKilled"
    if profile is None:
        return (
            f"{killed}: it used more than its memory limit {memory}; "
            f"run it on a larger resource profile with the {tag} {PROFILE_TAG}."
        )
    used = f"it used more than the memory limit {memory} of resource profile {profile!r}"
    if target is not None and retries_enabled:
        return f"{killed}: {used}, which escalates to {target!r}; Dagster's run retries run it again there."
    if target is not None:
        return (
            f"{killed}: {used}, which escalates to {target!r}, but run_retries is not enabled in "
            f"dagster.yaml, so it is not retried; enable run_retries, or run it on {target!r} with the run "
            f"tag {PROFILE_TAG}."
        )
    tried = (
        f", the top of the escalation ladder tried ({describe_ladder(ladder)})"
        if len(ladder) > 1 and ladder[-1].profile == profile
        else ""
    )
    return (
        f"{killed}: {used}{tried}; raise limits.memory of {profile!r} in platform.yaml, run it on a larger "
        f"profile with the {tag} {PROFILE_TAG}, or lower DUCKDB_MEMORY_LIMIT so DuckDB spills sooner."
    )


def _pod_memory_limit(pod: Any) -> str | None:
    for container in pod.spec.containers if pod.spec else []:
        limits = container.resources.limits if container.resources else None
        if limits and "memory" in limits:
            return str(limits["memory"])
    return None

"""``profile_k8s_job_executor``: dagster-k8s's ``k8s_job_executor``, each step's pod shaped by a profile.

Each step of a run launches as its own Kubernetes Job, from the run pod, as with ``k8s_job_executor`` (same
config schema). The step's pod comes from the PodTemplate of the profile its op (or asset) tag
``floe/resource-profile`` names, else from the run's profile (the one ``ProfileK8sRunLauncher`` chose for
the run pod). Precedence of a step pod's config, lowest to highest:

1. the run launcher's config, then this executor's config (``step_k8s_config``, ``env_vars``, ...);
2. the step's profile PodTemplate;
3. the code location's container context;
4. the op's ``dagster-k8s/config`` tag, then the op's entry in ``per_step_k8s_config``.

The merge and the DUCKDB_* recomputation are the run launcher's own (``layer_on_profile``). As with the stock
executor, the run's ``dagster-k8s/config`` tag shapes the run pod only. An unknown step profile fails the
step before its Job is created, naming the profiles that exist; an OOM-killed step pod fails its step with
the launcher's sentence. The executor needs ``ProfileK8sRunLauncher`` with ``step_jobs: true`` (the chart's
``dagster.stepJobs.enabled``), which gives run pods the API token and the Role this needs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from dagster import executor
from dagster._core.definitions.executor_definition import multiple_process_executor_requirements
from dagster._core.events import DagsterEvent
from dagster._core.execution.plan.objects import StepFailureData
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig
from dagster._core.executor.base import Executor
from dagster._core.executor.init import InitExecutorContext
from dagster._core.executor.step_delegating import (
    CheckStepHealthResult,
    StepDelegatingExecutor,
    StepHandlerContext,
)
from dagster._utils.error import serializable_error_info_from_exc_info
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.executor import K8sStepHandler, k8s_job_executor
from dagster_k8s.job import UserDefinedDagsterK8sConfig, get_user_defined_k8s_config

from floe_platform.dagster.launcher import (
    STEP_EXECUTOR_NAME,
    STEP_JOBS_SWITCH,
    ProfileK8sRunLauncher,
    ResolvedProfile,
    StepJobsDisabledError,
    layer_on_profile,
    oom_killed_pod,
    oom_sentence,
)
from floe_platform.dagster.profiles import PROFILE_TAG, ProfileChoice, ProfileError
from floe_platform.render import PROFILE_LABEL

# The stock executor's fields, unchanged, so a job swaps k8s_job_executor for this one and keeps its config.
_STOCK_CONFIG: Any = k8s_job_executor.config_schema.config_type
_CONTEXT_FIELDS = (
    "image_pull_policy",
    "image_pull_secrets",
    "service_account_name",
    "env_config_maps",
    "env_secrets",
    "env_vars",
    "volume_mounts",
    "volumes",
    "labels",
    "resources",
    "scheduler_name",
    "security_context",
)


@executor(
    name=STEP_EXECUTOR_NAME,
    config_schema=_STOCK_CONFIG,
    requirements=multiple_process_executor_requirements(),
)
def profile_k8s_job_executor(init_context: InitExecutorContext) -> Executor:
    """Launch each step as a Kubernetes Job from its resource profile's PodTemplate (op tag, else the run's).

    Configured exactly like dagster-k8s's ``k8s_job_executor``.
    """
    launcher = init_context.instance.run_launcher
    if not isinstance(launcher, ProfileK8sRunLauncher):
        raise TypeError(
            f"The executor {STEP_EXECUTOR_NAME!r} needs the run launcher "
            "floe_platform.dagster.launcher.ProfileK8sRunLauncher in dagster.yaml, not "
            f"{type(launcher).__name__}."
        )
    if not launcher.step_jobs:
        raise StepJobsDisabledError(
            f"The executor {STEP_EXECUTOR_NAME!r} launches step Jobs from the run pod: set the chart value "
            f"{STEP_JOBS_SWITCH}=true (run launcher config step_jobs: true)."
        )
    config = init_context.executor_config
    handler = ProfileK8sStepHandler(
        image=cast(str | None, config.get("job_image")),
        container_context=executor_container_context(config),
        load_incluster_config=cast(bool, config.get("load_incluster_config", launcher.load_incluster_config)),
        kubeconfig_file=cast(str | None, config.get("kubeconfig_file", launcher.kubeconfig_file)),
        per_step_k8s_config=config.get("per_step_k8s_config", {}),
        enable_owner_references=bool(config.get("enable_owner_references")),
    )
    return StepDelegatingExecutor(
        handler,
        retries=cast(RetryMode, RetryMode.from_config(cast(dict[str, Any], config["retries"]))),
        max_concurrent=cast(int | None, config.get("max_concurrent")),
        tag_concurrency_limits=cast(list[dict[str, Any]] | None, config.get("tag_concurrency_limits")),
        should_verify_step=True,
        step_dependency_config=StepDependencyConfig.from_config(
            cast(Any, config.get("step_dependency_config"))
        ),
    )


def executor_container_context(config: Mapping[str, Any]) -> K8sContainerContext:
    """The executor's own config as a container context (``step_k8s_config`` is its run_k8s_config)."""
    fields = {name: config.get(name) for name in _CONTEXT_FIELDS}
    return K8sContainerContext(
        namespace=config.get("job_namespace"),
        run_k8s_config=_config_from_dict(config.get("step_k8s_config", {})),
        **fields,
    )


class ProfileK8sStepHandler(K8sStepHandler):
    """dagster-k8s's step handler, each step's container context laid on its resource profile."""

    @property
    def name(self) -> str:
        return "ProfileK8sStepHandler"

    def launch_step(self, step_handler_context: StepHandlerContext) -> Iterator[DagsterEvent]:
        step_key = self._get_step_key(step_handler_context)
        try:
            self.step_profile(step_handler_context, step_key)
        except ProfileError:
            # Before any Job exists: the step fails with the message, the run goes on as for any failure.
            step_context = step_handler_context.get_step_context(step_key)
            error = serializable_error_info_from_exc_info(sys.exc_info())
            yield DagsterEvent.step_failure_event(step_context, _failure_data(error))
            return
        yield from super().launch_step(step_handler_context)

    def check_step_health(self, step_handler_context: StepHandlerContext) -> CheckStepHealthResult:
        result: CheckStepHealthResult = super().check_step_health(step_handler_context)
        if result.is_healthy:
            return result
        namespace = self._get_container_context(step_handler_context).namespace
        job_name = self._get_k8s_step_job_name(step_handler_context)
        pod = oom_killed_pod(self._api_client.core_api, namespace, job_name)
        if pod is None:
            return result
        profile = (pod.metadata.labels or {}).get(PROFILE_LABEL)
        return CheckStepHealthResult.unhealthy(oom_sentence(pod, profile, None, "Step worker", "op tag"))

    def step_profile(self, step_handler_context: StepHandlerContext, step_key: str) -> ResolvedProfile | None:
        """The step's profile: its op tag, else the run's; ``ProfileError`` for one that does not exist."""
        launcher = cast(ProfileK8sRunLauncher, step_handler_context.instance.run_launcher)
        tags = step_handler_context.step_tags[step_key]
        if PROFILE_TAG in tags:
            return launcher.resolve_choice(ProfileChoice(tags[PROFILE_TAG], f"op tag of step {step_key!r}"))
        return launcher.resolve_profile(step_handler_context.dagster_run)

    def _get_container_context(self, step_handler_context: StepHandlerContext) -> K8sContainerContext:
        """The four layers of the module docstring; the stock handler's, plus the profile as layer 2."""
        step_key = self._get_step_key(step_handler_context)
        run = step_handler_context.dagster_run
        launcher = cast(ProfileK8sRunLauncher, step_handler_context.instance.run_launcher)
        base = K8sContainerContext.create_for_run(
            run._replace(job_code_origin=None), launcher, include_run_tags=False
        ).merge(self._executor_container_context)
        op_name = step_handler_context.get_step_context(step_key).step.op_name
        user_layers = (
            K8sContainerContext.create_for_run(run, None, include_run_tags=False)
            .merge(K8sContainerContext(run_k8s_config=_user_config(step_handler_context.step_tags[step_key])))
            .merge(
                K8sContainerContext(
                    run_k8s_config=_config_from_dict(self._per_step_k8s_config.get(op_name, {}))
                )
            )
            .validate_user_k8s_config_for_run(
                launcher.only_allow_user_defined_k8s_config_fields, launcher.only_allow_user_defined_env_vars
            )
        )
        resolved = self.step_profile(step_handler_context, step_key)
        if resolved is None:  # no profile anywhere: the stock executor's pod
            return base.merge(user_layers)
        return layer_on_profile(base, resolved, user_layers).container_context


# dagster leaves these untyped; typed aliases keep mypy --strict meaningful at the call sites.
_config_from_dict: Callable[[Mapping[str, Any]], UserDefinedDagsterK8sConfig] = (
    UserDefinedDagsterK8sConfig.from_dict
)
_user_config: Callable[[Mapping[str, str]], UserDefinedDagsterK8sConfig] = get_user_defined_k8s_config


def _failure_data(error: Any) -> StepFailureData:
    return StepFailureData(error=error, user_failure_data=None)  # type: ignore[no-untyped-call]

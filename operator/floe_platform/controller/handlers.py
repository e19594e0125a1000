"""The kopf shell: FloePlatform events -> ``reconcile`` -> status, events and retries. No logic of its own.

The same function handles create, update (of the spec), resume after a restart and the resync timer,
which repairs PodTemplates edited or deleted by hand. Handlers are synchronous: kopf runs them in its
thread pool, where the blocking kubernetes client belongs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes  # type: ignore[import-untyped]

from floe_platform.api import GROUP, PLURAL, VERSION
from floe_platform.config import ConfigError
from floe_platform.controller import status as floe_status
from floe_platform.controller.client import ApiError, TransientApiError, reconcile
from floe_platform.controller.plan import PlatformRef
from floe_platform.render.podtemplate import MANAGED_BY, MANAGED_BY_LABEL, PLATFORM_LABEL

FINALIZER = "floe.dev/operator"
DIFFBASE_FIELD = "status.lastHandledConfiguration"
PROGRESS_FIELD = "status.handlerProgress"
TOUCH_FIELD = "status.handlerTouch"
MAX_RETRY_DELAY = 60.0
INDEX = "floe_templates"
# One index per guardrail kind (kopf index ids are unique), keyed like INDEX.
GUARDRAIL_INDEXES = {"LimitRange": "floe_limitranges", "ResourceQuota": "floe_resourcequotas"}
_PLURALS = {"LimitRange": "limitranges", "ResourceQuota": "resourcequotas"}


@dataclass(frozen=True)
class OperatorOptions:
    """What ``floe operator`` passes in: where to watch and how often to resync."""

    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    resync_seconds: float = 20.0
    workers: int = 8


def register(registry: kopf.OperatorRegistry, options: OperatorOptions) -> None:
    """Attach the startup settings and the FloePlatform handlers to ``registry``."""
    resource = (GROUP, VERSION, PLURAL)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        apply_settings(settings, options)
        memo["core"] = kubernetes.client.CoreV1Api(make_api_client(options.workers))

    # A registry of our own starts without kopf's default login handlers: log in as kopf would with
    # the kubernetes client installed (in-cluster service account, else KUBECONFIG).
    kopf.on.login(registry=registry)(kopf.login_via_client)
    # Live PodTemplates come from a watch-fed index, so a resync of an unchanged platform makes no API
    # call at all (200 platforms resyncing would otherwise list the namespace ten times a second).
    kopf.index("v1", "podtemplates", registry=registry, id=INDEX, labels={MANAGED_BY_LABEL: MANAGED_BY})(
        index_template
    )
    for kind, index_id in GUARDRAIL_INDEXES.items():
        labels = {MANAGED_BY_LABEL: MANAGED_BY}
        kopf.index("v1", _PLURALS[kind], registry=registry, id=index_id, labels=labels)(index_guardrail)
    kopf.on.resume(*resource, registry=registry)(on_change)
    kopf.on.create(*resource, registry=registry)(on_change)
    kopf.on.update(*resource, field="spec", registry=registry)(on_change)
    kopf.timer(
        *resource,
        registry=registry,
        interval=options.resync_seconds,
        initial_delay=options.resync_seconds,
    )(on_resync)


def apply_settings(settings: kopf.OperatorSettings, options: OperatorOptions) -> None:
    """Every kopf setting in one place; the defaults notice a dead API far too slowly."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.StatusProgressStorage(
        field=PROGRESS_FIELD, touch_field=TOUCH_FIELD
    )
    # Progress and the last handled spec live in the status, not in annotations: the status is written
    # anyway after a reconcile, and annotations (kopf also marks each object it annotates) would cost a
    # second PATCH per FloePlatform, the status being a subresource. An object last handled by an older
    # operator (annotations only) is handled once more as new: reconcile is idempotent.
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field=DIFFBASE_FIELD)
    settings.posting.level = logging.WARNING  # Warning events (InvalidSpec, ApiError); info stays in logs
    settings.posting.reporting_component = "floe-operator"
    settings.watching.server_timeout = 60  # ask the server to end each watch; 410 Gone then relists
    settings.watching.client_timeout = 75
    settings.watching.connect_timeout = 5
    settings.watching.inactivity_timeout = 70
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 5
    settings.execution.max_workers = options.workers
    # Namespace scanning needs a cluster-wide namespace list; exact namespaces need none, so the
    # operator's RBAC stays namespaced. Globs such as 'team-*' do need it.
    settings.scanning.disabled = not any(set("*?[") & set(ns) for ns in options.namespaces)


def make_api_client(pool_size: int) -> kubernetes.client.ApiClient:
    """A client from the in-cluster service account, else from KUBECONFIG (as kopf itself logs in)."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    return kubernetes.client.ApiClient(configuration)


def credentials_problem() -> str | None:
    """Why ``make_api_client`` cannot log in, in one line with the fix, or None when it can.

    Checked before kopf starts: kopf would retry the startup handler every minute, printing a traceback each
    time, while /healthz never comes up.
    """
    try:
        kubernetes.config.load_incluster_config(client_configuration=kubernetes.client.Configuration())
        return None
    except kubernetes.config.ConfigException as error:
        in_cluster = " ".join(str(error).split()).rstrip(".")
    env = os.environ.get("KUBECONFIG", "")
    paths = [path for path in env.split(os.pathsep) if path] or [os.path.expanduser("~/.kube/config")]
    existing = [path for path in paths if os.path.isfile(path)]
    if not existing:
        where = "KUBECONFIG names no existing file" if env else "KUBECONFIG is not set"
        kubeconfig = f"no kubeconfig at {os.pathsep.join(paths)} ({where})"
    else:
        try:
            kubernetes.config.load_kube_config(client_configuration=kubernetes.client.Configuration())
            return None
        except Exception as error:  # YAML, I/O and config errors alike mean "unusable"
            reason = " ".join(str(error).split())
            kubeconfig = f"the kubeconfig {os.pathsep.join(existing)} is unusable ({reason})"
    return (
        f"floe operator: no Kubernetes credentials: not in a cluster ({in_cluster}) and {kubeconfig}; "
        "set KUBECONFIG to a working kubeconfig (or create ~/.kube/config), or run the operator in a pod "
        "with a ServiceAccount"
    )


Logger = logging.Logger | logging.LoggerAdapter[Any]
TemplateKey = tuple[str | None, str | None]
Known = tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]
"""The live children from the indexes: PodTemplates, and the guardrails by kind."""


# What reconcile reads of a live child's metadata (plan.in_sync, patch_operations, owned_by); the rest,
# managedFields above all, would only fill the operator's memory.
_INDEXED_METADATA = ("name", "namespace", "labels", "annotations", "ownerReferences")


def _indexed(body: kopf.Body, content: str) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    kept = {key: metadata[key] for key in _INDEXED_METADATA if key in metadata}
    return {"metadata": kept, content: body.get(content)}


def index_template(
    *, namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[TemplateKey, dict[str, Any]]:
    """Index our PodTemplates by (namespace, platform), keeping what ``reconcile`` compares."""
    return {(namespace, labels.get(PLATFORM_LABEL)): _indexed(body, "template")}


def index_guardrail(
    *, namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[TemplateKey, dict[str, Any]]:
    """Index our LimitRanges and ResourceQuotas like the PodTemplates, keeping their ``spec``."""
    return {(namespace, labels.get(PLATFORM_LABEL)): _indexed(body, "spec")}


def known_templates(index: kopf.Index[TemplateKey, dict[str, Any]], body: kopf.Body) -> list[dict[str, Any]]:
    return list(index.get((body["metadata"]["namespace"], body["metadata"]["name"]), []))


def known_guardrails(indexes: Mapping[str, Any], body: kopf.Body) -> dict[str, list[dict[str, Any]]]:
    return {kind: known_templates(indexes[index_id], body) for kind, index_id in GUARDRAIL_INDEXES.items()}


def on_change(
    *, body: kopf.Body, patch: kopf.Patch, memo: Any, retry: int, logger: Logger, **kwargs: Any
) -> None:
    """Create, spec update and resume: reconcile now, report, and retry transient failures."""
    known = known_templates(kwargs[INDEX], body)
    guardrails = known_guardrails(kwargs, body)
    sync(memo["core"], body, patch, logger, known=(known, guardrails), retry=retry, always_warn=True)


def on_resync(*, body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Logger, **kwargs: Any) -> None:
    """Periodic resync: repairs drift; the next tick is the retry, so nothing is raised."""
    known = known_templates(kwargs[INDEX], body)
    guardrails = known_guardrails(kwargs, body)
    sync(memo["core"], body, patch, logger, known=(known, guardrails), retry=None, always_warn=False)


def sync(
    core: kubernetes.client.CoreV1Api,
    body: kopf.Body,
    patch: kopf.Patch,
    logger: Logger,
    *,
    known: Known | None,
    retry: int | None,
    always_warn: bool,
) -> None:
    """Reconcile ``body`` and put the result in ``patch.status`` (only when it changed)."""
    platform = PlatformRef.from_body(body)
    current = body.get("status")
    timestamp = floe_status.now()
    try:
        outcome = reconcile(core, body, *(known or (None, None)))
    except ConfigError as error:
        new = floe_status.invalid_spec_status(current, platform.generation, error.lines, timestamp)
        _report(
            body,
            patch,
            current,
            new,
            reason=floe_status.INVALID_SPEC,
            message="\n".join(error.lines),
            warn=always_warn,
        )
        return
    except ApiError as error:
        transient = isinstance(error, TransientApiError)
        new = floe_status.api_error_status(
            current, platform.generation, str(error), transient=transient, timestamp=timestamp
        )
        warn = always_warn and not transient
        _report(body, patch, current, new, reason=floe_status.API_ERROR, message=str(error), warn=warn)
        if transient and retry is not None:
            raise kopf.TemporaryError(str(error), delay=min(MAX_RETRY_DELAY, 2.0**retry)) from error
        return
    if outcome.changed:
        logger.info(
            "Children: created %s, patched %s, deleted %s",
            outcome.created,
            outcome.patched,
            outcome.deleted,
        )
    new = floe_status.reconciled_status(
        current, platform.generation, outcome.profiles, timestamp, outcome.guardrails
    )
    _report(body, patch, current, new, reason="", message="", warn=False)


def _report(
    body: kopf.Body,
    patch: kopf.Patch,
    current: Mapping[str, Any] | None,
    new: dict[str, Any],
    *,
    reason: str,
    message: str,
    warn: bool,
) -> None:
    """Write the status if it changed; post a Warning event on a change, or always when ``warn``."""
    changed = not floe_status.same_status(current, new)
    if changed:
        for key, value in new.items():
            patch.status[key] = value
    if reason and (changed or warn):
        kopf.warn(body, reason=reason, message=message)

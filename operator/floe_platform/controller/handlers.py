"""The kopf shell: FloePlatform events -> ``reconcile`` -> status, events and retries. No logic of its own.

The same function handles create, update (of the spec) and resume after a restart. Drift is repaired as
it happens: a PodTemplate, LimitRange or ResourceQuota of ours that is edited or deleted by hand is an
event on the operator's watch, and its FloePlatform is reconciled at once. A resync loop of our own
re-checks every FloePlatform periodically, which also retries one whose last reconcile failed for good
(a 403 fixed since). Neither is a kopf timer: a kopf timer puts a finalizer on every FloePlatform, which
costs a PATCH and a watch round trip before the first create, and leaves FloePlatforms stuck Terminating
whenever the operator is not running. The children are owned (``ownerReferences``), so Kubernetes'
garbage collector deletes them with their FloePlatform, without the operator.

Handlers are synchronous: kopf runs them in its thread pool, where the operator's blocking API client
(``controller.kubeapi``) belongs.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
import urllib3

from floe_platform.api import API_VERSION, GROUP, KIND, PLURAL, VERSION
from floe_platform.config import ConfigError
from floe_platform.controller import status as floe_status
from floe_platform.controller.client import ApiError, TransientApiError, reconcile
from floe_platform.controller.kubeapi import ApiStatusError, Credentials, KubeClient
from floe_platform.controller.plan import PlatformRef
from floe_platform.render.podtemplate import MANAGED_BY, MANAGED_BY_LABEL, PLATFORM_LABEL

# No longer added; kopf removes it from FloePlatforms that an earlier version of the operator marked.
FINALIZER = "floe.dev/operator"
DIFFBASE_FIELD = "status.lastHandledConfiguration"
PROGRESS_FIELD = "status.handlerProgress"
TOUCH_FIELD = "status.handlerTouch"
MAX_RETRY_DELAY = 60.0
INDEX = "floe_templates"
PLATFORM_INDEX = "floe_platforms"
# One index per guardrail kind (kopf index ids are unique), keyed like INDEX.
GUARDRAIL_INDEXES = {"LimitRange": "floe_limitranges", "ResourceQuota": "floe_resourcequotas"}
_PLURALS = {"LimitRange": "limitranges", "ResourceQuota": "resourcequotas"}
STATUS_MERGE_PATCH = "application/merge-patch+json"
REPORTING_COMPONENT = "floe-operator"


@dataclass(frozen=True)
class OperatorOptions:
    """What ``floe operator`` passes in: where to watch and how often to resync."""

    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    resync_seconds: float = 20.0
    workers: int = 8


def register(registry: kopf.OperatorRegistry, options: OperatorOptions, credentials: Credentials) -> None:
    """Attach the startup settings and the FloePlatform handlers to ``registry``."""
    resource = (GROUP, VERSION, PLURAL)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        apply_settings(settings, options)
        memo["core"] = KubeClient(credentials, pool_size=options.workers)

    # kopf and the reconciler share one set of credentials; kopf asks again after a 401, which re-reads
    # a rotated ServiceAccount token.
    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        info: kopf.ConnectionInfo = credentials.connection_info()
        return info

    # Live PodTemplates come from a watch-fed index, so a resync of an unchanged platform makes no API
    # call at all (200 platforms resyncing would otherwise list the namespace ten times a second).
    managed = {MANAGED_BY_LABEL: MANAGED_BY}
    kopf.index("v1", "podtemplates", registry=registry, id=INDEX, labels=managed)(index_template)
    for kind, index_id in GUARDRAIL_INDEXES.items():
        kopf.index("v1", _PLURALS[kind], registry=registry, id=index_id, labels=managed)(index_guardrail)
    kopf.index(*resource, registry=registry, id=PLATFORM_INDEX)(index_platform)
    kopf.on.resume(*resource, registry=registry)(on_change)
    kopf.on.create(*resource, registry=registry)(on_change)
    kopf.on.update(*resource, field="spec", registry=registry)(on_change)
    for plural in ("podtemplates", *_PLURALS.values()):
        # Creations are our own writes (or a copy that reconcile leaves alone): filtered out in the event
        # loop, without a trip to the thread pool for each of the thousands of them.
        kopf.on.event("v1", plural, registry=registry, labels=managed, when=changed_or_deleted)(
            on_child_event
        )

    @kopf.on.startup(registry=registry)
    async def start_resync(memo: kopf.Memo, **indexes: Any) -> None:
        memo["resync"] = asyncio.create_task(resync_forever(memo, indexes, options.resync_seconds))

    @kopf.on.cleanup(registry=registry)
    async def stop_resync(memo: kopf.Memo, **_: Any) -> None:
        memo["resync"].cancel()


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
    settings.posting.reporting_component = REPORTING_COMPONENT
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


Logger = logging.Logger | logging.LoggerAdapter[Any]
Warn = Callable[[kopf.Body, str, str], None]
"""Posts a Warning event: (FloePlatform, reason, message)."""
TemplateKey = tuple[str | None, str | None]
Known = tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]
"""The live children from the indexes: PodTemplates, and the guardrails by kind."""


# What reconcile reads of a live child's metadata (plan.in_sync, patch_operations, owned_by); the rest,
# managedFields above all, would only fill the operator's memory.
_INDEXED_METADATA = ("name", "namespace", "labels", "annotations", "ownerReferences")


def _indexed(body: kopf.Body, content: str) -> str:
    """What reconcile reads of a child, as compact JSON: a PodTemplate held as Python dicts and strings
    takes several times the memory of its JSON text, and an operator indexes thousands of them, while a
    reconcile parses only the few of the one FloePlatform it handles."""
    metadata = body.get("metadata") or {}
    kept = {key: metadata[key] for key in _INDEXED_METADATA if key in metadata}
    return _compact({"metadata": kept, content: body.get(content)})


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def index_template(
    *, namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[TemplateKey, str]:
    """Index our PodTemplates by (namespace, platform), keeping what ``reconcile`` compares."""
    return {(namespace, labels.get(PLATFORM_LABEL)): _indexed(body, "template")}


def index_guardrail(
    *, namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[TemplateKey, str]:
    """Index our LimitRanges and ResourceQuotas like the PodTemplates, keeping their ``spec``."""
    return {(namespace, labels.get(PLATFORM_LABEL)): _indexed(body, "spec")}


def index_platform(*, body: kopf.Body, **_: Any) -> dict[TemplateKey, str]:
    """Index FloePlatforms by (namespace, name): what a resync or a drifted child needs to reconcile one
    without waiting for an event on the FloePlatform itself."""
    metadata = body.get("metadata") or {}
    kept = (*_INDEXED_METADATA, "uid", "generation", "deletionTimestamp")
    return {
        (metadata.get("namespace"), metadata.get("name")): _compact(
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {key: metadata[key] for key in kept if metadata.get(key) is not None},
                "spec": body.get("spec"),
                "status": body.get("status"),
            }
        )
    }


def known_templates(index: kopf.Index[TemplateKey, str], body: kopf.Body) -> list[dict[str, Any]]:
    return [
        json.loads(text) for text in index.get((body["metadata"]["namespace"], body["metadata"]["name"]), [])
    ]


def known_guardrails(indexes: Mapping[str, Any], body: kopf.Body) -> dict[str, list[dict[str, Any]]]:
    return {kind: known_templates(indexes[index_id], body) for kind, index_id in GUARDRAIL_INDEXES.items()}


def on_change(
    *, body: kopf.Body, patch: kopf.Patch, memo: Any, retry: int, logger: Logger, **kwargs: Any
) -> None:
    """Create, spec update and resume: reconcile now, report, and retry transient failures."""
    known = known_templates(kwargs[INDEX], body)
    guardrails = known_guardrails(kwargs, body)
    sync(memo["core"], body, patch, logger, known=(known, guardrails), retry=retry, always_warn=True)


def changed_or_deleted(*, type: str | None, **_: Any) -> bool:
    return type in ("MODIFIED", "DELETED")


def on_child_event(
    *,
    labels: Mapping[str, str],
    namespace: str | None,
    memo: Any,
    logger: Logger,
    **kw: Any,
) -> None:
    """A child of ours was edited or deleted (by hand, or by our own write): reconcile its FloePlatform.

    The indexes already hold this event, so a child in sync costs a comparison and no request; one that
    drifted is put back at once.
    """
    platform = kw[PLATFORM_INDEX].get((namespace, labels.get(PLATFORM_LABEL)))
    for text in platform or []:
        resync_platform(memo["core"], kopf.Body(json.loads(text)), kw, logger)


async def resync_forever(memo: Any, indexes: Mapping[str, Any], interval: float) -> None:
    """Every ``interval`` seconds, re-check each FloePlatform the operator knows, one at a time."""
    logger = logging.getLogger("floe_platform.resync")
    while True:
        await asyncio.sleep(interval)
        platforms = [json.loads(text) for texts in list(indexes[PLATFORM_INDEX].values()) for text in texts]
        core = memo["core"]
        warn = functools.partial(post_warning, core)  # kopf's poster works only inside its handlers
        for platform in platforms:
            try:
                await asyncio.to_thread(resync_platform, core, kopf.Body(platform), indexes, logger, warn)
            except Exception:  # one platform's surprise must not end the resync of all the others
                logger.exception("Resync of %s failed", platform["metadata"].get("name"))
        logger.info("Resync: %d FloePlatform(s) checked", len(platforms))


def resync_platform(
    core: KubeClient, body: kopf.Body, indexes: Mapping[str, Any], logger: Logger, warn: Warn | None = None
) -> None:
    """Reconcile one FloePlatform outside kopf's handlers and write its status only if it changed; the next
    resync is the retry, so nothing is raised."""
    if body["metadata"].get("deletionTimestamp"):
        return  # being deleted: the garbage collector removes its children, which must not come back
    patch = kopf.Patch()
    known = (known_templates(indexes[INDEX], body), known_guardrails(indexes, body))
    sync(core, body, patch, logger, known=known, retry=None, always_warn=False, warn=warn)
    if patch.status:
        write_status(core, body, dict(patch.status))


def write_status(core: KubeClient, body: kopf.Body, status: dict[str, Any]) -> None:
    """Merge ``status`` into the FloePlatform's status (the subresource kopf writes too)."""
    metadata = body["metadata"]
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{metadata['namespace']}/{PLURAL}/{metadata['name']}/status"
    try:
        core.request("PATCH", path, body={"status": status}, content_type=STATUS_MERGE_PATCH)
    except ApiStatusError as error:
        if error.status != 404:  # deleted meanwhile: nothing to report on
            logging.getLogger("floe_platform.resync").warning("status of %s: %s", metadata["name"], error)
    except (OSError, urllib3.exceptions.HTTPError) as error:
        logging.getLogger("floe_platform.resync").warning("status of %s: %s", metadata["name"], error)


def sync(
    core: KubeClient,
    body: kopf.Body,
    patch: kopf.Patch,
    logger: Logger,
    *,
    known: Known | None,
    retry: int | None,
    always_warn: bool,
    warn: Warn | None = None,
) -> None:
    """Reconcile ``body`` and put the result in ``patch.status`` (only when it changed); Warning events go
    through ``warn`` (kopf's poster by default, which only works inside kopf's handlers)."""
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
            poster=warn,
        )
        return
    except ApiError as error:
        transient = isinstance(error, TransientApiError)
        new = floe_status.api_error_status(
            current, platform.generation, str(error), transient=transient, timestamp=timestamp
        )
        warned = always_warn and not transient
        _report(
            body,
            patch,
            current,
            new,
            reason=floe_status.API_ERROR,
            message=str(error),
            warn=warned,
            poster=warn,
        )
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
    poster: Warn | None = None,
) -> None:
    """Write the status if it changed; post a Warning event on a change, or always when ``warn``."""
    changed = not floe_status.same_status(current, new)
    if changed:
        for key, value in new.items():
            patch.status[key] = value
    if reason and (changed or warn):
        if poster is None:
            kopf.warn(body, reason=reason, message=message)
        else:
            poster(body, reason, message)


def post_warning(core: KubeClient, body: kopf.Body, reason: str, message: str) -> None:
    """A Warning event on the FloePlatform, written with the operator's client (for code outside kopf's
    handlers, where kopf's own poster has no queue); as kopf's, it never fails the caller."""
    metadata = body["metadata"]
    stamp = floe_status.now()
    event = {
        "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning",
        "source": {"component": REPORTING_COMPONENT},
        "reportingComponent": REPORTING_COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        core.request("POST", f"/api/v1/namespaces/{metadata['namespace']}/events", body=event)
    except (ApiStatusError, OSError, urllib3.exceptions.HTTPError) as error:
        logging.getLogger("floe_platform.resync").warning("event on %s: %s", metadata["name"], error)

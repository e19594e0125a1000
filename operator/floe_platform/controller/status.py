"""The FloePlatform status block: observedGeneration, one entry per profile, the namespace guardrails in
place, Ready and Reconciled.

Pure functions of the previous status and what just happened, so a condition's ``lastTransitionTime``
moves only when its status does, and an unchanged status compares equal (the shell then skips the write).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from floe_platform.controller.plan import ProfileTemplate

READY = "Ready"
RECONCILED = "Reconciled"
INVALID_SPEC = "InvalidSpec"
API_ERROR = "ApiError"
RETRYING = "Retrying"
NAMESPACE_LIMITS = "namespaceLimits"


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    previous: Mapping[str, Any] | None,
    kind: str,
    ok: bool,
    reason: str,
    message: str,
    *,
    generation: int,
    timestamp: str,
) -> dict[str, Any]:
    """One condition; keeps the previous ``lastTransitionTime`` when the status value is unchanged."""
    status = "True" if ok else "False"
    unchanged = previous is not None and previous.get("status") == status
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": previous["lastTransitionTime"]
        if unchanged and previous is not None and "lastTransitionTime" in previous
        else timestamp,
        "observedGeneration": generation,
    }


def _previous_conditions(status: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    return {item.get("type", ""): item for item in (status or {}).get("conditions") or []}


def _block(
    status: Mapping[str, Any] | None,
    generation: int,
    profiles: Sequence[Mapping[str, Any]],
    *,
    ready: tuple[bool, str, str],
    reconciled: tuple[bool, str, str],
    timestamp: str,
    guardrails: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    previous = _previous_conditions(status)
    if guardrails is None:  # nothing was applied: the guardrails in place are the previous ones
        guardrails = (status or {}).get(NAMESPACE_LIMITS) or []
    return {
        "observedGeneration": generation,
        "profileNames": ",".join(str(profile["name"]) for profile in profiles),
        "profiles": [dict(profile) for profile in profiles],
        NAMESPACE_LIMITS: [dict(guardrail) for guardrail in guardrails],
        "conditions": [
            condition(previous.get(READY), READY, *ready, generation=generation, timestamp=timestamp),
            condition(
                previous.get(RECONCILED), RECONCILED, *reconciled, generation=generation, timestamp=timestamp
            ),
        ],
    }


def reconciled_status(
    status: Mapping[str, Any] | None,
    generation: int,
    profiles: Sequence[ProfileTemplate],
    timestamp: str,
    guardrails: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """Every profile's PodTemplate, and each namespace guardrail ``{kind, name}``, matches the spec."""
    count = len(profiles)
    return _block(
        status,
        generation,
        [profile.as_status() for profile in profiles],
        ready=(True, RECONCILED, f"{count} PodTemplate(s) match the spec"),
        reconciled=(True, "Applied", "every profile's PodTemplate is in place; no others remain"),
        timestamp=timestamp,
        guardrails=guardrails,
    )


def invalid_spec_status(
    status: Mapping[str, Any] | None, generation: int, lines: Sequence[str], timestamp: str
) -> dict[str, Any]:
    """The spec failed validation: nothing was written, the previous templates (and entries) stay."""
    message = "; ".join(lines) + " (existing PodTemplates and namespace limits were left unchanged)"
    kept = (status or {}).get("profiles") or []
    failed = (False, INVALID_SPEC, message)
    return _block(status, generation, kept, ready=failed, reconciled=failed, timestamp=timestamp)


def api_error_status(
    status: Mapping[str, Any] | None, generation: int, message: str, *, transient: bool, timestamp: str
) -> dict[str, Any]:
    """An API call failed. A transient failure is retried and leaves Ready as it was."""
    previous = _previous_conditions(status).get(READY)
    kept = (status or {}).get("profiles") or []
    if transient and previous is not None:
        ready = (previous.get("status") == "True", str(previous.get("reason")), str(previous.get("message")))
        reconciled = (False, RETRYING, f"{message}; retrying with backoff")
    else:
        ready = (False, API_ERROR, message)
        reconciled = (False, RETRYING if transient else API_ERROR, message)
    return _block(status, generation, kept, ready=ready, reconciled=reconciled, timestamp=timestamp)


def same_status(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` would change anything the operator owns in ``current``."""
    current = current or {}
    return all(current.get(key) == value for key, value in new.items())

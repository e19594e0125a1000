"""Escalation on OOM: what the launcher decides when a run's pod was OOMKilled, as pure functions.

A profile's ``escalate_to`` reaches the launcher as the PodTemplate annotation ``floe.dev/escalate-to``.
Retrying is Dagster's own (run retries, ``dagster/max_retries``, the parent/root run tags); the launcher
only

- makes sure an OOM kill on a profile that escalates leaves a retry in the budget (``retry_budget``),
- launches the retry of an OOM-killed run on the profile its profile escalates to, and
- records the rungs tried in the run tag ``floe/escalation-ladder`` (``small:2Gi,transform:12Gi``), which a
  retry inherits from its parent as Dagster copies run tags, so the last rung's sentence can name them.

No Dagster, no API client here: plain strings and dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from floe_platform.render.podtemplate import ESCALATE_ANNOTATION

LADDER_TAG = "floe/escalation-ladder"
"""The profiles (and memory limits) an escalated run and its parents ran on, lowest first."""


@dataclass(frozen=True)
class Rung:
    """One profile of the ladder as a run got it: its name and the memory limit the pod had."""

    profile: str
    memory: str

    def __str__(self) -> str:
        return f"{self.profile!r} ({self.memory})"


def escalation_target(pod_template: Mapping[str, Any]) -> str | None:
    """The profile this PodTemplate's profile escalates to, or None at the top of a ladder."""
    annotations = pod_template["metadata"].get("annotations") or {}
    return annotations.get(ESCALATE_ANNOTATION) or None


def parse_ladder(text: str | None) -> list[Rung]:
    """The rungs in a ``floe/escalation-ladder`` tag; an empty or garbled entry is skipped."""
    rungs = []
    for entry in (text or "").split(","):
        profile, _, memory = entry.partition(":")
        if profile and memory:
            rungs.append(Rung(profile, memory))
    return rungs


def format_ladder(rungs: Sequence[Rung]) -> str:
    return ",".join(f"{rung.profile}:{rung.memory}" for rung in rungs)


def climbed_ladder(parent_tag: str | None, parent: Rung, child: Rung) -> list[Rung]:
    """The ladder of a retry: its parent's (or just the parent's rung), then its own rung."""
    rungs = parse_ladder(parent_tag)
    if not rungs or rungs[-1] != parent:
        rungs.append(parent)
    return [*rungs, child]


def describe_ladder(rungs: Sequence[Rung]) -> str:
    """``'small' (2Gi) -> 'transform' (12Gi) -> 'large' (48Gi)``."""
    return " -> ".join(str(rung) for rung in rungs)


def retry_sentence(parent_run_id: str, parent: Rung, child: Rung) -> str:
    """The engine event of an escalated run."""
    return f"Retrying on profile {child} after run {parent_run_id} was OOMKilled on {parent}"


def retry_budget(max_retries_tag: str | None, instance_max_retries: int, runs_in_group: int) -> str | None:
    """The ``dagster/max_retries`` an OOM-killed run on an escalating profile needs, or None if it has it.

    Dagster retries a failed run while its run group (the root and every retry so far) has at most
    ``max_retries`` runs, so each rung needs the budget to reach the group's size. Escalations count as
    retries, as every retry does in Dagster; a larger budget the user set is kept.
    """
    try:
        current = int(max_retries_tag) if max_retries_tag is not None else instance_max_retries
    except ValueError:
        current = 0  # Dagster itself retries nothing on an unparsable tag; the OOM still gets its rung
    return str(runs_in_group) if current < runs_in_group else None

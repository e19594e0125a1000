"""The pure half of escalation on OOM (floe_platform.dagster.escalation), over the renderer's templates."""

from __future__ import annotations

import pytest

from floe_platform.config import load_platform_text
from floe_platform.dagster.escalation import (
    Rung,
    climbed_ladder,
    describe_ladder,
    escalation_target,
    format_ladder,
    parse_ladder,
    retry_budget,
    retry_sentence,
)
from floe_platform.render import render_pod_templates

PLATFORM = load_platform_text(
    """
infrastructure:
  resource_profiles:
    small: {requests: {cpu: 500m, memory: 1Gi}, limits: {cpu: "1", memory: 2Gi}, escalate_to: transform}
    transform: {requests: {cpu: "2", memory: 8Gi}, limits: {cpu: "4", memory: 12Gi}, escalate_to: large}
    large: {requests: {cpu: "4", memory: 32Gi}, limits: {cpu: "8", memory: 48Gi}}
"""
)
SMALL, TRANSFORM, LARGE = Rung("small", "2Gi"), Rung("transform", "12Gi"), Rung("large", "48Gi")


def test_the_rendered_templates_carry_the_ladder_and_the_top_has_none() -> None:
    targets = {t["metadata"]["name"]: escalation_target(t) for t in render_pod_templates(PLATFORM)}
    assert targets == {"floe-small": "transform", "floe-transform": "large", "floe-large": None}


def test_the_retry_sentence_names_both_profiles_their_limits_and_the_failed_run() -> None:
    assert retry_sentence("4f2c", SMALL, TRANSFORM) == (
        "Retrying on profile 'transform' (12Gi) after run 4f2c was OOMKilled on 'small' (2Gi)"
    )


def test_the_ladder_climbs_from_the_parents_tag_and_round_trips() -> None:
    first = climbed_ladder(None, SMALL, TRANSFORM)
    assert first == [SMALL, TRANSFORM]
    second = climbed_ladder(format_ladder(first), TRANSFORM, LARGE)
    assert format_ladder(second) == "small:2Gi,transform:12Gi,large:48Gi"
    assert parse_ladder(format_ladder(second)) == second
    assert describe_ladder(second) == "'small' (2Gi) -> 'transform' (12Gi) -> 'large' (48Gi)"


def test_a_garbled_ladder_tag_is_read_as_far_as_it_goes() -> None:
    assert parse_ladder("small:2Gi,,nonsense,:3Gi") == [SMALL]
    assert parse_ladder(None) == []


@pytest.mark.parametrize(
    ("tag", "instance_default", "runs_in_group", "expected"),
    [
        pytest.param(None, 0, 1, "1", id="no-retries-first-oom"),
        pytest.param("1", 0, 2, "2", id="second-rung-inherits-1"),
        pytest.param("5", 0, 2, None, id="users-larger-budget-kept"),
        pytest.param(None, 3, 2, None, id="instance-default-suffices"),
        pytest.param("many", 0, 1, "1", id="unparsable-tag"),
    ],
)
def test_the_retry_budget_reaches_the_groups_size_and_never_lowers_the_users(
    tag: str | None, instance_default: int, runs_in_group: int, expected: str | None
) -> None:
    """Dagster retries while the run group has at most dagster/max_retries runs."""
    assert retry_budget(tag, instance_default, runs_in_group) == expected

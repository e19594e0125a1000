"""Namespace guardrails (``render.guardrails``): the LimitRange and the ResourceQuota from the profiles.

Pure functions over the models, checked by value (``parse_quantity``), and every object checked against
Kubernetes' own OpenAPI with ``kubernetes-validate --strict`` (1.37). The numbers the chart used to derive in
its templates are kept, now exact: three-profiles, every quantity form, the services' own limits.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes_validate
import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from floe_platform.config import ConfigError, parse_platform
from floe_platform.config.models import PlatformConfig
from floe_platform.config.quantity import MAX_QUANTITY, format_quantity, parse_quantity
from floe_platform.render import render_guardrails

ROOT = Path(__file__).resolve().parents[2]
GiB = 1024**3


def _platform(profiles: dict[str, Any], **limits: Any) -> PlatformConfig:
    spec = {
        "infrastructure": {"resource_profiles": profiles, "namespace_limits": {"enabled": True, **limits}}
    }
    return parse_platform(spec)


def _three_profiles() -> PlatformConfig:
    platform = yaml.safe_load((ROOT / "charts/floe-platform/ci/three-profiles-values.yaml").read_text())[
        "platform"
    ]
    limits = {"enabled": True, "concurrent_runs": 4, "services_headroom": {"cpu": "4", "memory": "8Gi"}}
    platform["infrastructure"]["namespace_limits"] = limits
    return parse_platform(platform)


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects}


def _values(quantities: dict[str, str]) -> dict[str, Decimal]:
    return {key: parse_quantity(text) for key, text in quantities.items()}


def test_three_profiles_limit_range_is_the_largest_profile() -> None:
    """Largest limits 16 CPU / 48Gi (transform)."""
    limit_range = _by_kind(render_guardrails(_three_profiles(), "floe-prod", "floe"))["LimitRange"]
    (item,) = limit_range["spec"]["limits"]
    assert item["type"] == "Container"
    assert _values(item["max"]) == {"cpu": Decimal(16), "memory": Decimal(48 * GiB)}


def test_three_profiles_quota_fits_four_runs_and_the_headroom() -> None:
    """4 runs of the largest requests (2 CPU / 8Gi) and limit (48Gi), plus 4 CPU / 8Gi headroom."""
    quota = _by_kind(render_guardrails(_three_profiles(), "floe-prod", "floe"))["ResourceQuota"]
    assert _values(quota["spec"]["hard"]) == {
        "requests.cpu": Decimal(4 * 2 + 4),
        "requests.memory": Decimal((4 * 8 + 8) * GiB),
        "limits.memory": Decimal((4 * 48 + 8) * GiB),
    }
    assert "limits.cpu" not in quota["spec"]["hard"], "services set no CPU limit; limits.cpu refuses them"


def test_every_quantity_form_is_read_exactly() -> None:
    """Millicores, fractional and whole cores, binary and decimal memory: 1G is 10**9 bytes, not 954Mi."""
    profiles = {
        "a": {"requests": {"cpu": "0.5", "memory": "1G"}, "limits": {"cpu": "1500m", "memory": "1536Mi"}},
        "b": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
    }
    headroom = {"cpu": "4", "memory": "8Gi"}
    limit_range, quota = render_guardrails(
        _platform(profiles, concurrent_runs=10, services_headroom=headroom)
    )
    assert _values(limit_range["spec"]["limits"][0]["max"]) == {
        "cpu": Decimal("1.5"),
        "memory": Decimal(1536 * 1024**2),
    }
    hard = _values(quota["spec"]["hard"])
    assert hard["requests.cpu"] == Decimal(10 * 0.5 + 4)
    assert hard["requests.memory"] == Decimal(10 * 10**9 + 8 * GiB)


def test_the_platforms_own_services_are_not_locked_out() -> None:
    """Profiles smaller than a service's 1Gi memory limit (or its CPU limit) must not refuse the service."""
    small = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
    services = [{"memory": "1Gi"}, {"cpu": "2"}, {}]
    limit_range, _ = render_guardrails(_platform({"small": small}, service_container_limits=services))
    assert _values(limit_range["spec"]["limits"][0]["max"]) == {"cpu": Decimal(2), "memory": Decimal(GiB)}


def test_one_exbibyte_gets_the_same_answer_as_validation() -> None:
    """1Ei passes validation, so it renders too (the chart's float parser failed on it)."""
    huge = {"requests": {"cpu": "1", "memory": "1Ei"}, "limits": {"cpu": "1", "memory": "1Ei"}}
    limit_range, quota = render_guardrails(_platform({"huge": huge}, concurrent_runs=4))
    assert limit_range["spec"]["limits"][0]["max"]["memory"] == "1Ei"
    assert parse_quantity(quota["spec"]["hard"]["limits.memory"]) == 4 * Decimal(1024**6)


def test_odd_quantities_stay_exact_and_valid() -> None:
    """Decimal exponents, nano-CPU, fractional Gi and a 1000-core limit: exact sums, valid objects."""
    odd = {
        "a": {
            "requests": {"cpu": "123456789n", "memory": "1.5Gi"},
            "limits": {"cpu": "1e3", "memory": "2e9"},
        },
        "b": {"requests": {"cpu": "0.1", "memory": "1"}, "limits": {"cpu": "0.2", "memory": "1Ei"}},
    }
    headroom = {"cpu": "1m", "memory": "1Ki"}
    objects = render_guardrails(_platform(odd, concurrent_runs=3, services_headroom=headroom), "odd", "floe")
    limit_range, quota = _by_kind(objects)["LimitRange"], _by_kind(objects)["ResourceQuota"]
    assert _values(limit_range["spec"]["limits"][0]["max"]) == {
        "cpu": Decimal(1000),
        "memory": Decimal(1024**6),
    }
    assert _values(quota["spec"]["hard"]) == {
        "requests.cpu": 3 * Decimal("0.123456789") + Decimal("0.001"),
        "requests.memory": Decimal(3 * 1536 * 1024**2 + 1024),
        "limits.memory": Decimal(3 * 1024**6 + 1024),
    }
    for obj in objects:
        kubernetes_validate.validate(obj, "1.37", strict=True)


def test_objects_are_valid_kubernetes_and_labelled_like_the_podtemplates() -> None:
    for obj in render_guardrails(_three_profiles(), "floe-prod", "floe"):
        kubernetes_validate.validate(obj, "1.37", strict=True)
        labels = obj["metadata"]["labels"]
        assert labels["floe.dev/platform"] == "floe-prod"
        assert labels["app.kubernetes.io/managed-by"] == "floe-platform"
        assert obj["metadata"]["namespace"] == "floe"
    names = [obj["metadata"]["name"] for obj in render_guardrails(_three_profiles(), "floe-prod")]
    assert names == ["floe-prod-limits", "floe-prod-quota"]


def test_disabled_or_absent_namespace_limits_render_nothing() -> None:
    profile = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    assert render_guardrails(parse_platform({"infrastructure": {"resource_profiles": {"p": profile}}})) == []
    spec = {"infrastructure": {"resource_profiles": {"p": profile}, "namespace_limits": {"enabled": False}}}
    assert render_guardrails(parse_platform(spec)) == []


@pytest.mark.parametrize(
    ("limits", "fragment"),
    [
        ({"concurrent_runs": 0}, "concurrent_runs"),
        ({"services_headroom": {"cpu": "4", "memory": "8Gb"}}, "use 8Gi or 8G"),
        ({"service_container_limits": [{"memory": "1Gi", "ephemeral-storage": "1Gi"}]}, "ephemeral-storage"),
    ],
)
def test_invalid_namespace_limits_name_the_field(limits: dict[str, Any], fragment: str) -> None:
    profile = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    spec = {"infrastructure": {"resource_profiles": {"p": profile}, "namespace_limits": limits}}
    with pytest.raises(ConfigError) as raised:
        parse_platform(spec)
    message = "\n".join(raised.value.lines)
    assert "infrastructure.namespace_limits." in message
    assert fragment in message


@given(
    st.integers(min_value=0, max_value=5 * 10**18),
    st.sampled_from(["n", "u", "m", "", "k", "M", "G", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]),
    st.booleans(),
)
def test_format_quantity_round_trips_and_agrees_with_the_kubernetes_client(
    count: int, suffix: str, binary: bool
) -> None:
    """The canonical text parses back to the same value, here and in the official client (up to 4Ei, the
    largest quantity the models accept)."""
    value = kubernetes.utils.parse_quantity(f"{count}{suffix}")
    assume(value <= MAX_QUANTITY)
    text = format_quantity(value, binary)
    assert parse_quantity(text) == value
    assert Decimal(kubernetes.utils.parse_quantity(text)) == value


def test_a_quota_kubernetes_cannot_hold_is_refused_with_the_fix() -> None:
    """10 runs of a 1Ei profile need a 10Ei quota, above the 4Ei any quantity may be: refused, one line."""
    text = """
infrastructure:
  namespace_limits: {enabled: true, concurrent_runs: 10}
  resource_profiles:
    huge: {requests: {cpu: "1", memory: 1Ei}, limits: {cpu: "1", memory: 1Ei}}
"""
    with pytest.raises(ConfigError) as refused:
        parse_platform(yaml.safe_load(text))
    (line,) = refused.value.lines
    assert line.startswith("infrastructure.namespace_limits.concurrent_runs: 10 runs")
    assert "lower concurrent_runs" in line

"""namespaceLimits: the chart only writes the numbers into the FloePlatform's spec; the operator derives.

Real helm v4 (`helm template`), then the platform.yaml models and ``render.guardrails`` on the spec the chart
wrote, so the chart and `floe validate` give the same answer for every quantity (1Ei included). The chart
renders no LimitRange or ResourceQuota of its own and holds no quantity arithmetic.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import CHART, HelmError, Rendered, render

from floe_platform.config import parse_platform
from floe_platform.config.quantity import format_quantity, parse_quantity
from floe_platform.render import render_guardrails

GiB = 1024**3
SMALL = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}


def _render(tmp_path: Path, values: dict[str, Any]) -> Rendered:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return render([path])


def _guardrails(release: Rendered) -> dict[str, dict[str, Any]]:
    (platform,) = release.of_kind("FloePlatform")
    name = platform["metadata"]["name"]
    return {obj["kind"]: obj for obj in render_guardrails(parse_platform(platform["spec"]), name, "floe")}


def test_the_chart_renders_no_guardrails_of_its_own(rendered_matrix: dict[str, Rendered]) -> None:
    for release in rendered_matrix.values():
        assert not release.of_kind("LimitRange")
        assert not release.of_kind("ResourceQuota")
    assert not any((CHART / "templates").glob("*quota*")), "the operator applies them now"
    assert "floe.quantity" not in (CHART / "templates/_helpers.tpl").read_text()


def test_three_profiles_spec_carries_the_values_verbatim(rendered_matrix: dict[str, Rendered]) -> None:
    """concurrentRuns 4, the default 4 CPU / 8Gi headroom, and the components' limits as written."""
    (platform,) = rendered_matrix["three-profiles"].of_kind("FloePlatform")
    limits = platform["spec"]["infrastructure"]["namespace_limits"]
    assert limits["enabled"] is True
    assert limits["concurrent_runs"] == 4
    assert limits["services_headroom"] == {"cpu": "4", "memory": "8Gi"}
    assert {"memory": "1Gi"} in limits["service_container_limits"]
    guardrails = _guardrails(rendered_matrix["three-profiles"])
    assert parse_quantity(guardrails["LimitRange"]["spec"]["limits"][0]["max"]["memory"]) == 48 * GiB
    assert parse_quantity(guardrails["ResourceQuota"]["spec"]["hard"]["requests.cpu"]) == 4 * 2 + 4


def test_one_exbibyte_passes_the_chart_as_it_passes_validation(tmp_path: Path) -> None:
    """The removed float parser failed on 1Ei; now the chart copies it and the models decide."""
    huge = {"requests": {"cpu": "1", "memory": "1Ei"}, "limits": {"cpu": "1", "memory": "1Ei"}}
    values = {"platform": {"infrastructure": {"resource_profiles": {"huge": huge}}}}
    release = _render(tmp_path, {**values, "namespaceLimits": {"enabled": True}})
    guardrails = _guardrails(release)
    assert guardrails["LimitRange"]["spec"]["limits"][0]["max"]["memory"] == "1Ei"
    quota = guardrails["ResourceQuota"]["spec"]["hard"]
    # 10 runs + headroom: above 4Ei, the most platform.yaml accepts (parse_quantity), so compared as text.
    assert quota["limits.memory"] == format_quantity(10 * Decimal(1024**6) + 8 * GiB, binary=True)


def test_services_limits_keep_them_from_being_locked_out(tmp_path: Path) -> None:
    """Profiles smaller than the services' 1Gi memory limit must not make the LimitRange refuse them."""
    values = {"platform": {"infrastructure": {"resource_profiles": {"small": SMALL}}}}
    guardrails = _guardrails(_render(tmp_path, {**values, "namespaceLimits": {"enabled": True}}))
    assert parse_quantity(guardrails["LimitRange"]["spec"]["limits"][0]["max"]["memory"]) == GiB


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"namespaceLimits": {"enabled": True}, "dagster": {"runCoordinator": {"maxConcurrentRuns": -1}}},
            "namespaceLimits.concurrentRuns: dagster.runCoordinator.maxConcurrentRuns is unlimited",
        ),
        (
            {"namespaceLimits": {"enabled": True}, "platform": {"infrastructure": {"namespace_limits": {}}}},
            "platform.infrastructure.namespace_limits: set namespaceLimits instead",
        ),
    ],
)
def test_namespace_limits_fail_at_template_time_with_the_fix(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    platform = values.setdefault("platform", {})
    platform.setdefault("infrastructure", {})["resource_profiles"] = {"small": SMALL}
    with pytest.raises(HelmError, match=message):
        _render(tmp_path, values)

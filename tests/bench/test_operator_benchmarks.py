"""The operator benchmarks' code (P1, P2, P9) on a tiny size, so that it cannot rot between `make bench` runs.

Real: the `floe operator` process (kopf); kube-apiserver v1.37 with etcd, kube-controller-manager and kwok
(``control_plane`` fixture) for the real-server half, where the operator and the bare client write with
the chart's operator ServiceAccount token and the request counts are kube-apiserver's own
``apiserver_request_total``. Stand-in: kmock's emulator for the emulator half (counts from its request
hook). The figures themselves are not judged here (speed targets live in `make bench`); the request counts
are, as they do not depend on the machine.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench import p1_convergence, p2_latency, p9_scale
from bench.environments import ApiServerEnvironment, EmulatorEnvironment, operator_requests, per_platform
from testkit.controlplane import ControlPlane
from testkit.controlplane.chart import install_crd
from testkit.controlplane.metrics import parse_request_totals, requests_between


def _sample(verb: str, resource: str, subresource: str, code: str, value: int) -> str:
    labels = (
        f'code="{code}",component="apiserver",dry_run="",group="",resource="{resource}",scope="resource",'
        f'subresource="{subresource}",verb="{verb}",version="v1"'
    )
    return f"apiserver_request_total{{{labels}}} {value}"


METRICS = "\n".join(
    [
        "# TYPE apiserver_request_total counter",
        _sample("POST", "podtemplates", "", "201", 7),
        _sample("POST", "podtemplates", "", "409", 1),
        _sample("PATCH", "floeplatforms", "status", "200", 2),
        _sample("PUT", "leases", "", "200", 40),
        'apiserver_request_duration_seconds_bucket{verb="POST",le="0.1"} 3',
    ]
)


def test_request_totals_are_summed_over_codes_and_the_operators_are_picked_out() -> None:
    totals = parse_request_totals(METRICS)
    assert totals[("POST", "podtemplates", "")] == 8  # both codes
    assert totals[("PATCH", "floeplatforms", "status")] == 2
    later = totals + Counter({("POST", "podtemplates", ""): 5, ("POST", "floeplatforms", ""): 2})
    served = requests_between(totals, later)
    assert served == Counter({("POST", "podtemplates", ""): 5, ("POST", "floeplatforms", ""): 2})
    # The user's FloePlatform creates and other components' traffic (leases) are not the operator's.
    ours = operator_requests(served + Counter({("PUT", "leases", ""): 9}), user_creates=2)
    assert ours == Counter({("POST", "podtemplates", ""): 5})
    assert per_platform(ours, 5) == "POST podtemplates 1.00"


def _assert_the_floor(requests: Counter[tuple[str, str, str]], platforms: int, profiles: int) -> None:
    """The floor and nothing above it that writes: one create per profile and one status write."""
    assert requests[("POST", "podtemplates", "")] == platforms * profiles
    assert requests[("PATCH", "floeplatforms", "status")] == platforms
    assert requests[("PATCH", "floeplatforms", "")] == 0  # no finalizer


@pytest.mark.slow
def test_p1_on_the_emulator_converges(tmp_path: Path) -> None:
    platforms = p1_convergence.specs(2, 2)
    figures = p1_convergence.measure(EmulatorEnvironment(tmp_path / "emulator"), platforms, 1, tmp_path)
    converge = figures.converges[0]
    assert converge.seconds > 0
    assert figures.bare[0] > 0
    assert converge.peak_rss > 0
    # The exact floor is asserted on kube-apiserver (below), whose own counters are the reference; here
    # the creates, which both count alike.
    assert converge.requests[("POST", "podtemplates", "")] == 2 * 2


@pytest.mark.slow
def test_p1_p2_and_p9_on_the_real_apiserver(control_plane: ControlPlane, tmp_path: Path) -> None:
    install_crd(control_plane)
    environment = ApiServerEnvironment(control_plane, tmp_path)

    figures = p1_convergence.measure(environment, p1_convergence.specs(2, 2), 1, tmp_path)
    converge = figures.converges[0]
    print(f"\nP1 tiny on kube-apiserver: {per_platform(converge.requests, 2)}")
    _assert_the_floor(converge.requests, 2, 2)

    latencies, bare = p2_latency.measure(environment, tmp_path, platforms_count=2, changes=3)
    assert len(latencies) == len(bare) == 3

    points = p9_scale.measure_curve(environment, (1, 2), tmp_path)
    assert [point.platforms for point in points] == [1, 2]
    plot = tmp_path / "curve.png"
    p9_scale.write_plot(points, plot)
    assert plot.read_bytes().startswith(b"\x89PNG")
    checks = p9_scale.outcome(points, plot).checks
    assert [check.target.split(" ")[0] for check in checks] == ["time", "RSS"]

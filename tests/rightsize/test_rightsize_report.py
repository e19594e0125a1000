"""The pure right-sizing core: statistics, the suggestion, verdicts, table, JSON and the platform.yaml diff.

No stand-ins needed: ``floe_platform.rightsize`` is plain functions over plain data (and the real
platform.yaml loader for the diff, which is validated before it is shown).
"""

from __future__ import annotations

import json

import pytest

from floe_platform import rightsize as rs
from floe_platform.config import load_platform_text
from floe_platform.usage.tags import RunUsage, read_usage, resource_tags, usage_tags

MiB, GiB = 1024**2, 1024**3
PROFILES = [
    rs.Profile("small", 2 * GiB, 0.5),
    rs.Profile("medium", 4 * GiB, 1.0),
    rs.Profile("large", 8 * GiB, 2.0),
]
PLATFORM_YAML = """# our platform
infrastructure:
  resource_profiles:
    small:   # for lookups
      requests: {cpu: 500m, memory: 1Gi}
      limits: {cpu: "1", memory: 2Gi}
    large:
      requests: {cpu: "2", memory: 4Gi}
      limits: {cpu: "4", memory: 8Gi}
observability:
  compute_logs: {enabled: false}
"""


def run(
    peak_mib: int | None,
    *,
    job: str = "etl",
    limit: int = 8 * GiB,
    oom: bool = False,
    created: float = 0,
    cpu: float = 10.0,
    wall: float = 20.0,
    profile: str = "large",
) -> rs.RunRecord:
    return rs.RunRecord(
        run_id=f"r{created}",
        job=job,
        selection=(),
        status="SUCCESS",
        created=created,
        profile=profile,
        memory_limit_bytes=limit,
        cpu_request_cores=2.0,
        peak_memory_bytes=None if peak_mib is None else peak_mib * MiB,
        cpu_seconds=cpu,
        wall_seconds=wall,
        oom_killed=oom,
        usage_source="cgroup-v2",
    )


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert rs.percentile(values, 0.95) == 19
    assert rs.percentile(values, 0.50) == 10
    assert rs.percentile([7.0], 0.95) == 7


def test_smallest_profile_holding_p95_with_headroom_is_suggested() -> None:
    assert rs.suggest(1600 * MiB, PROFILES, 0.20).profile == "small"  # 1920Mi <= 2Gi
    assert rs.suggest(1800 * MiB, PROFILES, 0.20).profile == "medium"  # 2160Mi > 2Gi
    assert rs.suggest(1800 * MiB, PROFILES, 0.0).profile == "small"  # headroom moves it


def test_none_fits_names_the_limit_to_add_rounded_up() -> None:
    suggestion = rs.suggest(7 * GiB, PROFILES, 0.20)
    assert suggestion.profile is None
    assert suggestion.text == "none fits: add one with limits.memory >= 9Gi"  # 8.4Gi, rounded up
    assert rs.suggest(2600 * MiB, PROFILES[:1], 0.20).text.endswith(">= 3328Mi")  # 3120Mi: to 256Mi


def test_report_groups_by_job_and_moves_with_usage() -> None:
    light = [run(500, created=i) for i in range(20)]
    reports = rs.summarize(light, PROFILES)
    assert [(r.label, r.suggestion.profile, r.verdict) for r in reports] == [
        ("etl", "small", "over-provisioned")
    ]
    heavier = light + [run(3500, created=100 + i) for i in range(5)]
    [report] = rs.summarize(heavier, PROFILES)
    assert report.peak_p95_bytes == 3500 * MiB  # x 1.2 = 4200Mi > medium's 4Gi
    assert report.suggestion.profile == "large"
    assert report.cpu_p95_cores == pytest.approx(0.5)


def test_an_oom_killed_run_counts_as_needing_more_than_its_limit() -> None:
    runs = [run(None, limit=2 * GiB, oom=True, profile="small")] + [
        run(400, limit=2 * GiB, created=i, profile="small") for i in range(1, 4)
    ]
    [report] = rs.summarize(runs, PROFILES)
    assert report.oom_kills == 1
    assert report.peak_max_bytes == 2 * GiB
    assert report.verdict == "near-oom"
    assert report.suggestion.profile == "medium"


def test_selection_of_an_asset_job_is_its_own_row() -> None:
    runs = [run(100), rs.RunRecord(**{**run(900).__dict__, "selection": ("gold/revenue",)})]
    labels = [report.label for report in rs.summarize(runs, PROFILES)]
    assert labels == ["etl", "etl [gold/revenue]"]


def test_profiles_default_to_the_limits_the_runs_recorded() -> None:
    runs = [
        run(1, profile="a", limit=1 * GiB, created=1),
        run(1, profile="a", limit=3 * GiB, created=2),
        run(1, profile="b", limit=2 * GiB),
    ]
    assert [(p.name, p.memory_limit_bytes) for p in rs.profiles_from_runs(runs)] == [
        ("b", 2 * GiB),
        ("a", 3 * GiB),
    ]


def test_window_and_bad_windows() -> None:
    assert rs.parse_window("7d") == 7 * 86400
    assert rs.parse_window("90m") == 5400
    with pytest.raises(rs.RightsizeError, match=r"--since: '7 days' is not a window; .* e\.g\. 7d"):
        rs.parse_window("7 days")


def test_table_and_json_carry_the_same_figures() -> None:
    reports = rs.summarize([run(1000, created=i) for i in range(3)], PROFILES)
    table = rs.format_table(reports)
    assert "etl" in table
    assert "1000Mi" in table
    assert "8.00Gi" in table
    assert "small" in table
    document = json.loads(rs.to_json(reports))
    assert document["jobs"][0]["peak_p95_bytes"] == 1000 * MiB
    assert document["jobs"][0]["suggestion"]["profile"] == "small"


def test_write_adds_a_valid_profile_for_jobs_none_fits_keeping_comments() -> None:
    profiles = rs.profiles_from_platform(load_platform_text(PLATFORM_YAML))
    reports = rs.summarize(
        [run(10 * 1024, created=i) for i in range(3)] + [run(300, job="lookup", created=9)], profiles
    )
    changed = rs.with_added_profiles(PLATFORM_YAML, "platform.yaml", reports, profiles)
    config = load_platform_text(changed)
    added = config.infrastructure.resource_profiles["rightsized-12gi"]
    assert added.limits.memory_bytes() == 12 * GiB
    assert changed.startswith("# our platform\n")
    assert "small:   # for lookups" in changed
    diff = rs.unified_diff(PLATFORM_YAML, changed, "platform.yaml")
    assert diff.startswith("--- a/platform.yaml\n+++ b/platform.yaml\n")
    assert all(line.startswith(("+", " ", "@", "-")) for line in diff.splitlines())
    assert not any(line.startswith("-") and not line.startswith("---") for line in diff.splitlines())
    snippet = rs.tag_snippet(reports)
    assert "job 'lookup': large -> small" in snippet
    assert 'tags={"floe/resource-profile": "small"}' in snippet
    assert "job 'etl': large -> rightsized-12gi" in snippet


def test_usage_tags_round_trip() -> None:
    usage = RunUsage("cgroup-v1", 123 * MiB, 4.5, 9.25, oom_killed=True, exit_code=137)
    assert read_usage(usage_tags(usage)) == usage
    assert read_usage({}) is None
    assert resource_tags({"cpu": "500m"}, {"memory": "2Gi"}) == {
        "floe/memory-limit": "2Gi",
        "floe/cpu-request": "500m",
    }

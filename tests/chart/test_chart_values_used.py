"""No chart value is silently ignored: changing any key of the values schema changes what helm renders.

Runs the real helm v4 (`helm template`) once with a base and once with one key changed, for every leaf key
of the values models (`schema/chart_values.py`, the source of values.schema.json). Keys read only under a
condition (the external database, namespace guardrails, the LocalStack token) are changed on a base that
meets the condition. What it cannot show: that the change means what the key's description says; the
manifest tests check that for the keys that matter.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from chart_render import CHART, CI_DIR, run_helm, template_args
from pydantic import BaseModel

from floe_platform.codegen.outputs import chart_values_module

pytestmark = pytest.mark.slow

CHART_VALUES = chart_values_module()
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
THREE_PROFILES = yaml.safe_load((CI_DIR / "three-profiles-values.yaml").read_text())
LOGS_OFF = yaml.safe_load((CI_DIR / "compute-logs-off-values.yaml").read_text())

# Keys read only under a condition: the base values that meet it.
CONDITIONS: dict[str, dict[str, Any]] = {
    "externalPostgresql.": {
        "postgresql": {"enabled": False},
        "externalPostgresql": {"host": "db.example.com", "existingSecret": "db"},
    },
    "postgresql.enabled": {"externalPostgresql": {"host": "db.example.com", "existingSecret": "db"}},
    # Not for .enabled itself: a base that already enables it would hide that the key is read.
    **{
        f"namespaceLimits.{key}": {
            "namespaceLimits": {"enabled": True},
            "platform": THREE_PROFILES["platform"],
        }
        for key in ("concurrentRuns", "servicesHeadroom")
    },
    "namespaceLimits.enabled": {"platform": THREE_PROFILES["platform"]},
    "localstack.enabled": {"platform": LOGS_OFF["platform"]},
    "localstack.authToken.key": {"localstack": {"authToken": {"name": "localstack-token"}}},
    **{
        f"dagster.retention.{key}": {"dagster": {"retention": {"enabled": True}}}
        for key in ("schedule", "sensor", "autoMaterialize")
    },
    "webserver.readOnly.replicas": {"webserver": {"readOnly": {"enabled": True}}},
    **{
        f"webserver.ingress.{key}": {
            "webserver": {"ingress": {"enabled": True, "hosts": [{"host": "a.example.com"}]}}
        }
        for key in ("className", "annotations", "tls", "hosts")
    },
    "webserver.ingress.enabled": {"webserver": {"ingress": {"hosts": [{"host": "a.example.com"}]}}},
    "podDisruptionBudget.": {"webserver": {"replicas": 2}},
    **{
        f"networkPolicy.{key}": {"networkPolicy": {"enabled": True}}
        for key in ("webserverFrom", "apiServer", "dnsNamespace")
    },
    "dagster.stepJobs.serviceAccount.": {"dagster": {"stepJobs": {"enabled": True}}},
    # Your own S3 only (the built-in LocalStack creates its bucket itself): three-profiles' storage "lake".
    **{
        f"computeLogBucketJob.{key}": {
            "computeLogBucketJob": {"enabled": True},
            "platform": THREE_PROFILES["platform"],
        }
        for key in ("backoffLimit", "resources")
    },
    "computeLogBucketJob.enabled": {"platform": THREE_PROFILES["platform"]},
    "uninstallHook.": {"platform": THREE_PROFILES["platform"]},  # only with a FloePlatform to delete
    # A location of the workspace other than the first (the one an empty value takes).
    "tests.run.location": {
        "userCode": {
            "locations": [
                {"name": "first", "module": "floe_demo.definitions"},
                {"name": "changed", "module": "floe_demo.definitions"},
            ]
        }
    },
    "networkPolicy.externalCidrs": {
        "networkPolicy": {"enabled": True},
        "postgresql": {"enabled": False},
        "externalPostgresql": {"host": "db.example.com", "existingSecret": "db"},
    },
}
# Keys not read by any template, each with the reason.
NOT_RENDERED = {
    "global": "Helm's own key for values shared with subcharts; this chart reads nothing from it",
    "platform": "a whole platform.yaml; rendered as the FloePlatform (tests/chart/test_chart_manifests.py)",
    "postgresql.auth.failWithoutCluster": "a guard that renders nothing: it refuses to render without a "
    "cluster (test_the_gitops_guard_refuses_to_render_without_a_cluster_and_an_existing_secret)",
}
# A changed value for keys whose type alone does not give a valid one.
CHANGED_BY_KEY: dict[str, Any] = {
    "tag": "9.9.9",
    "repository": "example.com/changed",
    "pathPrefix": "/changed",
    "module": "floe_demo.changed",
    "region": "eu-west-1",
    "tolerations": [{"key": "changed", "operator": "Exists"}],
    "extraEnv": [{"name": "CHANGED", "value": "yes"}],
    "extraBuckets": ["changed-bucket"],
    "imagePullSecrets": [{"name": "changed"}],
    "watchNamespaces": ["changed"],
    "params": {"sslmode": "require"},
    "cpu": "777m",
    "memory": "777Mi",
    "ephemeral-storage": "777Mi",
    "size": "77Gi",
    "host": "changed.example.com",
    "defaultProfile": "small",
    "purgeAfterDays": 11,
    "tagConcurrencyLimits": [{"key": "team", "limit": 1}],
    "dequeueIntervalSeconds": 7,
    "dequeueNumWorkers": 3,
    "locations": [{"name": "changed", "module": "floe_demo.changed"}],
    "hosts": [{"host": "changed.example.com"}],
    "tls": [{"secretName": "changed", "hosts": ["changed.example.com"]}],
    "apiServerCidrs": ["10.0.0.1/32"],
    "externalCidrs": ["10.0.0.0/8"],
    "apiServerPorts": [8443],
    "webserverFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}],
}


def _leaves(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, annotation, default) of every leaf field, nested models walked."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaves(annotation, f"{key}.")
        else:
            yield key, annotation, field.get_default(call_default_factory=True)


def _default(key: str) -> Any:
    value: Any = DEFAULTS
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _changed(key: str, annotation: Any, default: Any) -> Any:
    """A valid value different from the key's default."""
    last = key.rsplit(".", 1)[-1]
    if last in CHANGED_BY_KEY:
        return CHANGED_BY_KEY[last]
    current = _default(key)
    if current is None:
        current = default
    if typing.get_origin(annotation) is Literal:
        return next(option for option in typing.get_args(annotation) if option != current)
    return _changed_by_type(key, annotation, current)


def _changed_by_type(key: str, annotation: Any, current: Any) -> Any:
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return not current
    if annotation is int:
        return current + 1
    if annotation is str:
        return f"{current}-changed" if current else "changed"
    if origin is dict:
        return {"example.com/changed": "changed"}
    if origin is list:
        return [{"changed": "yes"}]
    raise AssertionError(f"{key}: add a changed value for {annotation} to CHANGED_BY_KEY")


def _nested(key: str, value: Any) -> dict[str, Any]:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value  # type: ignore[no-any-return]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = _merge(merged[name], value)
        else:
            merged[name] = value
    return merged


def _render(tmp_path: Path, name: str, values: dict[str, Any]) -> list[Any]:
    """The rendered objects, without the generated Secrets' data: a new random password every render
    would make any two renders differ, whatever the key."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(values))
    result = run_helm(template_args([path]))
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    for doc in docs:
        if doc["kind"] == "Secret":
            doc.pop("data", None)
    return docs


def test_two_renders_of_the_same_values_compare_equal(tmp_path: Path) -> None:
    """Guard: without a change, the comparison above finds none (the generated passwords set aside)."""
    assert _render(tmp_path, "first", {}) == _render(tmp_path, "second", {})


LEAVES = [leaf for leaf in _leaves(CHART_VALUES.ChartValues) if leaf[0] not in NOT_RENDERED]


@pytest.mark.parametrize(("key", "annotation", "default"), LEAVES, ids=[leaf[0] for leaf in LEAVES])
def test_changing_a_value_changes_the_rendered_chart(
    tmp_path: Path, key: str, annotation: Any, default: Any
) -> None:
    base: dict[str, Any] = {}
    for prefix, condition in CONDITIONS.items():
        if key.startswith(prefix):
            base = _merge(base, condition)
    changed = _merge(base, _nested(key, _changed(key, annotation, default)))
    assert _render(tmp_path, "changed", changed) != _render(tmp_path, "base", base), (
        f"{key} is in the values schema but no template reads it"
    )


def test_every_key_not_rendered_is_in_the_schema() -> None:
    """The exemptions name real keys, so the list cannot rot."""
    keys = {field.alias or name for name, field in CHART_VALUES.ChartValues.model_fields.items()}
    assert set(NOT_RENDERED) <= keys | {leaf[0] for leaf in _leaves(CHART_VALUES.ChartValues)}


def test_the_gitops_guard_refuses_to_render_without_a_cluster_and_an_existing_secret(tmp_path: Path) -> None:
    """`helm template` has no cluster: by default, without an existing Secret, it fails in one line that
    names the values to set; an existing Secret satisfies the guard, and failWithoutCluster=false opts out.
    (With a cluster, `helm install` passes the guard: tests/chart/test_chart_on_apiserver.py.)"""
    values = tmp_path / "values.yaml"
    values.write_text("{}")
    refused = run_helm(template_args([values], gitops_guard=True))
    assert refused.returncode != 0
    first_line = refused.stderr.splitlines()[0]
    assert "postgresql.auth.existingSecret: rendering without a cluster" in first_line
    assert "postgresql.auth.failWithoutCluster=false" in first_line
    for sets in (["postgresql.auth.existingSecret=floe-db"], ["postgresql.auth.failWithoutCluster=false"]):
        rendered = run_helm(template_args([values], sets, gitops_guard=True))
        assert rendered.returncode == 0, (sets, rendered.stderr)

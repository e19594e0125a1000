"""Bad FloePlatform resources are refused by the real operator with the field path, and nothing is written.

Runs ``floe operator`` (kopf, its own process) against the kmock emulator. Each file in
``bad_floeplatforms/`` is a FloePlatform whose first line says ``# expect: <text>``, the text the Ready
condition's message must contain. A good FloePlatform is applied alongside, so "no PodTemplates" cannot pass
merely because the operator did nothing. The emulator does not run the CRD's schema and CEL rules, which a
real API server applies first (some of these would be refused at `kubectl apply`); this shows the
operator's own line of defence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes  # type: ignore[import-untyped]
import pytest
import yaml

from floe_platform.api import GROUP, PLURAL, VERSION
from floe_platform.render.podtemplate import PLATFORM_LABEL
from testkit.emulator import EmulatedCluster
from testkit.operator_process import OperatorProcess
from testkit.platforms import expected_templates, floe_platform, judge, list_templates, platform_spec
from testkit.waiting import wait_until

pytestmark = pytest.mark.slow  # a real operator process

CORPUS = sorted((Path(__file__).parent / "bad_floeplatforms").glob("*.yaml"))
NAMESPACE = "floe"


def _case(path: Path) -> tuple[dict[str, Any], str]:
    first_line, _ = path.read_text().split("\n", 1)
    assert first_line.startswith("# expect: "), f"{path.name} must start with '# expect: <text>'"
    return yaml.safe_load(path.read_text()), first_line.removeprefix("# expect: ")


def _ready_condition(custom: Any, name: str) -> dict[str, Any]:
    body = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((item for item in conditions if item.get("type") == "Ready"), {})


def test_corpus_has_a_dozen_distinct_bad_floeplatforms() -> None:
    names = {_case(path)[0]["metadata"]["name"] for path in CORPUS}
    assert len(names) == len(CORPUS) >= 12


def test_every_bad_floeplatform_is_refused_with_its_field_path_and_writes_nothing(
    kube_cluster: EmulatedCluster, tmp_path: Path
) -> None:
    api = kube_cluster.api_client()
    custom = kubernetes.client.CustomObjectsApi(api)
    operator = OperatorProcess(
        kube_cluster.kubeconfig_path, tmp_path / "operator.log", ("--namespace", NAMESPACE)
    ).start()
    try:
        operator.wait_ready()
        expectations: dict[str, str] = {}
        for path in CORPUS:
            resource, expected = _case(path)
            expectations[resource["metadata"]["name"]] = expected
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, resource)
        good = {"good": platform_spec(2)}
        custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, floe_platform("good", good["good"])
        )
        refused = wait_until(
            lambda: all(
                _ready_condition(custom, name).get("reason") == "InvalidSpec" for name in expectations
            ),
            60,
            0.5,
        )
        assert refused, operator.log_tail()
        wanted = expected_templates(good, NAMESPACE)
        assert wait_until(lambda: judge(list_templates(api, NAMESPACE), wanted).converged, 30, 0.5)
        written = {
            (item["metadata"].get("labels") or {}).get(PLATFORM_LABEL)
            for item in list_templates(api, NAMESPACE)
        }
    finally:
        operator.stop()
    assert written == {"good"}, f"templates of refused platforms were written: {written - {'good'}}"
    for name, expected in expectations.items():
        condition = _ready_condition(custom, name)
        assert condition["status"] == "False"
        assert expected in condition["message"], (name, condition["message"])


@pytest.mark.parametrize("path", CORPUS, ids=[path.stem for path in CORPUS])
def test_bad_floeplatform_file_is_a_floeplatform(path: Path) -> None:
    """Each case is a well-formed FloePlatform envelope, so only its spec is what is wrong."""
    resource, _ = _case(path)
    assert resource["apiVersion"] == f"{GROUP}/{VERSION}"
    assert resource["kind"] == "FloePlatform"

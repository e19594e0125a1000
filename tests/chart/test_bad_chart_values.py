"""Bad chart values are refused by the real helm v4 (`helm template`) naming the key, with nothing rendered;
the few rules JSON schema cannot say are refused later, by the gate their file names.

Each file in ``bad_chart_values/`` starts with ``# expect: <text>``, which helm's error must contain.
helm validates values against the chart's ``values.schema.json`` and runs its ``fail`` checks before it
prints anything, so a refused install leaves nothing half-applied.

Each file in ``later_gate_values/`` starts with ``# gate: admission: <text>`` or ``# gate: operator: <text>``:
a cross-field rule of ``platform:`` that the chart holds no arithmetic for, so `helm template` renders it.
``admission``: the generated CRD carries a CEL rule with that message (the API server refuses the
FloePlatform; no test here runs an API server, so the rule itself is not evaluated). ``operator``: the
models refuse the spec with that text, which the operator writes into the status condition and a Warning
event, and it creates no PodTemplate. For both the models refuse it, so the operator never acts on it.

``pytest tests/chart/test_bad_chart_values.py -s`` prints the counts that docs/bad-input.md quotes.
"""

from __future__ import annotations

import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
import yaml
from chart_render import CHART, ROOT, run_helm

from floe_platform.codegen.crd import floe_platform_crd
from floe_platform.config import ConfigError, parse_platform
from testkit.helm import WITHOUT_CLUSTER

CORPUS = sorted((Path(__file__).parent / "bad_chart_values").glob("*.yaml"))
LATER = sorted((Path(__file__).parent / "later_gate_values").glob("*.yaml"))
SCHEMA_REFUSAL = "values don't meet the specifications of the schema"
TEMPLATE_REFUSAL = "execution error at"


def _first_line(path: Path, prefix: str) -> str:
    first_line = path.read_text().split("\n", 1)[0]
    assert first_line.startswith(prefix), f"{path.name} must start with '{prefix}<text>'"
    return first_line.removeprefix(prefix)


def _template(path: Path) -> CompletedProcess[str]:
    return run_helm(
        ["template", "floe", str(CHART), "--namespace", "floe", "--values", str(path), *WITHOUT_CLUSTER]
    )


@pytest.fixture(scope="module")
def outcomes() -> dict[str, CompletedProcess[str]]:
    """`helm template` of every file in both directories, once, two at a time (the machine is shared)."""
    paths = [*CORPUS, *LATER]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip((str(path) for path in paths), pool.map(_template, paths), strict=True))


@pytest.mark.parametrize("path", CORPUS, ids=[path.stem for path in CORPUS])
def test_bad_values_are_refused_naming_the_key_and_render_nothing(
    path: Path, outcomes: dict[str, CompletedProcess[str]]
) -> None:
    result = outcomes[str(path)]
    assert result.returncode != 0, f"{path.name} was accepted"
    assert result.stdout == "", "helm printed manifests for refused values"
    assert _first_line(path, "# expect: ") in result.stderr, result.stderr


def _crd_rule_messages() -> set[str]:
    messages: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            messages.update(rule["message"] for rule in node.get("x-kubernetes-validations", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(floe_platform_crd())
    return messages


@pytest.mark.parametrize("path", LATER, ids=[path.stem for path in LATER])
def test_rules_the_schema_cannot_say_are_refused_by_the_gate_named(
    path: Path, outcomes: dict[str, CompletedProcess[str]]
) -> None:
    gate, _, expected = _first_line(path, "# gate: ").partition(": ")
    assert gate in ("admission", "operator"), path.name
    result = outcomes[str(path)]
    assert result.returncode == 0, f"{path.name}: helm refuses it; move it to bad_chart_values/"
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc and doc.get("kind") == "FloePlatform"]
    assert len(rendered) == 1
    with pytest.raises(ConfigError) as refused:
        parse_platform(rendered[0]["spec"], prefix=("spec",))
    if gate == "admission":
        assert expected in _crd_rule_messages()
    else:
        assert any(expected in line for line in refused.value.lines), refused.value.lines


def _gate(result: CompletedProcess[str]) -> str:
    if result.returncode == 0:
        return "rendered by helm template"
    if SCHEMA_REFUSAL in result.stderr:
        return "helm template: values.schema.json"
    if TEMPLATE_REFUSAL in result.stderr:
        return "helm template: a fail/required in the templates"
    return "helm template: other"


def test_counts_by_gate(outcomes: dict[str, CompletedProcess[str]]) -> None:
    """Prints the table of docs/bad-input.md; every file is refused by exactly one gate."""
    gates = Counter(_gate(outcomes[str(path)]) for path in CORPUS)
    later = Counter(_first_line(path, "# gate: ").partition(": ")[0] for path in LATER)
    assert "helm template: other" not in gates
    assert "rendered by helm template" not in gates
    rows = [
        f"| bad values files tried | {len(CORPUS) + len(LATER)} |",
        *(f"| refused at {gate} | {count} |" for gate, count in sorted(gates.items())),
        f"| rendered, refused at API server admission (CEL) | {later['admission']} |",
        f"| rendered, refused by the operator (status condition, Warning event) | {later['operator']} |",
        "| accepted without any gate refusing | 0 |",
    ]
    print("\n" + "\n".join(rows))
    documented = (ROOT / "docs" / "bad-input.md").read_text()
    stale = [row for row in rows if re.sub(r"\s+", " ", row) not in documented]
    assert not stale, f"docs/bad-input.md lacks these rows (update it from this output): {stale}"
    bench = (ROOT / "docs" / "bench.md").read_text()
    summary = f"{len(CORPUS) + len(LATER)} bad values files: the {len(CORPUS)} in `bad_chart_values/`"
    assert summary in bench, f"docs/bench.md's fault table must say: {summary} ..."
    assert f"the {len(LATER)} in `later_gate_values/`" in bench

"""Each class of bad input found by fuzzing `floe`, as a regression test: one line, exit 1, no traceback.

Runs the real CLI in-process (click's CliRunner) over files written to tmp_path; pure core only, no
cluster, no emulator.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from floe_platform.cli import main
from floe_platform.config.quantity import parse_quantity

PROFILE = """\
infrastructure:
  resource_profiles:
    transform:
      requests: {{cpu: "1", memory: 1Gi}}
      limits: {{cpu: {cpu}, memory: {memory}}}
{extra}"""


def profile(cpu: str = '"2"', memory: str = "4Gi", extra: str = "") -> str:
    return PROFILE.format(cpu=cpu, memory=memory, extra=textwrap.indent(extra, "      "))


def floe(tmp_path: Path, text: str, *args: str, command: str = "validate") -> Result:
    path = tmp_path / "platform.yaml"
    path.write_text(text, encoding="utf-8")
    return CliRunner().invoke(main, [command, str(path), *args])


def refused(result: Result) -> str:
    """The single line of a refusal, after checking the contract: exit 1, one line, no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


LINE_2 = " (platform.yaml, line 2)"
PROFILE_PATH = "infrastructure.resource_profiles.transform"
LIMITS = f"{PROFILE_PATH}.limits"


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [
        (".inf", f"{LIMITS}.cpu: inf must be written as a string"),
        (".nan", f"{LIMITS}.cpu: nan must be written as a string"),
        ('"1e99999999"', f"{LIMITS}.cpu: '1e99999999' is not a Kubernetes quantity (exponents go from"),
        ('"1e1000000"', f"{LIMITS}.cpu: '1e1000000' is not a Kubernetes quantity (exponents go from"),
        ('"1e5000"', f"{LIMITS}.cpu: '1e5000' is not a Kubernetes quantity"),
        ('"1e999999"', f"{LIMITS}.cpu: '1e999999' is not a Kubernetes quantity"),
        ("1" * 5000, f"{LIMITS}.cpu: Input should be a valid string (got a number of 5000 digits)"),
        ("1" * 100, f"{LIMITS}.cpu: {'1' * 36}...1 is above 4Ei"),
        ('"1e\u0663"', f"{LIMITS}.cpu: '1e٣' is not a Kubernetes quantity"),
        ('"\uff12"', f"{LIMITS}.cpu: '\uff12' is not a Kubernetes quantity"),
        ('" 2"', f"{LIMITS}.cpu: ' 2' is not a Kubernetes quantity (remove the surrounding spaces: 2)"),
        ('"2 "', f"{LIMITS}.cpu: '2 ' is not a Kubernetes quantity (remove the surrounding spaces: 2)"),
        ('"1 core"', f"{LIMITS}.cpu: '1 core' is not a Kubernetes quantity (use 1)"),
    ],
)
def test_huge_infinite_and_non_ascii_cpu_is_one_line(tmp_path: Path, cpu: str, expected: str) -> None:
    line = refused(floe(tmp_path, profile(cpu=cpu)))
    assert line.startswith(expected), line
    for python_internal in ("Error", "int()", "4300", "NaN"):
        assert python_internal not in line


@pytest.mark.parametrize(
    ("memory", "expected"),
    [
        ('"1e400"', "'1e400' is not a Kubernetes quantity"),
        ('"1Mi"', "'1Mi' is below 64Mi, the least a run pod with DuckDB needs; use at least 64Mi"),
        ('"1500Ki"', "'1500Ki' is below 64Mi"),
        ('"4 GB"', "'4 GB' is not a Kubernetes quantity (use 4Gi or 4G)"),
        ('"512 MB"', "'512 MB' is not a Kubernetes quantity (use 512Mi or 512M)"),
        ('"4 gi"', "'4 gi' is not a Kubernetes quantity (use 4Gi or 4G)"),
    ],
)
def test_memory_limit_outside_what_renders_is_refused(tmp_path: Path, memory: str, expected: str) -> None:
    line = refused(floe(tmp_path, profile(memory=memory)))
    assert line.startswith(f"{LIMITS}.memory: {expected}"), line
    assert line.endswith("(platform.yaml, line 5)"), line


@pytest.mark.parametrize(
    "text", ["1 core", "4 GB", "512 MB", "4 gi", "12Gb", "4 Gi", " 2", "2 cores", "500 millicores"]
)
def test_every_suggested_quantity_is_itself_valid(tmp_path: Path, text: str) -> None:
    line = refused(floe(tmp_path, profile(memory=f'"{text}"')))
    hint = line.split("(", 1)[1].split(")", 1)[0]
    suggestions = hint.removeprefix("use ").removeprefix("remove the space: ").split(": ")[-1].split(" or ")
    for suggestion in suggestions:
        parse_quantity(suggestion)


def test_recursive_alias_is_refused_without_recursion_error(tmp_path: Path) -> None:
    line = refused(floe(tmp_path, "infrastructure: &a\n  resource_profiles: [*a]\n"))
    assert line == "platform.yaml: alias *a repeats a value that contains it; remove the cycle" + LINE_2


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        (100, "platform.yaml: nested more than 32 levels deep"),
        (100_000, "platform.yaml: not valid YAML: exceeded maximum nesting depth"),  # libyaml's own bound
    ],
)
def test_deep_nesting_is_refused_without_recursion_error(tmp_path: Path, depth: int, expected: str) -> None:
    line = refused(floe(tmp_path, "infrastructure: " + "[" * depth + "]" * depth + "\n"))
    assert line.startswith(expected), line


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    line = refused(floe(tmp_path, "\n".join(lines) + "\n"))
    assert line.startswith("platform.yaml: more than 100000 values once aliases are expanded")


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    line = refused(floe(tmp_path, "# " + "x" * 300_000 + "\n"))
    assert line == "platform.yaml: the file is larger than 256 KiB; a platform.yaml is a few KiB"


def test_more_profiles_than_the_crd_allows_are_refused(tmp_path: Path) -> None:
    """The models and the CRD share MAX_PROFILES (64): 5000 profiles are refused at once, by both."""
    first = "    p0: &p {requests: {cpu: '1', memory: 1Gi}, limits: {cpu: '1', memory: 1Gi}}\n"
    body = first + "".join(f"    p{i}: *p\n" for i in range(1, 5000))
    line = refused(floe(tmp_path, "infrastructure:\n  resource_profiles:\n" + body))
    assert line.startswith("infrastructure.resource_profiles: Dictionary should have at most 64 items")


def test_duplicate_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    text = profile() + "infrastructure: {}\n"
    assert refused(floe(tmp_path, text)) == (
        "platform.yaml: duplicate key 'infrastructure' (first on line 1); keep only one"
        + " (platform.yaml, line 6)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'platform: {name: "floe\\n"}\n' + profile(),
            "platform.name: 'floe\\n' is not a valid Kubernetes name",
        ),
        (
            profile(extra='env: {"A\\n": x}\n'),
            f"{PROFILE_PATH}.env.A\\x0a: 'A\\n' is not a valid environment variable name",
        ),
        (
            profile().replace("transform:", '"transform\\n":'),
            "infrastructure.resource_profiles.transform\\x0a: 'transform\\n' is not a valid Kubernetes name",
        ),
        (
            profile(extra='env: {DUCKDB_THREADS: "\u00b2"}\n'),
            f"{PROFILE_PATH}.env.DUCKDB_THREADS: '²' is not a positive whole number",
        ),
        (
            profile(extra='env: {DUCKDB_THREADS: "\u0663"}\n'),
            f"{PROFILE_PATH}.env.DUCKDB_THREADS: '٣' is not a positive whole number",
        ),
        (
            profile(extra='node_selector: {"bad key!": x}\n'),
            f"{PROFILE_PATH}.node_selector.bad key!: 'bad key!' is not a valid Kubernetes label key",
        ),
        (
            profile(extra='node_selector: {disk: "fast ssd"}\n'),
            f"{PROFILE_PATH}.node_selector.disk: 'fast ssd' is not a valid Kubernetes label value",
        ),
        (
            profile(extra='node_selector: {disk: "' + "a" * 64 + '"}\n'),
            f"{PROFILE_PATH}.node_selector.disk: 'aaaa",
        ),
        (
            profile(extra='node_selector: {"' + "a" * 254 + '/x": y}\n'),
            f"{PROFILE_PATH}.node_selector.",
        ),
        (
            profile(extra="tolerations: [{key: k, operator: Exists, value: v}]\n"),
            f"{PROFILE_PATH}.tolerations.0.value: must be empty with operator Exists",
        ),
        (
            profile(extra="tolerations: [{operator: Equal, value: v}]\n"),
            f"{PROFILE_PATH}.tolerations.0.operator: must be Exists when key is empty",
        ),
        (
            profile(extra="tolerations: [{key: k, value: v, effect: NoSchedule, toleration_seconds: 5}]\n"),
            f"{PROFILE_PATH}.tolerations.0.toleration_seconds: applies only to effect NoExecute",
        ),
        (
            profile(extra='tolerations: [{key: "a b", value: v}]\n'),
            f"{PROFILE_PATH}.tolerations.0.key: 'a b' is not a valid Kubernetes label key",
        ),
        (
            profile(extra='tolerations: [{key: k, value: "v!"}]\n'),
            f"{PROFILE_PATH}.tolerations.0.value: 'v!' is not a valid Kubernetes label value",
        ),
    ],
)
def test_names_labels_and_tolerations_follow_kubernetes_rules(
    tmp_path: Path, text: str, expected: str
) -> None:
    line = refused(floe(tmp_path, text))
    assert line.startswith(expected), line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: 1\n\x07: 2\n",
            "platform.yaml: not valid YAML: character '\\x07' is not allowed in YAML; remove it" + LINE_2,
        ),
        ("a: [1, 2\n", "platform.yaml: not valid YAML:"),
        (
            "a: b: c\n",
            "platform.yaml: not valid YAML: mapping values are not allowed in this context",
        ),
        ("observability: {}\n", "infrastructure: required field is missing (platform.yaml, line 1)"),
        (
            profile(extra="tolerations: [{key: k, valu: v}]\n"),
            f"{PROFILE_PATH}.tolerations.0.valu: unknown field; did you mean 'value'?",
        ),
        (
            profile(extra="tolerations: [{zzz: v}]\n"),
            f"{PROFILE_PATH}.tolerations.0.zzz: unknown field; allowed: key, operator, "
            "value, effect, toleration_seconds",
        ),
        ("version: 2020-01-01\n" + profile(), "version: Input should be '1' (got '2020-01-01')"),
    ],
)
def test_messages_are_one_line_with_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    line = refused(floe(tmp_path, text))
    assert line.startswith(expected), line
    assert "<unicode string>" not in line
    assert "position" not in line


def test_a_directory_as_file_is_exit_1_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert refused(result) == f"{tmp_path}: cannot read the file: Is a directory"


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("render", "--name", "Acme"),
        ("render", "--name", "acme\n"),
        ("render", "--name", "a" * 64),
        ("render", "--namespace", "data_ns"),
        ("cr", "--name", "prod.eu"),
        ("cr", "--namespace", "-"),
    ],
)
def test_render_and_cr_names_follow_kubernetes_rules(
    tmp_path: Path, command: str, option: str, value: str
) -> None:
    line = refused(floe(tmp_path, profile(), f"{option}={value}", command=command))
    assert line.startswith(f"{option}: {value!r}"[:40]), line
    assert "is not a valid Kubernetes name" in line, line

"""A generated corpus of bad (and good) platform.yaml files through `floe validate`, `render` and `cr`.

A deterministic mutator (fixed seed) starts from the example platforms and tests/cli/bad_inputs and
swaps values, keys and bytes for hostile ones. Every case must end in exit 0 or 1 without a traceback;
every accepted case must render PodTemplates that Kubernetes' own OpenAPI (kubernetes-validate, strict)
and the naming rules OpenAPI does not carry accept; and the CRD's schema (checked with jsonschema, with
Go's `$` and the CRD's CEL key rules emulated) must agree with the CLI, except for the rules listed in
CLI_ONLY_RULES, which the operator enforces by running the same models. Runs the real CLI in-process
(CliRunner) and, for a few cases, as real subprocesses; no cluster. `make fuzz` runs a longer corpus.
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from floe_platform.cli import main
from floe_platform.codegen.crd import floe_platform_crd
from floe_platform.config.models import DNS_LABEL, ENV_NAME, LABEL_KEY, LABEL_VALUE
from floe_platform.config.safe_yaml import YamlProblem, compose_and_load
from testkit.crd_schema import spec_validator

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "platform-config/platform").glob("*/platform.yaml"))
SEEDS = EXAMPLES + sorted((ROOT / "tests/cli/bad_inputs").glob("*.yaml"))
CASES = int(os.environ.get("FLOE_FUZZ_CASES", "1000"))
SEED = int(os.environ.get("FLOE_FUZZ_SEED", "20261130"))
CASE_TIMEOUT_SECONDS = 20  # only catches a hang; `make fuzz` reports the real times
SUBPROCESS_CASES = 5

# Rules the CLI enforces that the CRD's structural schema cannot say (cross-field, arithmetic, or the
# content of env values); the operator applies them by validating the spec with the same models, and
# reports them in the FloePlatform's status. Each is matched against the CLI's message.
CLI_ONLY_RULES = {
    "requests above limits (CEL quantity() rule, not evaluated here)": "is below the request",
    "limits.memory at least 64Mi": "is below 64Mi",
    "quantity at most 4Ei": "is above 4Ei",
    "DUCKDB_MEMORY_LIMIT a DuckDB size below the limit": "DUCKDB_MEMORY_LIMIT",
    "DUCKDB_THREADS 1 to 1024": "DUCKDB_THREADS",
    "DUCKDB_TEMP_DIRECTORY absolute, no '..'": "DUCKDB_TEMP_DIRECTORY",
    "toleration operator/value/effect/seconds together": "tolerations.",
    "label key prefix at most 253": "has a prefix longer than 253",
    "storage_ref names a defined storage": "storage_ref",
    "escalate_to names a profile with more memory, without a cycle": "escalate_to",
    "no inline S3 credentials": "credentials must not be written",
    "a YAML float where an int-or-string is wanted (JSON has one number type)": "must be written as a string",
}

HOSTILE_VALUES: list[Any] = [
    *[".inf", "-.inf", ".nan", "1e400", "1e5000", "1e999999", "1e18", "1e19", "4Ei", "5Ei", "9Ei"],
    *[" 4Gi", "4Gi ", "4Gi\n", "1 core", "4 GB", "512 MB", "4 gi", "12Gb", "\u0661", "1e\u0663", "\uff12"],
    *["-1", "-0", "+1", "0", "0.5", ".5", "5.", "1.2.3", "63Mi", "64Mi", "65Mi", "1500Ki", "1n", "100m"],
    *["", " ", "a\n", "A", "a" * 63, "a" * 64, "a" * 300, "x/y", "a.b/c", "-a", "a-", "a_b", "a.b"],
    *["Exists", "Equal", "NoExecute", "NoSchedule", "Bogus", "DUCKDB_THREADS", "/tmp/x", "rel", "/a/../b"],
    *["\u00b2", "\u202e", "\x1b[31m", "\x00", "\u2028", "é", "8GB", "8 GB", "99999TB", "s3", "noop", "lake"],
    *[None, True, False, 0, 1, -1, 7, 2**31, 2**63, 2**64, 10**30, 0.5, 1.0, 1e300, float("inf")],
    *[[], {}, {"a": "b"}, ["a"], [{"key": "k"}], {"cpu": "1", "memory": "1Gi"}],
]
HOSTILE_KEYS: list[str] = [
    *["DUCKDB_THREADS", "DUCKDB_MEMORY_LIMIT", "DUCKDB_TEMP_DIRECTORY", "A\n", "bad key", "X", "_x", "1x"],
    *["a" * 64, "x.io/" + "a" * 63, "x.io/" + "a" * 64, "a" * 254 + "/b", "Example.com/x", "unknown"],
    *["limits", "requests", "limit", "cpu", "memory", "env", "tolerations", "node_selector", "secret_key"],
    *["storage", "infrastructure", "platform", "version", "é", "\u202e", "key", "value", "effect"],
]


# --- the mutator --------------------------------------------------------------------------------


def _containers(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(data, dict | list):
        yield path, data
        items = data.items() if isinstance(data, dict) else enumerate(data)
        for key, value in items:
            yield from _containers(value, (*path, key))


def _mutate_data(data: Any, rng: random.Random) -> Any:
    data = copy.deepcopy(data)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        containers = list(_containers(data))
        if not containers:
            return rng.choice(HOSTILE_VALUES)
        _, node = rng.choice(containers)
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        action = rng.random()
        if keys and action < 0.55:
            node[rng.choice(keys)] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
        elif isinstance(node, dict) and keys and action < 0.7:
            del node[rng.choice(keys)]
        elif isinstance(node, dict) and action < 0.85:
            node[rng.choice(HOSTILE_KEYS)] = copy.deepcopy(rng.choice([*HOSTILE_VALUES, *node.values()]))
        elif isinstance(node, dict) and keys:
            key = rng.choice(keys)
            node[rng.choice(HOSTILE_KEYS)] = node.pop(key)
        elif isinstance(node, list):
            node.append(copy.deepcopy(rng.choice([*HOSTILE_VALUES, *node])))
    return data


def _duplicate_a_line(text: str, rng: random.Random) -> str:  # often a duplicate key
    lines = text.splitlines(keepends=True) or ["\n"]
    index = rng.randrange(len(lines))
    return "".join([*lines[: index + 1], lines[index], *lines[index + 1 :]])


def _insert_a_character(text: str, rng: random.Random) -> str:
    position = rng.randrange(len(text) + 1)
    character = rng.choice(["\x07", "\x00", "\ufeff", "\u202e", "\t", "\r", "\x85", "é"])
    return text[:position] + character + text[position:]


def _nest_deeply(text: str, rng: random.Random) -> str:
    depth = rng.choice([10, 33, 200, 5000])
    return text + f"deep: {'[' * depth}{']' * depth}\n"


def _alias_bomb(text: str, rng: random.Random) -> str:
    levels = rng.randint(3, 9)
    bomb = ["b0: &b0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 10)}]" for i in range(1, levels)]
    return text + "\n".join(bomb) + "\n"


def _odd_yaml(text: str, rng: random.Random) -> str:
    extras = ["%YAML 1.1\n---\n", "---\nsecond: doc\n", "? [a]\n: b\n", "!!python/name:os.system x\n"]
    extras += ["loop: &l [*l]\n", f"x: {'9' * rng.choice([20, 5000, 20000])}\n", "when: 2024-13-45\n"]
    return text + rng.choice(extras)


TEXT_MUTATIONS = [
    _duplicate_a_line,
    _insert_a_character,
    lambda text, rng: text[: rng.randrange(len(text) + 1)],  # truncated
    _nest_deeply,
    _alias_bomb,
    _odd_yaml,
    lambda text, rng: text.replace(": ", ": &a ", 1).replace("\n", "\nz: *a\n", 1),
]


def _mutate_text(text: str, rng: random.Random) -> str:
    """Byte-level and YAML-level hostility the data mutator cannot produce."""
    mutation: Any = rng.choice(TEXT_MUTATIONS)
    return str(mutation(text, rng))


def generate_corpus(count: int, seed: int) -> list[tuple[str, str]]:
    """(kind, text) pairs; the same list for the same count and seed."""
    rng = random.Random(seed)
    sources = [(path.name, path.read_text(encoding="utf-8")) for path in SEEDS]
    corpus = [("seed", text) for _, text in sources]
    examples = sources[: len(EXAMPLES)]
    while len(corpus) < count:
        # Half start from the valid examples, so that many mutants stay valid and get rendered and checked.
        _, text = rng.choice(examples if rng.random() < 0.5 else sources)
        data = _as_data(text)[1]  # the safe reader: a seed may be an alias cycle
        if data is not None and rng.random() < 0.7:
            dumped = yaml.safe_dump(
                _mutate_data(data, rng), sort_keys=False, allow_unicode=rng.random() < 0.5
            )
            corpus.append(("data", dumped))
        else:
            corpus.append(("text", _mutate_text(text, rng)))
    return corpus[:count]


# --- the checks ---------------------------------------------------------------------------------


SPEC_VALIDATOR = spec_validator(floe_platform_crd())


def crd_accepts(data: Any) -> bool:
    try:
        json.dumps(data)
    except (TypeError, ValueError):
        return False  # not JSON: kubectl could not send it
    return bool(SPEC_VALIDATOR.is_valid(data))


def _rules_openapi_does_not_carry(document: dict[str, Any]) -> None:
    """Names and labels as the API server's own validation checks them (OpenAPI only says "string")."""
    metadata = document["metadata"]
    assert len(metadata["name"]) <= 253
    assert DNS_LABEL.fullmatch(metadata["name"])
    if "namespace" in metadata:
        assert DNS_LABEL.fullmatch(metadata["namespace"])
    spec = document["template"]["spec"]
    labels = {
        **metadata["labels"],
        **document["template"]["metadata"]["labels"],
        **spec.get("nodeSelector", {}),
    }
    for key, value in labels.items():
        assert LABEL_KEY.fullmatch(key), key
        assert len(key.rpartition("/")[0]) <= 253, key
        assert LABEL_VALUE.fullmatch(value), value
        assert len(value) <= 63, value
    for variable in spec["containers"][0]["env"]:
        assert ENV_NAME.fullmatch(variable["name"]), variable
    for toleration in spec.get("tolerations", []):
        assert toleration["operator"] in ("Exists", "Equal")
        if toleration["operator"] == "Exists":
            assert not toleration.get("value")
        if "tolerationSeconds" in toleration:
            assert toleration.get("effect") == "NoExecute"


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Hang


def _run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"floe {args[0]} raised {result.exception!r}")
    return result.exit_code, result.stdout, result.stderr


def _check_refusal(stderr: str) -> None:
    assert stderr, "refused without a message"
    assert "Traceback" not in stderr
    for line in stderr.splitlines():
        assert ": " in line, line
        assert line.isprintable(), line


def check_case(path: Path, text: str) -> tuple[bool, str]:
    """Run all three commands on one file; return (accepted, first error line)."""
    path.write_text(text, encoding="utf-8")
    results = {
        command: _run([command, str(path), *extra])
        for command, extra in (
            ("validate", []),
            ("render", ["--name", "acme", "--namespace", "data"]),
            ("cr", ["--namespace", "data"]),
        )
    }
    codes = {command: code for command, (code, _, _) in results.items()}
    assert set(codes.values()) <= {0, 1}, codes
    assert len(set(codes.values())) == 1, codes
    if codes["validate"] == 1:
        _check_refusal(results["validate"][2])
        return False, results["validate"][2].splitlines()[0]
    for document in yaml.safe_load_all(results["render"][1]):
        kubernetes_validate.validate(document, "1.37", strict=True)
        _rules_openapi_does_not_carry(document)
    resource = yaml.safe_load(results["cr"][1])
    assert crd_accepts(resource["spec"]), "floe cr wrote a spec the CRD refuses"
    return True, ""


def _as_data(text: str) -> tuple[bool, Any]:
    try:
        _, data = compose_and_load(text)
    except (YamlProblem, yaml.YAMLError):
        return False, None
    return True, data


def run_corpus(tmp_path: Path, corpus: list[tuple[str, str]]) -> dict[str, Any]:
    stats: Counter[str] = Counter()
    cli_only: Counter[str] = Counter()
    times: list[float] = []
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for index, (kind, text) in enumerate(corpus):
            signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT_SECONDS)
            started = time.perf_counter()
            try:
                accepted, error = check_case(tmp_path / "platform.yaml", text)
            except _Hang:
                pytest.fail(f"case {index} ({kind}) took over {CASE_TIMEOUT_SECONDS} s:\n{text[:2000]}")
            except AssertionError as failure:
                raise AssertionError(
                    f"case {index} ({kind}): {failure}\n--- input ---\n{text[:3000]}"
                ) from None
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            times.append(time.perf_counter() - started)
            stats["tried"] += 1
            stats[f"tried:{kind}"] += 1
            stats["accepted" if accepted else "refused"] += 1
            is_yaml, data = _as_data(text)
            if not is_yaml:
                stats["refused:yaml"] += 1
                continue
            crd_ok = isinstance(data, dict) and crd_accepts(data)
            if accepted:
                assert crd_ok, f"case {index}: the CLI accepts what the CRD refuses:\n{text[:3000]}"
            elif crd_ok:
                rule = next((name for name, marker in CLI_ONLY_RULES.items() if marker in error), None)
                assert rule, f"case {index}: the CRD accepts what the CLI refuses ({error}):\n{text[:3000]}"
                cli_only[rule] += 1
            else:
                stats["refused:both"] += 1
    finally:
        signal.signal(signal.SIGALRM, previous)
    return {"stats": stats, "cli_only": cli_only, "times": times}


def _report(result: dict[str, Any]) -> str:
    stats, times = result["stats"], sorted(result["times"])
    lines = [
        f"corpus seed {SEED}: tried {stats['tried']} (seeds {stats['tried:seed']}, data mutations "
        f"{stats['tried:data']}, text mutations {stats['tried:text']})",
        f"accepted and rendered valid {stats['accepted']}; refused {stats['refused']} (not YAML "
        f"platform.yaml accepts {stats['refused:yaml']}, refused by CLI and CRD {stats['refused:both']}, "
        "CLI only "
        f"{sum(result['cli_only'].values())})",
        *(f"  CLI only, {rule}: {count}" for rule, count in sorted(result["cli_only"].items())),
        f"time per case (validate + render + cr, in-process): median "
        f"{statistics.median(times) * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms",
    ]
    return "\n".join(lines)


@pytest.mark.slow
def test_generated_corpus_never_crashes_hangs_or_renders_invalid_objects(tmp_path: Path) -> None:
    corpus = generate_corpus(CASES, SEED)
    result = run_corpus(tmp_path, corpus)
    print("\n" + _report(result))
    assert result["stats"]["tried"] == CASES
    assert result["stats"]["accepted"] > 0
    assert result["stats"]["refused"] > 0


def test_corpus_is_the_same_for_the_same_seed() -> None:
    assert generate_corpus(50, SEED) == generate_corpus(50, SEED)


@pytest.mark.parametrize("index", range(SUBPROCESS_CASES))
def test_a_few_corpus_cases_as_real_subprocesses(tmp_path: Path, index: int) -> None:
    """The same contract when `floe` runs as users run it: exit 0 or 1, never a traceback."""
    _, text = generate_corpus(SUBPROCESS_CASES * 40, SEED)[index * 37 + 3]
    path = tmp_path / "platform.yaml"
    path.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "floe_platform.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    if result.returncode == 1:
        _check_refusal(result.stderr)

"""Load platform.yaml into ``PlatformConfig``, turning every problem into one line that names the field.

Lines look like ``infrastructure.resource_profiles.transform.requests.memory: '4Gb' is not a Kubernetes
quantity (use 4Gi or 4G) (platform.yaml, line 7)``. Nothing here raises anything but ``ConfigError``.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from floe_platform.config.models import PlatformConfig
from floe_platform.config.quantity import shown
from floe_platform.config.safe_yaml import MAX_INPUT_CHARS, OversizedNumber, YamlProblem, compose_and_load

Loc = tuple[str | int, ...]


MAX_LINES = 20
"""Problems reported at most; a file with thousands of mistakes gets the first ones and a count."""


class ConfigError(Exception):
    """platform.yaml (or a FloePlatform spec) is invalid; ``lines`` holds one message per problem.

    Each line is made safe to print once, here: control and format characters (a newline in a key, a
    terminal escape, a bidi override) are escaped, so one problem is always one line.
    """

    def __init__(self, lines: list[str]) -> None:
        shown = [_one_line(line) for line in lines[:MAX_LINES]]
        if len(lines) > MAX_LINES:
            shown.append(f"... and {len(lines) - MAX_LINES} more problems; fix these first")
        super().__init__("\n".join(shown))
        self.lines = shown


def _one_line(text: str) -> str:
    return "".join(
        _escaped(char) if unicodedata.category(char)[0] in "CZ" and char != " " else char for char in text
    )


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _key_lines(node: yaml.Node, loc: Loc = ()) -> dict[Loc, int]:
    """Map each YAML path to the 1-based line where its key (or list item) starts."""
    lines: dict[Loc, int] = {loc: node.start_mark.line + 1} if not loc else {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "<complex key>"
            child = (*loc, key)
            lines[child] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, child))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*loc, index)
            lines[child] = item.start_mark.line + 1
            lines.update(_key_lines(item, child))
    return lines


class _MappingMarker:
    """Stands for ``dict[name, Model]`` or ``list[Model]``: the next path part is a name or an index."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model


def _inner_model(annotation: Any) -> Any:
    """The model class inside ``annotation`` (``Model``, ``Model | None``, ``dict[str, Model]``), if any."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_mapping_of_models(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) in (dict, list)


def _allowed_fields(loc: Loc) -> list[str]:
    """Field names of the model that ``loc`` points into, to suggest the right spelling of a typo."""
    model: Any = PlatformConfig
    for part in loc:
        if isinstance(model, _MappingMarker):
            model = model.model
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        inner = _inner_model(field.annotation)
        if inner is None:
            return []
        model = _MappingMarker(inner) if _is_mapping_of_models(field.annotation) else inner
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _message(error: Mapping[str, Any]) -> tuple[Loc, str]:
    # pydantic marks errors in a dict key with a trailing "[key]"; the key itself already names the place.
    loc: Loc = tuple(part for part in error["loc"] if part != "[key]")
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "floe_field":
        return (*loc, *ctx.get("subpath", ())), str(ctx["message"])
    if kind == "floe_value":
        return loc, str(error["msg"])
    if kind == "extra_forbidden":
        allowed = _allowed_fields(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
        return loc, f"unknown field; {hint}"
    if kind == "missing":
        return loc, "required field is missing"
    return loc, f"{error['msg']} (got {_described(error.get('input'))})"


def _described(value: Any) -> str:
    """The offending value as the user wrote it, short; never a Python type's repr."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, str | int | float | bool | OversizedNumber):
        return shown(value)
    return f"a YAML {type(value).__name__}"


def format_errors(
    error: ValidationError,
    key_lines: Mapping[Loc, int] | None = None,
    source: str | None = None,
    prefix: Loc = (),
) -> list[str]:
    """One line per pydantic error: ``path: message`` plus the file and line when known."""
    lines = []
    messages = [_message(item) for item in error.errors()]
    for loc, text in _without_missing_typos(messages):
        path = ".".join(str(part) for part in (*prefix, *loc)) or "(top level)"
        line_number = _nearest_line(loc, key_lines or {})
        where = f" ({source}, line {line_number})" if source and line_number else ""
        lines.append(f"{path}: {text}{where}")
    return lines


def _without_missing_typos(messages: list[tuple[Loc, str]]) -> list[tuple[Loc, str]]:
    """Drop "required field is missing" where the same mapping has a misspelling of that field.

    ``limit:`` instead of ``limits:`` is one mistake, so it gets one line (the "did you mean" one).
    """
    suggested = {
        (*loc[:-1], text.rsplit("'", 2)[1])
        for loc, text in messages
        if text.startswith("unknown field; did you mean")
    }
    return [(loc, text) for loc, text in messages if not (text.endswith("is missing") and loc in suggested)]


def _nearest_line(loc: Loc, key_lines: Mapping[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):  # down to (): the document itself
        if loc[:end] in key_lines:
            return key_lines[loc[:end]]
    return None


def parse_platform(
    data: Any, *, key_lines: Mapping[Loc, int] | None = None, source: str | None = None, prefix: Loc = ()
) -> PlatformConfig:
    """Validate already-parsed data (a dict from YAML or a FloePlatform's spec)."""
    if not isinstance(data, dict):
        where = ".".join(map(str, prefix)) or source or "platform.yaml"
        raise ConfigError([f"{where}: expected a mapping of sections (infrastructure, observability, ...)"])
    try:
        return PlatformConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_errors(error, key_lines, source, prefix)) from None


def load_platform_text(text: str, source: str = "platform.yaml") -> PlatformConfig:
    """Parse and validate platform.yaml text (hostile input included: see ``safe_yaml``)."""
    try:
        node, data = compose_and_load(text)
    except YamlProblem as problem:
        raise ConfigError([f"{source}: {problem.message}{_where(source, problem.line)}"]) from None
    except yaml.YAMLError as error:
        raise ConfigError(
            [f"{source}: not valid YAML: {_yaml_problem(error)}{_where(source, _yaml_line(error, text))}"]
        ) from None
    return parse_platform(data, key_lines=_key_lines(node) if node else {}, source=source)


def _where(source: str, line: int | None) -> str:
    return f" ({source}, line {line})" if line is not None else ""


def _yaml_problem(error: yaml.YAMLError) -> str:
    """The reader's, scanner's or parser's own words, without its two-line "in <unicode string>" part."""
    if isinstance(error, yaml.reader.ReaderError):
        character = error.character if isinstance(error.character, str) else chr(error.character)
        return f"character {character!r} is not allowed in YAML; remove it"
    problem = getattr(error, "problem", None) or "cannot parse it"
    context = getattr(error, "context", None)
    return f"{problem} ({context})" if context else str(problem)


def _yaml_line(error: yaml.YAMLError, text: str) -> int | None:
    if isinstance(error, yaml.reader.ReaderError):
        return text.count("\n", 0, error.position) + 1
    mark = getattr(error, "problem_mark", None)
    return mark.line + 1 if mark is not None else None


def load_platform(path: str | Path) -> PlatformConfig:
    """Read and validate a platform.yaml file (reading no more than the size limit, so /dev/zero ends)."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_INPUT_CHARS * 4 + 1)  # UTF-8 needs at most 4 bytes a character
        text = raw.decode("utf-8")
    except OSError as error:
        raise ConfigError([f"{path}: cannot read the file: {error.strerror or error}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: cannot read the file: it is not UTF-8 text"]) from None
    return load_platform_text(text, source=path.name)

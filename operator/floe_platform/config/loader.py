"""Load platform.yaml into ``PlatformConfig``, turning every problem into one line that names the field.

Lines look like ``infrastructure.resource_profiles.transform.requests.memory: '4Gb' is not a Kubernetes
quantity (use 4Gi or 4G) (platform.yaml, line 7)``. Nothing here raises anything but ``ConfigError``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from floe_platform.config.models import PlatformConfig

Loc = tuple[str | int, ...]


class ConfigError(Exception):
    """platform.yaml (or a FloePlatform spec) is invalid; ``lines`` holds one message per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _key_lines(node: yaml.Node, loc: Loc = ()) -> dict[Loc, int]:
    """Map each YAML path to the 1-based line where its key (or list item) starts."""
    lines: dict[Loc, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*loc, key_node.value)
            lines[child] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, child))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*loc, index)
            lines[child] = item.start_mark.line + 1
            lines.update(_key_lines(item, child))
    return lines


class _MappingMarker:
    """Stands for ``dict[name, Model]``: the next path part is a user-chosen name, then the model."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model


def _inner_model(annotation: Any) -> Any:
    """The model class inside ``annotation`` (``Model``, ``Model | None``, ``dict[str, Model]``), if any."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_mapping_of_models(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is dict


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
    if kind in ("quantity", "dns_label"):
        return loc, str(error["msg"])
    if kind == "extra_forbidden":
        allowed = _allowed_fields(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
        return loc, f"unknown field; {hint}"
    if kind == "missing":
        return loc, "required field is missing"
    return loc, f"{error['msg']} (got {error.get('input')!r})"


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
    for end in range(len(loc), 0, -1):
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
    """Parse and validate platform.yaml text."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" ({source}, line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([f"{source}: not valid YAML: {problem}{where}"]) from None
    return parse_platform(data, key_lines=_key_lines(node) if node else {}, source=source)


def load_platform(path: str | Path) -> PlatformConfig:
    """Read and validate a platform.yaml file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([f"{path}: cannot read the file: {error.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: cannot read the file: it is not UTF-8 text"]) from None
    return load_platform_text(text, source=path.name)

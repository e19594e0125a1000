"""Read YAML that may be hostile: bounded in size, depth and alias expansion, with no duplicate keys.

PyYAML alone accepts a duplicate key (the last one silently wins), expands a "billion laughs" file into a
structure that takes minutes to walk, and overflows Python's stack on deep nesting or a self-referencing
alias. Here one streaming pass over the parser's events measures depth and the expanded size (each alias
counts as the node it repeats) before anything is built, so the cost of a file is bounded by the limits
below whatever it contains. Every problem is a ``YamlProblem`` with a one-line message and a line number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

MAX_INPUT_CHARS = 256 * 1024
"""A real platform.yaml is a few KiB; 64 profiles with every field set stay under 100 KiB."""
MAX_DEPTH = 32
"""platform.yaml nests six levels; this leaves room for flow style without letting recursion run out."""
MAX_NODES = 100_000
"""Values after expanding aliases; the largest valid platform.yaml has about 40 000."""
MAX_INT_DIGITS = 1000
"""Longer integers are kept as ``OversizedNumber``: Python refuses to print ints above 4300 digits."""

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster


class YamlProblem(Exception):
    """Why the text is not acceptable YAML, and the 1-based line where, if known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class OversizedNumber:
    """An integer too long to be any platform.yaml value; validation reports it at its field."""

    digits: int

    def __repr__(self) -> str:
        return f"a number of {self.digits} digits"


class _Loader(_Base):  # type: ignore[misc]
    """SafeLoader that refuses duplicate keys, keeps dates as text and never builds a huge int."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise YamlProblem(f"duplicate key {key!r} (first on line {seen[key]}); keep only one", line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]

    def construct_bounded_int(self, node: yaml.ScalarNode) -> Any:
        digits = sum(char.isdigit() for char in node.value)
        if digits > MAX_INT_DIGITS:
            return OversizedNumber(digits)
        return self.construct_yaml_int(node)

    def construct_timestamp_text(self, node: yaml.ScalarNode) -> Any:
        # A FloePlatform reaches the API server as JSON, where 2024-01-01 is a string; reading it the same
        # way here keeps `floe validate` and the CRD in agreement (and 2024-13-45 from crashing datetime).
        return self.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_bounded_int)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_timestamp_text)


def check_shape(text: str) -> None:
    """Refuse text that is too large, too deep, self-referencing or too large once aliases expand."""
    if len(text) > MAX_INPUT_CHARS:
        raise YamlProblem(
            f"the file is larger than {MAX_INPUT_CHARS // 1024} KiB; a platform.yaml is a few KiB"
        )
    expanded = 0
    sizes: dict[str, int] = {}  # anchor -> nodes in the anchored value, once it is complete
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, expanded count when it started)
    for event in yaml.parse(text, Loader=_Base):
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_nodes) >= MAX_DEPTH:
                raise YamlProblem(
                    f"nested more than {MAX_DEPTH} levels deep; platform.yaml needs at most 6", line
                )
            open_nodes.append((event.anchor, expanded))
            expanded += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = expanded - start
        elif isinstance(event, yaml.ScalarEvent):
            expanded += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            expanded += _alias_size(event.anchor or "", sizes, open_nodes, line)
        if expanded > MAX_NODES:
            raise YamlProblem(
                f"more than {MAX_NODES} values once aliases are expanded; write the values out instead", line
            )


def _alias_size(
    anchor: str, sizes: dict[str, int], open_nodes: list[tuple[str | None, int]], line: int | None
) -> int:
    if any(open_anchor == anchor for open_anchor, _ in open_nodes):
        raise YamlProblem(f"alias *{anchor} repeats a value that contains it; remove the cycle", line)
    return sizes.get(anchor, 1)  # an undefined alias is reported by the composer


def compose_and_load(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data of a single YAML document, after ``check_shape``."""
    check_shape(text)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()

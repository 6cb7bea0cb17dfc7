"""Parse YAML into plain values while keeping the line and column of every value.

PyYAML's safe composer builds the node graph; this module turns it into dicts,
lists and scalars itself so it can reject what a plain ``yaml.safe_load`` would
silently accept (a key given twice in one mapping) and stop an alias bomb before
it expands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.errors import Problem

# Each value in the document, after aliases are expanded, counts as one node.
# A file of 10,000 fully specified entries has about 250,000; an alias bomb
# ("billion laughs") has billions.
MAX_NODES = 1_000_000

Location = tuple[int, int]
JsonPath = tuple[str | int, ...]


@dataclass
class ParsedYaml:
    """A YAML document as plain Python values, with the position of each value."""

    value: Any
    positions: dict[JsonPath, Location] = field(default_factory=dict)
    key_positions: dict[JsonPath, Location] = field(default_factory=dict)
    # Scalars whose YAML type is not a string, with their source text, so that
    # a message can say how YAML read them ("0212 is the octal number 138").
    scalar_texts: dict[JsonPath, str] = field(default_factory=dict)

    def position(self, path: JsonPath) -> Location:
        """Return the position of the value at ``path``, or of its nearest parent."""
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))


class _Builder:
    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self.parsed = ParsedYaml(value=None)
        self.problems: list[Problem] = []
        self.nodes_seen = 0
        self._constructor = yaml.SafeLoader("")

    def problem(self, mark: yaml.Mark, message: str) -> None:
        self.problems.append(
            Problem(self.source_name, mark.line + 1, mark.column + 1, message)
        )

    def build(self, node: yaml.Node, path: JsonPath) -> Any:
        self.nodes_seen += 1
        if self.nodes_seen > MAX_NODES:
            raise _TooLarge(node)
        self.parsed.positions.setdefault(
            path, (node.start_mark.line + 1, node.start_mark.column + 1)
        )
        if isinstance(node, yaml.MappingNode):
            return self._build_mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._build_scalar(node, path)

    def _build_scalar(self, node: yaml.Node, path: JsonPath) -> Any:
        value = self._constructor.construct_object(node, deep=True)
        if not isinstance(value, str):
            self.parsed.scalar_texts[path] = str(node.value)
        return value

    def _build_mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_seen: dict[Any, yaml.Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problem(key_node.start_mark, "merge keys (<<) are not supported")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node.start_mark, "a mapping key must be a plain name")
                continue
            key = self._constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key_node.value)
            if key in first_seen:
                line = first_seen[key].line + 1
                self.problem(
                    key_node.start_mark,
                    f"duplicate key '{key}': it is already given on line {line} "
                    "of this mapping",
                )
                continue
            first_seen[key] = key_node.start_mark
            child = (*path, key)
            self.parsed.key_positions[child] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            result[key] = self.build(value_node, child)
        return result


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


def parse_yaml(text: str, source_name: str) -> tuple[ParsedYaml, list[Problem]]:
    """Parse one YAML document; return its values and every problem found."""
    builder = _Builder(source_name)
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as error:
        return builder.parsed, [_syntax_problem(error, source_name)]
    except yaml.YAMLError as error:
        return builder.parsed, [Problem(source_name, 1, 1, f"invalid YAML: {error}")]

    if len(documents) > 1:
        return builder.parsed, [
            Problem(
                source_name,
                1,
                1,
                "the file holds several YAML documents; "
                "keep one (remove the extra '---')",
            )
        ]
    if not documents or documents[0] is None:
        return builder.parsed, [Problem(source_name, 1, 1, "the file is empty")]

    try:
        builder.parsed.value = builder.build(documents[0], ())
    except _TooLarge as error:
        mark = error.node.start_mark
        message = (
            f"the document expands to more than {MAX_NODES:,} values "
            "(aliases that repeat large parts?); it is rejected"
        )
        return builder.parsed, [
            Problem(source_name, mark.line + 1, mark.column + 1, message)
        ]
    except yaml.constructor.ConstructorError as error:
        return builder.parsed, [_syntax_problem(error, source_name)]
    return builder.parsed, builder.problems


def _syntax_problem(error: yaml.MarkedYAMLError, source_name: str) -> Problem:
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    parts = [part for part in (error.context, error.problem) if part]
    detail = ", ".join(parts) if parts else "invalid YAML"
    if "'\\t'" in detail or "\t" in detail:
        detail += " (indent with spaces; YAML does not allow tabs there)"
    return Problem(source_name, line, column, f"invalid YAML: {detail}")

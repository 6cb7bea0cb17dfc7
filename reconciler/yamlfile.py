"""Parse YAML into plain values while keeping the line and column of every value.

PyYAML's safe composer builds the node graph, and this module turns it into
dicts, lists and scalars itself. So it can reject what a plain
``yaml.safe_load`` would silently accept (a key given twice in one mapping, a
tag on a list), and stop an alias bomb or a deeply nested document before it is
expanded.
"""

from __future__ import annotations

import sys
import unicodedata
from dataclasses import dataclass, field
from typing import Any, cast

import yaml

from reconciler.errors import Problem

# Each node of the document, after aliases are expanded, counts once: every key,
# value and list item. A file of 10,000 fully specified entries has about
# 350,000; an alias bomb ("billion laughs") has billions.
MAX_NODES = 1_000_000

# extensions.yaml nests 6 levels (file, extensions, entry, user_manager, groups,
# group). PyYAML composes recursively, about 3 Python frames per level, so the
# limit also keeps deep nesting far from Python's recursion limit.
MAX_DEPTH = 20

Location = tuple[int, int]
JsonPath = tuple[str | int, ...]

_YAML_TAG_PREFIX = "tag:yaml.org,2002:"
# Tags a plain YAML file resolves to by itself. `value` is the YAML 1.1 tag of
# a lone "=", which SafeLoader resolves but cannot construct, so it is read as
# a string. Every other tag (!!python/..., !!binary, !!set, !custom) is rejected.
_PLAIN_SCALAR_TAGS = frozenset(
    _YAML_TAG_PREFIX + name
    for name in ("str", "int", "float", "bool", "null", "timestamp", "value")
)
_MERGE_TAG = _YAML_TAG_PREFIX + "merge"


@dataclass
class ParsedYaml:
    """A YAML document as plain Python values, with the position of each value."""

    value: Any
    positions: dict[JsonPath, Location] = field(default_factory=dict)
    key_positions: dict[JsonPath, Location] = field(default_factory=dict)
    # Scalars whose YAML type is not a string, with their source text, so that
    # a message can say how YAML read them ("0212 is the octal number 138").
    scalar_texts: dict[JsonPath, str] = field(default_factory=dict)
    # Values the parser already reported (a rejected tag, an invalid date): the
    # value kept there is a stand-in, so no further check should describe it.
    reported: set[JsonPath] = field(default_factory=set)
    # Mappings that lost a key the parser rejected (a merge key, a list as a
    # key), so a "missing key" there may be a consequence, not a second mistake.
    incomplete: set[JsonPath] = field(default_factory=set)
    # True when every string value is known to be printable (str.isprintable),
    # so the check for control and invisible characters can skip the walk.
    printable: bool = False

    def position(self, path: JsonPath) -> Location:
        """Return the position of the value at ``path``, or of its nearest parent."""
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def is_reported(self, path: JsonPath) -> bool:
        """Return whether the parser reported the value at ``path`` or a parent."""
        return any(path[:length] in self.reported for length in range(len(path) + 1))


class _Rejected(Exception):
    """A problem that rejects the whole document, at the location of ``mark``."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.location = _location(mark)
        self.message = message


class _Bounds:
    """A composer mixin that counts nesting depth and expanded size.

    Counting while composing stops a billion-laughs file after reading it once,
    before anything is expanded, and stops an alias inside the node it names,
    which would otherwise expand forever.
    """

    def _start_counting(self) -> None:
        self._open_anchors: list[str | None] = []
        self._expanded_nodes = 0
        self._anchor_sizes: dict[str, int] = {}

    # Set by the loader class this is mixed into (PyYAML's composer and parser).
    peek_event: Any

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        composer: Any = super()
        if isinstance(event, yaml.AliasEvent):
            self._count_alias(event)
            return cast(yaml.Node, composer.compose_node(parent, index))

        if len(self._open_anchors) >= MAX_DEPTH:
            raise _Rejected(
                event.start_mark,
                f"the document nests deeper than {MAX_DEPTH} levels; "
                "extensions.yaml needs 6 at most, so remove the extra brackets",
            )
        anchor = getattr(event, "anchor", None)
        size_before = self._expanded_nodes
        self._add_nodes(1, event.start_mark)
        self._open_anchors.append(anchor)
        try:
            node = cast(yaml.Node, composer.compose_node(parent, index))
        finally:
            self._open_anchors.pop()
        if anchor is not None:
            self._anchor_sizes[anchor] = self._expanded_nodes - size_before
        return node

    def _count_alias(self, event: yaml.AliasEvent) -> None:
        if event.anchor in self._open_anchors:
            raise _Rejected(
                event.start_mark,
                f"the alias *{event.anchor} is inside the node &{event.anchor} it "
                "refers to, so it would repeat forever; remove the alias",
            )
        # An undefined alias has no size yet; the composer reports it.
        self._add_nodes(self._anchor_sizes.get(str(event.anchor), 0), event.start_mark)

    def _add_nodes(self, count: int, mark: Any) -> None:
        self._expanded_nodes += count
        if self._expanded_nodes > MAX_NODES:
            raise _Rejected(
                mark,
                f"the document expands to more than {MAX_NODES:,} values here "
                "(aliases that repeat large parts?); it is rejected",
            )


class _BoundedLoader(_Bounds, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader with the bounds; its messages are tested."""

    def __init__(self, stream: str) -> None:
        yaml.SafeLoader.__init__(self, stream)
        self._start_counting()


try:
    from yaml.cyaml import CParser  # type: ignore[attr-defined]
except ImportError:  # PyYAML built without libyaml
    CParser = None  # type: ignore[assignment, misc]


class _FastBoundedLoader(
    _Bounds,
    yaml.composer.Composer,
    CParser or yaml.parser.Parser,  # type: ignore[misc]
    yaml.constructor.SafeConstructor,
    yaml.resolver.Resolver,
):
    """libyaml's scanner and parser under the bounded Python composer.

    About 15 times faster than the pure-Python scanner on a large file. Its
    error messages differ, so a file it rejects is parsed again by
    _BoundedLoader to report the tested message.
    """

    def __init__(self, stream: str) -> None:
        CParser.__init__(self, stream)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._start_counting()


class _Builder:
    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self.parsed = ParsedYaml(value=None)
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")

    def problem(self, mark: yaml.Mark, message: str) -> None:
        self.problems.append(
            Problem(self.source_name, mark.line + 1, mark.column + 1, message)
        )

    def build(self, node: yaml.Node, path: JsonPath) -> Any:
        self.parsed.positions.setdefault(
            path, (node.start_mark.line + 1, node.start_mark.column + 1)
        )
        if not _is_plain(node):
            self.problem(node.start_mark, _tag_message(node.tag))
            self.parsed.reported.add(path)
            return node.value if isinstance(node, yaml.ScalarNode) else None
        if isinstance(node, yaml.MappingNode):
            return self._build_mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._build_scalar(node, path)

    def _build_scalar(self, node: yaml.Node, path: JsonPath) -> Any:
        text = str(node.value)
        if node.tag == _YAML_TAG_PREFIX + "value":
            return text
        try:
            value = self._constructor.construct_object(node, deep=True)
        except (ValueError, LookupError, AttributeError, TypeError):
            # SafeConstructor raises these on a scalar that matches a type's
            # pattern but not its rules (2024-02-30, an int of 5,000 digits)
            # and on an explicit tag with a wrong value (!!int abc, a bare
            # !!int, !!bool maybe).
            self.problem(node.start_mark, _scalar_message(node.tag, text))
            self.parsed.reported.add(path)
            return text
        if isinstance(value, int) and not _prints_as_decimal(value):
            # A hexadecimal, octal or binary number may be longer in decimal
            # than Python converts, and messages print values in decimal.
            self.problem(node.start_mark, _huge_number_message(text))
            self.parsed.reported.add(path)
            return text
        if not isinstance(value, str):
            self.parsed.scalar_texts[path] = text
        return value

    def _build_mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_seen: dict[Any, yaml.Mark] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in first_seen:
                line = first_seen[key].line + 1
                self.problem(
                    key_node.start_mark,
                    f"duplicate key '{escape_hidden(key)}': it is already given on "
                    f"line {line} of this mapping",
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

    def _key(self, key_node: yaml.Node, path: JsonPath) -> str | None:
        """Return the key's text, or None after reporting a key that is rejected.

        A key is used as written: `1:` and `yes:` are the keys "1" and "yes".
        """
        if key_node.tag == _MERGE_TAG:
            message = (
                "merge keys (<<) are not supported; write the keys out in this "
                "entry, or put shared values under defaults"
            )
        elif not isinstance(key_node, yaml.ScalarNode):
            message = "a mapping key must be a plain name, not a list or a mapping"
        elif not _is_plain(key_node):
            message = _tag_message(key_node.tag)
        else:
            return str(key_node.value)
        self.problem(key_node.start_mark, message)
        self.parsed.incomplete.add(path)
        return None


def _is_plain(node: yaml.Node) -> bool:
    if isinstance(node, yaml.ScalarNode):
        return node.tag in _PLAIN_SCALAR_TAGS
    if isinstance(node, yaml.MappingNode):
        return node.tag == _YAML_TAG_PREFIX + "map"
    return node.tag == _YAML_TAG_PREFIX + "seq"


def _tag_message(tag: str) -> str:
    return (
        f"the tag {escape_hidden(_short_tag(tag))} is not allowed: this file "
        "takes plain text, numbers, true/false, lists and mappings only; remove "
        "the tag"
    )


def _scalar_message(tag: str, text: str) -> str:
    if tag == _YAML_TAG_PREFIX + "timestamp":
        return (
            f"YAML reads {escape_hidden(text)} as a date, but it is not a valid date; "
            f'quote it if it is text: "{escape_hidden(text)}"'
        )
    max_digits = sys.get_int_max_str_digits()
    if tag == _YAML_TAG_PREFIX + "int" and 0 < max_digits < len(text):
        # Python rejects converting a string of more digits than this to int
        # (4,300 unless configured), against quadratic-time conversions.
        return _huge_number_message(text)
    return (
        f"'{escape_hidden(text)}' is not a valid {_short_tag(tag)} value; "
        "remove the tag or fix the value"
    )


def _huge_number_message(text: str) -> str:
    return (
        f"the number {text[:20]}... has {len(text):,} digits, far more than "
        "any value in this file takes; shorten it"
    )


def _prints_as_decimal(value: int) -> bool:
    try:
        str(value)
    except ValueError:
        return False
    return True


def _short_tag(tag: str) -> str:
    if tag.startswith(_YAML_TAG_PREFIX):
        return "!!" + tag.removeprefix(_YAML_TAG_PREFIX)
    return tag


def escape_hidden(text: str, keep: frozenset[str] = frozenset()) -> str:
    """Return ``text`` with control and invisible format characters escaped.

    Messages quote values from the file; an escape sequence or a right-to-left
    override written to a terminal as is would hide or rewrite the message.
    Characters in ``keep`` stay as they are.
    """
    return "".join(
        f"\\u{ord(c):04x}" if _is_hidden(c) and c not in keep else c for c in text
    )


def _is_hidden(character: str) -> bool:
    """Return whether ``character`` is a control, format, separator or surrogate.

    A lone surrogate (YAML's "\\ud800" escape) cannot be encoded as UTF-8, so
    writing it to a terminal would raise UnicodeEncodeError.
    """
    return unicodedata.category(character) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def parse_yaml(text: str, source_name: str) -> tuple[ParsedYaml, list[Problem]]:
    """Parse one YAML document; return its values and every problem found."""
    plain = parse_plain(text)
    if plain is not None:
        return plain, []
    return parse_yaml_fully(text, source_name)


def parse_yaml_fully(text: str, source_name: str) -> tuple[ParsedYaml, list[Problem]]:
    """Parse as parse_yaml does, without its shortcut for plain documents."""
    builder = _Builder(source_name)
    try:
        documents = _compose_all(text)
    except _Rejected as error:
        line, column = error.location
        return builder.parsed, [Problem(source_name, line, column, error.message)]
    except yaml.reader.ReaderError as error:
        return builder.parsed, [_reader_problem(error, text, source_name)]
    except yaml.MarkedYAMLError as error:
        return builder.parsed, [_syntax_problem(error, source_name)]
    except yaml.YAMLError as error:
        return builder.parsed, [Problem(source_name, 1, 1, f"invalid YAML: {error}")]

    if len(documents) > 1:
        message = (
            "a second YAML document starts here; the file must hold exactly one, "
            "so remove this document or the '---' line before it"
        )
        return builder.parsed, [
            _problem_at(documents[1].start_mark, message, source_name)
        ]
    if not documents:
        return builder.parsed, [_empty_problem(text, source_name)]

    builder.parsed.value = builder.build(documents[0], ())
    return builder.parsed, builder.problems


def _compose_all(text: str) -> list[yaml.Node]:
    if _FAST_LOADER_AVAILABLE:
        try:
            return list(yaml.compose_all(text, Loader=_FastBoundedLoader))
        except yaml.YAMLError:
            pass  # Parse again below for the pure-Python loader's message.
    return list(yaml.compose_all(text, Loader=_BoundedLoader))


_FAST_LOADER_AVAILABLE = CParser is not None


# --- the common case, built from libyaml's events ---------------------------------


class _NotPlain(Exception):
    """The document needs the full parser, which reports what it finds."""


def parse_plain(text: str) -> ParsedYaml | None:
    """Build a document of plain mappings, lists and scalars straight from events.

    Almost every extensions.yaml is one document without anchors, aliases,
    tags, duplicate keys or invalid values. For such a file this gives the
    same ParsedYaml as composing nodes and building from them, in about a
    quarter of the time (0.19 s against 0.8-1.0 s at 10,000 entries). For
    anything else it returns None, and parse_yaml takes the full path, which
    reports the problems.
    """
    if CParser is None:
        return None
    try:
        return _PlainBuilder(CParser(text)).document()
    except (_NotPlain, yaml.YAMLError, UnicodeError):
        return None


_STR_TAG = _YAML_TAG_PREFIX + "str"
_VALUE_TAG = _YAML_TAG_PREFIX + "value"


class _PlainBuilder:
    """A builder of values and positions from the events of a plain document.

    Raises _NotPlain at the first event the full parser must see: an anchor,
    an alias, a tag, a duplicate or rejected key, a value its type rejects,
    a second document, or a document past the depth or size bounds.
    """

    def __init__(self, parser: Any) -> None:
        self._next_event = parser.get_event
        self.parsed = ParsedYaml(value=None)
        self._nodes = 0
        self._printable = True
        # Typed scalars (numbers, booleans, dates) go through the full
        # builder's code, so their values and messages cannot differ.
        self._typed = _Builder("")
        self._typed.parsed = self.parsed
        self._positions = self.parsed.positions
        self._key_positions = self.parsed.key_positions
        # PyYAML's implicit resolvers by a scalar's first character, each
        # list followed by the resolvers for any character.
        self._resolvers: dict[str, list[tuple[str, Any]]] = {}

    def document(self) -> ParsedYaml:
        self._expect(yaml.StreamStartEvent)
        self._expect(yaml.DocumentStartEvent)
        self.parsed.value = self._node(self._next_event(), (), 0)
        self.parsed.printable = self._printable
        self._expect(yaml.DocumentEndEvent)
        self._expect(yaml.StreamEndEvent)
        return self.parsed

    def _expect(self, kind: type[yaml.Event]) -> None:
        if type(self._next_event()) is not kind:
            raise _NotPlain

    def _node(self, event: Any, path: JsonPath, depth: int) -> Any:
        kind = type(event)
        if (
            kind not in _NODE_EVENTS
            or event.anchor is not None
            or event.tag is not None
            or depth >= MAX_DEPTH
        ):
            raise _NotPlain
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _NotPlain
        mark = event.start_mark
        self._positions[path] = (mark.line + 1, mark.column + 1)
        if kind is yaml.ScalarEvent:
            return self._scalar(event, path)
        if kind is yaml.MappingStartEvent:
            return self._mapping(path, depth)
        return self._sequence(path, depth)

    def _mapping(self, path: JsonPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        key_positions = self._key_positions
        while True:
            event = self._next_event()
            if type(event) is yaml.MappingEndEvent:
                return result
            key = self._key(event, depth + 1)
            if key in result:
                raise _NotPlain
            child = (*path, key)
            mark = event.start_mark
            key_positions[child] = (mark.line + 1, mark.column + 1)
            result[key] = self._node(self._next_event(), child, depth + 1)

    def _key(self, event: Any, depth: int) -> str:
        if (
            type(event) is not yaml.ScalarEvent
            or event.anchor is not None
            or event.tag is not None
            or depth >= MAX_DEPTH
        ):
            raise _NotPlain
        self._nodes += 1
        text: str = event.value
        # A key is used as written, but a merge key (<<) is rejected.
        if event.implicit[0] and self._resolve(text) not in _PLAIN_SCALAR_TAGS:
            raise _NotPlain
        return text

    def _sequence(self, path: JsonPath, depth: int) -> list[Any]:
        items: list[Any] = []
        while True:
            event = self._next_event()
            if type(event) is yaml.SequenceEndEvent:
                return items
            items.append(self._node(event, (*path, len(items)), depth + 1))

    def _scalar(self, event: Any, path: JsonPath) -> Any:
        text: str = event.value
        # Quoted scalars are always strings.
        tag = self._resolve(text) if event.implicit[0] else _STR_TAG
        if tag in (_STR_TAG, _VALUE_TAG):
            if not text.isprintable():
                self._printable = False
            return text
        if tag not in _PLAIN_SCALAR_TAGS:
            raise _NotPlain
        node = yaml.ScalarNode(tag, text, event.start_mark, event.end_mark)
        value = self._typed._build_scalar(node, path)
        if self._typed.problems:
            raise _NotPlain
        return value

    def _resolve(self, text: str) -> str:
        """Return the tag YAML gives a plain scalar, as PyYAML's safe resolver does."""
        first = text[:1]
        resolvers = self._resolvers.get(first)
        if resolvers is None:
            implicit = yaml.resolver.Resolver.yaml_implicit_resolvers
            resolvers = implicit.get(first, []) + implicit.get(None, [])
            self._resolvers[first] = resolvers
        for tag, pattern in resolvers:
            if pattern.match(text):
                return str(tag)
        return _STR_TAG


_NODE_EVENTS = frozenset(
    {yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent}
)


def _problem_at(mark: Any, message: str, source_name: str) -> Problem:
    line, column = _location(mark)
    return Problem(source_name, line, column, message)


def _location(mark: Any) -> Location:
    """Return a PyYAML mark (0-based) as a 1-based line and column."""
    if mark is None:
        return (1, 1)
    return (mark.line + 1, mark.column + 1)


def _empty_problem(text: str, source_name: str) -> Problem:
    state = "the file is empty" if not text.strip() else "the file has only comments"
    return Problem(
        source_name, 1, 1, f"{state}; it needs version: 1 and an extensions list"
    )


def _reader_problem(
    error: yaml.reader.ReaderError, text: str, source_name: str
) -> Problem:
    """Describe a character YAML does not allow, at its line and column."""
    before = text[: error.position]
    line = before.count("\n") + 1
    column = error.position - (before.rfind("\n") + 1) + 1
    character = error.character
    code = ord(character) if isinstance(character, str) else int(character)
    return Problem(
        source_name,
        line,
        column,
        f"the file contains the control character U+{code:04X}, which YAML does "
        "not allow; remove it (is this a binary file?)",
    )


# Hints for PyYAML's most common syntax errors, keyed by a part of its message.
_SYNTAX_HINTS = (
    ("'\\t'", "indent with spaces; YAML does not allow tabs there"),
    ("while scanning a quoted scalar", "a quote is not closed"),
    ("expected ',' or ']'", "a list is not closed with ] or lacks a comma"),
    ("expected ',' or '}'", "a mapping is not closed with } or lacks a comma"),
    ("expected <block end>", "check the indentation of this line"),
    ("mapping values are not allowed here", "quote a value that contains ': '"),
)


def _syntax_problem(error: yaml.MarkedYAMLError, source_name: str) -> Problem:
    line, column = _location(error.problem_mark or error.context_mark)
    context = error.context
    if context and error.context_mark and error.problem_mark:
        started = _location(error.context_mark)
        if started != (line, column):
            context += f" (line {started[0]}, column {started[1]})"
    parts = [part for part in (context, error.problem) if part]
    detail = ", ".join(parts) if parts else "invalid YAML"
    hints = [hint for key, hint in _SYNTAX_HINTS if key in detail]
    if hints:
        detail += f" ({hints[0]})"
    return Problem(source_name, line, column, f"invalid YAML: {detail}")

"""The shortcuts of validation give the same results as the full checks.

A plain document is built straight from libyaml's events, and a compiled
check decides schema validity before jsonschema runs. Both exist for speed
only, so every file here must get the same values, positions and verdict
either way: the example, every bad file, and random documents.
"""

from __future__ import annotations

import gc
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_loader_property import FRAGMENTS as LOADER_FRAGMENTS

from reconciler.desired import SETTING_KEYS, load_desired_state
from reconciler.errors import InvalidDesiredState
from reconciler.schema_check import Uncompilable, compile_schema, schema_check
from reconciler.schema_file import load_inlined_schema
from reconciler.yamlfile import (
    MAX_DEPTH,
    ParsedYaml,
    parse_plain,
    parse_yaml_fully,
)

REPOSITORY = Path(__file__).resolve().parent.parent
BAD_FILES = sorted((REPOSITORY / "tests" / "bad_files").glob("*.yaml"))
EXAMPLE = REPOSITORY / "extensions.yaml"

SHORTCUT_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def full_verdict(value: Any) -> bool:
    validator = jsonschema.Draft202012Validator(load_inlined_schema())
    return not any(True for _ in validator.iter_errors(value))


def assert_same_parse(text: str) -> None:
    plain = parse_plain(text)
    if plain is None:
        return
    full, problems = parse_yaml_fully(text, "extensions.yaml")
    assert problems == []
    assert fields(plain) == fields(full)
    if plain.printable:
        assert all(text.isprintable() for text in strings(full.value))


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [text for child in value for text in strings(child)]
    return []


def bad_file_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        pytest.skip("not UTF-8: rejected before parsing")


def fields(parsed: ParsedYaml) -> tuple[Any, ...]:
    return (
        parsed.value,
        parsed.positions,
        parsed.key_positions,
        parsed.scalar_texts,
        parsed.reported,
        parsed.incomplete,
    )


def test_example_file_takes_both_shortcuts() -> None:
    parsed = parse_plain(EXAMPLE.read_text(encoding="utf-8"))

    assert parsed is not None
    check = schema_check()
    assert check is not None
    assert check(parsed.value) is True
    assert_same_parse(EXAMPLE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda path: path.stem)
def test_bad_file_parses_alike_both_ways(path: Path) -> None:
    assert_same_parse(bad_file_text(path))


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda path: path.stem)
def test_bad_file_gets_jsonschema_verdict(path: Path) -> None:
    parsed, _ = parse_yaml_fully(bad_file_text(path), path.name)
    check = schema_check()
    assert check is not None

    assert check(parsed.value) == full_verdict(parsed.value)


def test_shortcut_declines_what_needs_the_full_parser() -> None:
    declined = [
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: 1\na: 2\n",
        "<<: {a: 1}\n",
        "a: 2024-02-30\n",
        "a: 1\n---\nb: 2\n",
        "",
        "# only a comment\n",
        "[" * 25 + "]" * 25,
        "a: [1\n",
    ]
    for text in declined:
        assert parse_plain(text) is None, text


# Texts whose deepest node (a key included) is at the given depth, the root
# being at depth 0. The full parser rejects a node at depth MAX_DEPTH.
DEEP_TEMPLATES = {
    "list": "[{open}1{close}]",
    "key": "{open}{{k: v}}{close}",
    "mapping": "a: {open}1{close}",
}


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH])
@pytest.mark.parametrize("template", DEEP_TEMPLATES.values(), ids=DEEP_TEMPLATES)
def test_shortcut_at_depth_bound(depth: int, template: str) -> None:
    text = template.format(open="[" * (depth - 1), close="]" * (depth - 1))
    _, problems = parse_yaml_fully(text, "extensions.yaml")

    assert bool(problems) == (depth >= MAX_DEPTH)
    assert (parse_plain(text) is None) == bool(problems)
    assert_same_parse(text)


def test_shortcut_marks_hidden_characters() -> None:
    plain = parse_plain('a: "Ann\\u202e"\nb: [Zoë, 1]\n')
    printable = parse_plain("a: Ann\nb: [Zoë, 1]\n")

    assert plain is not None
    assert plain.printable is False
    assert printable is not None
    assert printable.printable is True


UNIQUE_CASES = [
    [1, 1.0],
    [1, True],
    [0, False],
    ["1", 1],
    [None, None],
    [math.nan, math.nan],
    [[1], [1]],
    [[1], [True]],
    [{"a": 1}, {"a": 1.0}],
    [{"a": 1}, {"a": True}],
    [1, [1], 1],
    [*range(10_000), 9_999],
    list(range(10_000)),
]


@pytest.mark.parametrize("items", UNIQUE_CASES, ids=lambda items: repr(items)[:30])
def test_unique_items_match_jsonschema(items: list[Any]) -> None:
    schema = {"type": "array", "uniqueItems": True}
    validator = jsonschema.Draft202012Validator(schema)

    assert compile_schema(schema)(items) == validator.is_valid(items)


def test_check_rejects_unknown_schema_keyword() -> None:
    with pytest.raises(Uncompilable):
        compile_schema({"type": "object", "dependentRequired": {"a": ["b"]}})


# --- random documents ---------------------------------------------------------------

KEYS = [
    *SETTING_KEYS,
    "version",
    "extensions",
    "defaults",
    "numbering",
    "max_creates",
    "range",
    "extension",
    "name",
    "email",
    "enabled",
    "pin",
    "password",
    "groups",
    "env",
    "other",
]
SCALARS = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            False,
            0,
            1,
            -1,
            1.0,
            2.5,
            math.nan,
            math.inf,
            10**20,
            10**20 - 1,
            "",
            "1",
            "4001",
            "0212",
            "4001\n",
            "random",
            "pjsip",
            "sip",
            "4000-4999",
            "RECONCILER_SECRET_X",
            "RECONCILER_SECRET_",
            "Ann Arbor",
            "a" * 60,
            "ann@example.com",
            "ann@@example.com",
            100,
            101,
            9999999999,
            10**10,
            "12345678901234567890",
            "123456789012345678901",
        ]
    ),
    # Strings around the lengths the schema allows.
    st.sampled_from([1, 49, 50, 51, 99, 100, 101, 199, 200, 201]).map("x".__mul__),
    st.integers(),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=5),
    ),
    max_leaves=20,
)
ENTRIES = st.fixed_dictionaries(
    {"extension": st.one_of(st.just("4001"), SCALARS), "name": SCALARS},
    optional={
        key: VALUES
        for key in ["email", "tech", "voicemail", "user_manager", "max_contacts"]
    }
    | {"voicemail": st.one_of(st.booleans(), st.just({"pin": "random"}), VALUES)},
)
DOCUMENTS = st.one_of(
    VALUES,
    st.fixed_dictionaries(
        {"version": st.one_of(st.just(1), SCALARS), "extensions": st.lists(ENTRIES)},
        optional={"defaults": VALUES, "numbering": VALUES, "max_creates": SCALARS},
    ),
)


def example_document() -> Any:
    parsed = parse_plain(EXAMPLE.read_text(encoding="utf-8"))
    assert parsed is not None
    return parsed.value


def value_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += value_paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += value_paths(child, (*path, index))
    return found


def at(path: tuple[Any, ...]) -> Any:
    value = example_document()
    for part in path:
        value = value[part]
    return value


def replaced(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = document.copy()
    if len(path) == 1:
        copy[path[0]] = new
    else:
        copy[path[0]] = replaced(document[path[0]], path[1:], new)
    return copy


# Values at the edges of the schema's bounds and of JSON's equality.
EDGES = [
    0,
    -1,
    1,
    2.0,
    0.5,
    100,
    101,
    100.0,
    True,
    False,
    None,
    math.nan,
    10**20 - 1,
    10**20,
    9999999999,
    10**10,
    "",
    "x" * 50,
    "x" * 51,
    "x" * 200,
    "x" * 201,
    "4001\n",
    "ann@@example.com",
    "RECONCILER_SECRET_",
    "RECONCILER_SECRET_X",
    "random",
    "sip",
    "4000-4999",
    ["1", "1"],
    [1, 1.0],
    [],
    {},
    {"env": "RECONCILER_SECRET_X"},
    {"env": "HOME"},
]
EXAMPLE_PATHS = value_paths(example_document())
MAPPING_PATHS = [path for path in EXAMPLE_PATHS if isinstance(at(path), dict)]
# The example with one value replaced, or one key added to a mapping: a valid
# document one step from invalid, where every keyword of the schema counts.
NEAR_EXAMPLE = st.one_of(
    st.builds(
        lambda path, new: replaced(example_document(), path, new),
        st.sampled_from(EXAMPLE_PATHS),
        st.one_of(SCALARS, VALUES),
    ),
    st.builds(
        lambda path, key, new: replaced(example_document(), (*path, key), new),
        st.sampled_from(MAPPING_PATHS),
        st.sampled_from(KEYS),
        SCALARS,
    ),
)


def test_edge_values_get_jsonschema_verdict() -> None:
    check = schema_check()
    assert check is not None
    differing = []
    for path in EXAMPLE_PATHS:
        for edge in EDGES:
            document = replaced(example_document(), path, edge)
            if check(document) != full_verdict(document):
                differing.append((path, edge))

    assert differing == []


@SHORTCUT_SETTINGS
@given(st.one_of(DOCUMENTS, NEAR_EXAMPLE))
def test_random_document_gets_jsonschema_verdict(value: Any) -> None:
    check = schema_check()
    assert check is not None

    assert check(value) == full_verdict(value)


# The loader's fragments, and more typed scalars and block styles.
FRAGMENTS = [
    *LOADER_FRAGMENTS,
    "'quoted'",
    '"dq\\u00e9"',
    "0x1F",
    "1e3",
    ".inf",
    "null",
    "2024-02-29",
    "=",
    "? ",
    "!!str ",
    "|\n  text\n",
    "Zoë",
]


@SHORTCUT_SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join))
def test_random_yaml_parses_alike_both_ways(text: str) -> None:
    assert_same_parse(text)


def test_cycle_collector_resumes_after_loading(tmp_path: Path) -> None:
    broken = tmp_path / "extensions.yaml"
    broken.write_text("version: 2\nextensions: []\n", encoding="utf-8")

    load_desired_state(EXAMPLE)
    assert gc.isenabled()
    with pytest.raises(InvalidDesiredState):
        load_desired_state(broken)
    assert gc.isenabled()

"""Property: the loader returns a state or a list of located problems, nothing else.

Whatever the bytes of the file, load_desired_state either returns a
DesiredState or raises InvalidDesiredState whose every problem has a line and
column of at least 1 and a one-line message. Any other exception is a bug.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.desired import load_desired_state
from reconciler.errors import InvalidDesiredState
from reconciler.models import DesiredState

LOADER_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Pieces of YAML syntax, so that random text often parses and reaches the
# schema and rule checks instead of failing in the scanner.
FRAGMENTS = [
    "version: 1\n",
    "extensions:\n",
    "  - ",
    "    ",
    "extension: ",
    "name: ",
    "email: ",
    "defaults:\n",
    "  outbound_cid: ",
    "voicemail: ",
    "{pin: random}",
    "{env: RECONCILER_SECRET_X}",
    "user_manager: ",
    "groups: ",
    "max_contacts: ",
    "tech: sip",
    "numbering: {range: ",
    "\n",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "&a ",
    "*a",
    "<<: ",
    "!!python/object ",
    "!!binary ",
    "!custom ",
    "!!int ",
    "---\n",
    "# comment\n",
    '"',
    "'",
    "\t",
    "\\u202e",
    "0212",
    "1:20",
    "1_000",
    "12.5",
    "yes",
    "~",
    "2024-02-30",
    '"4001"',
    "a@b.co",
    "{name}",
    "{",
    "4999-4000",
    "\x00",
    "\ufeff",
]

yaml_like_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)

schema_keys = st.sampled_from(
    [
        "version",
        "extensions",
        "defaults",
        "numbering",
        "range",
        "max_creates",
        "extension",
        "name",
        "email",
        "tech",
        "outbound_cid",
        "voicemail",
        "user_manager",
        "pin",
        "password",
        "env",
        "groups",
        "enabled",
        "max_contacts",
    ]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=60)
    | st.sampled_from(["random", "4001", "a@b.co", "pjsip", "sip", "{name}"])
)
nested_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(schema_keys | st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=12,
)
entries = st.dictionaries(schema_keys, nested_values, max_size=6)
documents = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 2, "1", None])},
    optional={
        "extensions": st.lists(entries, max_size=3),
        "defaults": entries,
        "numbering": st.dictionaries(st.just("range"), nested_values),
        "max_creates": nested_values,
    },
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loader-property") / "extensions.yaml"


def check_loader(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        state = load_desired_state(path)
    except InvalidDesiredState as error:
        assert error.problems
        for problem in error.problems:
            assert problem.path == str(path)
            assert problem.line >= 1
            assert problem.column >= 1
            assert problem.message.strip()
            assert "\n" not in problem.message
    else:
        assert isinstance(state, DesiredState)


def dumped(value: Any) -> bytes:
    return yaml.safe_dump(value, allow_unicode=True).encode("utf-8")


@LOADER_SETTINGS
@given(text=st.text(max_size=300) | yaml_like_text)
def test_random_text(scratch: Path, text: str) -> None:
    check_loader(scratch, text.encode("utf-8", errors="surrogatepass"))


@LOADER_SETTINGS
@given(value=nested_values | documents)
def test_random_values_dumped(scratch: Path, value: Any) -> None:
    check_loader(scratch, dumped(value))


@LOADER_SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes(scratch: Path, data: bytes) -> None:
    check_loader(scratch, data)

"""Load extensions.yaml, validate it completely, and build the desired state.

Validation reports every problem at once, each at FILE:LINE:COLUMN, before any
request is made to the PBX. The schema checks and the rules a schema cannot
state (duplicates, templates, spaces) both run on every file that parses, so a
schema error does not hide a duplicate number elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.desired_rules import expand_template, range_bounds, rule_problems
from reconciler.errors import InvalidDesiredState, Problem
from reconciler.lasting import building_lasting_data
from reconciler.models import RANDOM, DesiredExtension, DesiredState, SecretSource
from reconciler.schema_messages import schema_problems
from reconciler.yamlfile import ParsedYaml, parse_yaml

# Larger files are rejected before parsing: 10,000 fully specified entries take
# about 3.2 MB.
# NOTE: `reconciler validate` of 10,000 short entries (0.9 MB) took 0.55 s of
# CPU on a 2-core x86_64 machine (median of 5), so a file near this limit
# takes about 15 s, an estimate from that rate.
MAX_FILE_BYTES = 20 * 1024 * 1024

SETTING_KEYS = (
    "tech",
    "outbound_cid",
    "emergency_cid",
    "caller_id",
    "voicemail",
    "user_manager",
    "max_contacts",
)


def load_desired_state(path: Path) -> DesiredState:
    """Read and validate ``path``; raise InvalidDesiredState listing every problem."""
    with building_lasting_data():
        return _load(path)


def _load(path: Path) -> DesiredState:
    name = str(path)
    text = _read_text(path, name)
    parsed, problems = parse_yaml(text, name)
    if parsed.value is None and problems:
        raise InvalidDesiredState(problems)

    # A duplicate key or a schema error does not stop the other checks: every
    # problem is reported at once.
    problems += schema_problems(parsed, name)
    problems += rule_problems(parsed, name)
    if problems:
        raise InvalidDesiredState(_unique(problems))
    return _build_state(parsed, name)


def _read_text(path: Path, name: str) -> str:
    data = _read_bytes(path, name)
    try:
        # utf-8-sig drops a byte order mark, which some Windows editors write.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        line_start = before.rfind(b"\n") + 1
        column = len(before[line_start:].decode("utf-8", errors="replace")) + 1
        byte = data[error.start]
        raise InvalidDesiredState(
            [
                Problem(
                    name,
                    line,
                    column,
                    f"the file is not valid UTF-8 (byte 0x{byte:02X}); save it as "
                    "UTF-8 text",
                )
            ]
        ) from None


def _read_bytes(path: Path, name: str) -> bytes:
    """Read at most MAX_FILE_BYTES + 1 bytes, so /dev/zero or a pipe cannot hang."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise _file_problem(name, "file not found; check the path") from None
    except IsADirectoryError:
        raise _file_problem(name, "is a directory, not a file") from None
    except OSError as error:
        raise _file_problem(name, f"cannot read the file: {error.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _file_problem(
            name,
            f"the file is larger than the limit of {MAX_FILE_BYTES:,} bytes; "
            "check that it is the right file",
        )
    return data


def _file_problem(name: str, message: str) -> InvalidDesiredState:
    return InvalidDesiredState([Problem(name, 1, 1, message)])


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


# --- building the model from a valid document -----------------------------------


def _build_state(parsed: ParsedYaml, name: str) -> DesiredState:
    document = parsed.value
    defaults = document.get("defaults", {})
    # Most entries take voicemail and user_manager from defaults alone, so
    # those are worked out once, not 10,000 times.
    shared = _Shared(
        settings={key: defaults.get(key) for key in SETTING_KEYS},
        voicemail=_voicemail(defaults.get("voicemail"), None),
        user_manager=_user_manager(defaults.get("user_manager"), None),
    )
    extensions = tuple(
        _build_extension(
            entry, defaults, shared, parsed.position(("extensions", index))[0]
        )
        for index, entry in enumerate(document["extensions"])
    )
    numbering = document.get("numbering", {})
    return DesiredState(
        path=name,
        extensions=extensions,
        max_creates=document.get("max_creates"),
        numbering_range=range_bounds(numbering.get("range")),
    )


@dataclass(frozen=True)
class _Shared:
    """The values from defaults that every entry without its own takes."""

    settings: dict[str, Any]
    voicemail: tuple[bool, SecretSource]
    user_manager: tuple[bool, tuple[str, ...], SecretSource]


def _build_extension(
    entry: dict[str, Any], defaults: dict[str, Any], shared: _Shared, line: int
) -> DesiredExtension:
    settings = {**shared.settings, **{k: entry[k] for k in SETTING_KEYS if k in entry}}
    tech = settings["tech"] or "pjsip"
    if tech != "pjsip" and "max_contacts" not in entry:
        settings["max_contacts"] = None  # a pjsip default, see _max_contacts_problems
    number = str(entry["extension"])
    outbound = settings["outbound_cid"]
    if outbound is not None:
        # An entry's own outbound_cid is a template too, like the default one.
        outbound = expand_template(
            outbound, {"name": entry["name"], "extension": number}
        )
    voicemail, pin = shared.voicemail
    if "voicemail" in entry:
        voicemail, pin = _voicemail(defaults.get("voicemail"), entry["voicemail"])
    user_manager, groups, password = shared.user_manager
    if "user_manager" in entry:
        user_manager, groups, password = _user_manager(
            defaults.get("user_manager"), entry["user_manager"]
        )
    return DesiredExtension(
        extension=number,
        name=entry["name"],
        email=entry.get("email"),
        tech=tech,
        outbound_cid=outbound or "",
        emergency_cid=settings["emergency_cid"] or "",
        caller_id=settings["caller_id"],
        voicemail=voicemail,
        voicemail_pin=pin,
        user_manager=user_manager,
        user_manager_groups=groups,
        user_manager_password=password,
        max_contacts=settings["max_contacts"],
        line=line,
    )


def _voicemail(default: Any, override: Any) -> tuple[bool, SecretSource]:
    merged = _merged(default, override)
    return merged.get("enabled", True), _secret_source(merged.get("pin"))


def _user_manager(
    default: Any, override: Any
) -> tuple[bool, tuple[str, ...], SecretSource]:
    merged = _merged(default, override)
    groups = tuple(str(group) for group in merged.get("groups", ()))
    return merged.get("enabled", True), groups, _secret_source(merged.get("password"))


def _merged(default: Any, override: Any) -> dict[str, Any]:
    """Merge a voicemail or user_manager setting; true/false means {enabled: ...}."""
    merged: dict[str, Any] = {}
    for value in (default, override):
        if isinstance(value, bool):
            merged["enabled"] = value
        elif isinstance(value, dict):
            merged.update(value)
    return merged


def _secret_source(value: Any) -> SecretSource:
    if isinstance(value, dict):
        return SecretSource("env", value["env"])
    return RANDOM

"""Load extensions.yaml, validate it completely, and build the desired state.

Validation reports every problem at once, each at FILE:LINE:COLUMN, before any
request is made to the PBX.
"""

from __future__ import annotations

import difflib
import re
import string
import unicodedata
from pathlib import Path
from typing import Any

from reconciler.errors import InvalidDesiredState, Problem
from reconciler.models import RANDOM, DesiredExtension, DesiredState, SecretSource
from reconciler.schema_file import load_schema
from reconciler.yamlfile import JsonPath, ParsedYaml, parse_yaml

# Larger files are refused before parsing: 10,000 extensions take about 1.5 MB.
MAX_FILE_BYTES = 20 * 1024 * 1024

TEMPLATE_FIELDS = frozenset({"name", "extension"})
SETTING_KEYS = (
    "tech",
    "outbound_cid",
    "emergency_cid",
    "caller_id",
    "voicemail",
    "user_manager",
    "max_contacts",
)
# FreePBX stores these in 50-character columns (users.name, users.outboundcid).
MAX_NAME = 50
MAX_OUTBOUND_CID = 50


def load_desired_state(path: Path) -> DesiredState:
    """Read and validate ``path``; raise InvalidDesiredState listing every problem."""
    name = str(path)
    text = _read_text(path, name)
    parsed, problems = parse_yaml(text, name)
    if parsed.value is None and problems:
        raise InvalidDesiredState(problems)

    # A duplicate key does not stop the checks: every problem is reported at once.
    problems += _schema_problems(parsed, name)
    if problems:
        raise InvalidDesiredState(problems)

    state, problems = _build_state(parsed, name)
    if problems:
        raise InvalidDesiredState(problems)
    return state


def _read_text(path: Path, name: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidDesiredState(
                [
                    Problem(
                        name,
                        1,
                        1,
                        f"the file is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}",
                    )
                ]
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidDesiredState(
            [Problem(name, 1, 1, "file not found; pass the file with --file")]
        ) from None
    except IsADirectoryError:
        raise InvalidDesiredState(
            [Problem(name, 1, 1, "is a directory, not a file")]
        ) from None
    except OSError as error:
        raise InvalidDesiredState(
            [Problem(name, 1, 1, f"cannot read the file: {error.strerror}")]
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InvalidDesiredState(
            [Problem(name, line, 1, "the file is not valid UTF-8")]
        ) from None


# --- schema validation ----------------------------------------------------------


def _schema_problems(parsed: ParsedYaml, name: str) -> list[Problem]:
    import jsonschema  # imported here: it is the slowest import of a validate run

    validator = jsonschema.Draft202012Validator(load_schema())
    problems = _misread_number_problems(parsed, name)
    misread = {(p.line, p.column) for p in problems}
    for error in validator.iter_errors(parsed.value):
        for problem in _describe_schema_error(error, parsed, name):
            if (problem.line, problem.column) not in misread:
                problems.append(problem)
    return _unique(problems)


def _misread_number_problems(parsed: ParsedYaml, name: str) -> list[Problem]:
    """Flag numbers whose YAML reading differs from their digits (0212 is octal 138)."""
    problems = []
    for path, text in parsed.scalar_texts.items():
        value = _value_at(parsed.value, path)
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and text != str(value)
        ):
            line, column = parsed.position(path)
            message = _number_message(value, text)
            problems.append(
                Problem(name, line, column, f"{_field_name(path)}: {message}")
            )
    return problems


def _value_at(document: Any, path: JsonPath) -> Any:
    for part in path:
        document = document[part]
    return document


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _describe_schema_error(error: Any, parsed: ParsedYaml, name: str) -> list[Problem]:
    path: JsonPath = tuple(error.absolute_path)
    where = _field_name(path)
    kind = error.validator

    if kind in ("additionalProperties", "unevaluatedProperties"):
        return _unknown_key_problems(error, path, parsed, name)
    if kind == "required":
        missing = error.message.split("'")[1]
        line, column = parsed.position(path)
        return [
            Problem(name, line, column, f"{where}: missing required key '{missing}'")
        ]

    line, column = parsed.position(path)
    if kind == "anyOf" and isinstance(error.instance, dict):
        # The mapping branch failed: its own errors say what the user got wrong.
        return [
            problem
            for sub in error.context
            if tuple(sub.absolute_path) != path
            for problem in _describe_schema_error(sub, parsed, name)
        ]
    if kind in ("anyOf", "oneOf"):
        # Report the most specific branch failure, else a generic message.
        message = _any_of_message(error, parsed, path)
    elif kind == "type" or (kind == "const" and path == ("version",)):
        message = _type_message(error, parsed, path)
    elif kind == "maxLength":
        message = (
            f"is {len(error.instance)} characters long; FreePBX stores at most "
            f"{error.validator_value}"
        )
    elif kind == "minLength":
        message = "must not be empty"
    elif kind == "pattern" and path and path[-1] == "email":
        message = f"'{error.instance}' is not a valid email address"
    elif kind in ("minimum", "maximum"):
        message = f"{error.instance} is out of range ({_range_text(error.schema)})"
    elif kind == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        message = f"'{error.instance}' is not one of: {allowed}"
    elif kind == "uniqueItems":
        message = "lists the same value twice"
    else:
        message = error.message
    return [Problem(name, line, column, f"{where}: {message}")]


def _unknown_key_problems(
    error: Any, path: JsonPath, parsed: ParsedYaml, name: str
) -> list[Problem]:
    allowed = sorted(_allowed_keys(error.schema))
    problems = []
    for key in sorted(set(error.instance) - set(allowed)):
        line, column = parsed.key_positions.get((*path, key), parsed.position(path))
        hint = difflib.get_close_matches(str(key), allowed, n=1)
        suggestion = (
            f"; did you mean '{hint[0]}'?"
            if hint
            else f" (allowed: {', '.join(allowed)})"
        )
        problems.append(
            Problem(
                name,
                line,
                column,
                f"{_field_name(path)}: unknown key '{key}'{suggestion}",
            )
        )
    return problems


def _allowed_keys(schema: dict[str, Any]) -> set[str]:
    keys = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        ref = part.get("$ref", "")
        if ref.endswith("settings_properties"):
            keys.update(SETTING_KEYS)
    return keys


def _range_text(schema: dict[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f"{low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def _type_message(error: Any, parsed: ParsedYaml, path: JsonPath) -> str:
    expected = error.validator_value if error.validator == "type" else "1"
    text = parsed.scalar_texts.get(path)
    read_as = _yaml_reading(error.instance)
    if text is not None and expected == "string":
        return f'YAML reads {text} as {read_as}; quote it: "{text}"'
    if path == ("version",):
        return f"must be 1, got {text if text is not None else repr(error.instance)}"
    return f"must be {_article(expected)}, got {read_as}"


def _any_of_message(error: Any, parsed: ParsedYaml, path: JsonPath) -> str:
    field = path[-1] if path else ""
    text = parsed.scalar_texts.get(path)
    if field == "extension" or (len(path) >= 2 and path[-2] == "groups"):
        return _number_message(error.instance, text)
    if field in ("pin", "password"):
        return "must be 'random' or {env: VARIABLE_NAME}"
    if field in ("voicemail", "user_manager"):
        return "must be true, false or a mapping"
    return error.message  # type: ignore[no-any-return]


def _number_message(value: Any, text: str | None) -> str:
    if isinstance(value, bool):
        return f"YAML reads {text} as a boolean; write digits in quotes"
    if isinstance(value, int) and text is not None and text != str(value):
        kind = "an octal" if re.fullmatch(r"0o?[0-7]+", text) else "the"
        return (
            f"YAML reads {text} as {kind} number {value}; "
            f'quote it to keep the digits: "{text}"'
        )
    if isinstance(value, float):
        return (
            f"YAML reads {text} as the decimal number {value}; "
            "write digits only, in quotes"
        )
    if isinstance(value, str):
        return f"'{value}' must be digits only (at most 20)"
    if isinstance(value, int) and value < 0:
        return f"{value} must not be negative"
    return f"must be digits in quotes, got {_yaml_reading(value)}"


def _yaml_reading(value: Any) -> str:
    if value is None:
        return "null (an empty value)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the number {value}"
    if isinstance(value, float):
        return f"the decimal number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _article(type_name: Any) -> str:
    names = {
        "string": "a string",
        "integer": "a whole number",
        "boolean": "true or false",
        "array": "a list",
        "object": "a mapping",
        "1": "1",
    }
    if isinstance(type_name, list):
        return " or ".join(names.get(str(t), str(t)) for t in type_name)
    return names.get(str(type_name), str(type_name))


def _field_name(path: JsonPath) -> str:
    if not path:
        return "file"
    parts = []
    for part in path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".")


# --- rules a schema cannot state, and building the model -------------------------


def _build_state(parsed: ParsedYaml, name: str) -> tuple[DesiredState, list[Problem]]:
    document = parsed.value
    defaults = document.get("defaults", {})
    problems = _text_problems(parsed, name)
    problems += _template_problems(defaults, parsed, name)
    if problems:
        return DesiredState(path=name, extensions=()), problems

    extensions = []
    first_line_of: dict[str, int] = {}
    first_line_of_email: dict[str, int] = {}
    for index, entry in enumerate(document["extensions"]):
        path: JsonPath = ("extensions", index)
        extension = _build_extension(entry, defaults, parsed.position(path)[0])
        problems += _entry_problems(extension, path, parsed, name)
        problems += _duplicate_problems(
            extension, path, parsed, name, first_line_of, first_line_of_email
        )
        extensions.append(extension)

    state = DesiredState(
        path=name,
        extensions=tuple(extensions),
        max_creates=document.get("max_creates"),
        numbering_range=_numbering_range(document, parsed, name, problems),
    )
    return state, problems


def _build_extension(
    entry: dict[str, Any], defaults: dict[str, Any], line: int
) -> DesiredExtension:
    settings = {key: entry.get(key, defaults.get(key)) for key in SETTING_KEYS}
    number = str(entry["extension"])
    template_values = {"name": entry["name"], "extension": number}
    outbound = settings["outbound_cid"]
    if outbound is not None and "outbound_cid" not in entry:
        outbound = _expand(outbound, template_values)
    voicemail = _merged(defaults.get("voicemail"), entry.get("voicemail"))
    user_manager = _merged(defaults.get("user_manager"), entry.get("user_manager"))
    return DesiredExtension(
        extension=number,
        name=entry["name"],
        email=entry["email"],
        tech=settings["tech"] or "pjsip",
        outbound_cid=outbound or "",
        emergency_cid=settings["emergency_cid"] or "",
        caller_id=settings["caller_id"],
        voicemail=voicemail.get("enabled", True),
        voicemail_pin=_secret_source(voicemail.get("pin")),
        user_manager=user_manager.get("enabled", True),
        user_manager_groups=tuple(str(g) for g in user_manager.get("groups", ())),
        user_manager_password=_secret_source(user_manager.get("password")),
        max_contacts=settings["max_contacts"],
        line=line,
    )


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


def _expand(template: str, values: dict[str, str]) -> str:
    return template.format_map(values)


def _template_problems(
    defaults: dict[str, Any], parsed: ParsedYaml, name: str
) -> list[Problem]:
    template = defaults.get("outbound_cid")
    if template is None:
        return []
    line, column = parsed.position(("defaults", "outbound_cid"))
    try:
        fields = {
            f for _, f, _, _ in string.Formatter().parse(template) if f is not None
        }
    except ValueError as error:
        return [
            Problem(
                name,
                line,
                column,
                f"defaults.outbound_cid: invalid template ({error}); "
                "write a literal brace as {{ or }}",
            )
        ]
    unknown = sorted(fields - TEMPLATE_FIELDS)
    if unknown:
        return [
            Problem(
                name,
                line,
                column,
                f"defaults.outbound_cid: unknown placeholder {{{unknown[0]}}}; "
                "use {name} or {extension}",
            )
        ]
    return []


def _entry_problems(
    extension: DesiredExtension, path: JsonPath, parsed: ParsedYaml, name: str
) -> list[Problem]:
    problems = []
    where = _field_name(path)
    if extension.name != extension.name.strip():
        line, column = parsed.position((*path, "name"))
        problems.append(
            Problem(
                name,
                line,
                column,
                f"{where}.name: '{extension.name}' has leading or trailing "
                "spaces, which FreePBX strips; remove them",
            )
        )
    if len(extension.outbound_cid) > MAX_OUTBOUND_CID:
        line, column = parsed.position((*path, "outbound_cid"))
        problems.append(
            Problem(
                name,
                line,
                column,
                f"{where}.outbound_cid: '{extension.outbound_cid}' is "
                f"{len(extension.outbound_cid)} characters long; FreePBX "
                f"stores at most {MAX_OUTBOUND_CID}",
            )
        )
    if extension.max_contacts is not None and extension.tech != "pjsip":
        line, column = parsed.position((*path, "max_contacts"))
        problems.append(
            Problem(
                name,
                line,
                column,
                f"{where}.max_contacts: applies to pjsip only, but tech is "
                f"{extension.tech}",
            )
        )
    return problems


def _duplicate_problems(
    extension: DesiredExtension,
    path: JsonPath,
    parsed: ParsedYaml,
    name: str,
    first_line_of: dict[str, int],
    first_line_of_email: dict[str, int],
) -> list[Problem]:
    problems = []
    line, column = parsed.position((*path, "extension"))
    if extension.extension in first_line_of:
        problems.append(
            Problem(
                name,
                line,
                column,
                f"extension {extension.extension} is listed twice (first on "
                f"line {first_line_of[extension.extension]})",
            )
        )
    else:
        first_line_of[extension.extension] = line
    email = extension.email.casefold()
    line, column = parsed.position((*path, "email"))
    if email in first_line_of_email:
        problems.append(
            Problem(
                name,
                line,
                column,
                f"email {extension.email} is used twice (first on line "
                f"{first_line_of_email[email]})",
            )
        )
    else:
        first_line_of_email[email] = line
    return problems


def _text_problems(parsed: ParsedYaml, name: str) -> list[Problem]:
    """Reject control characters in any string: FreePBX would store them as is."""
    problems = []
    for path, value in _strings(parsed.value, ()):
        bad = next(
            (
                c
                for c in value
                if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
                and c not in "\u200d"
            ),
            None,
        )
        if bad is not None:
            line, column = parsed.position(path)
            problems.append(
                Problem(
                    name,
                    line,
                    column,
                    f"{_field_name(path)}: contains the control character "
                    f"U+{ord(bad):04X}; remove it",
                )
            )
    return problems


def _strings(value: Any, path: JsonPath) -> list[tuple[JsonPath, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        found = []
        for key, child in value.items():
            found += _strings(child, (*path, key))
        return found
    if isinstance(value, list):
        found = []
        for index, child in enumerate(value):
            found += _strings(child, (*path, index))
        return found
    return []


def _numbering_range(
    document: dict[str, Any], parsed: ParsedYaml, name: str, problems: list[Problem]
) -> tuple[int, int] | None:
    text = document.get("numbering", {}).get("range")
    if text is None:
        return None
    first, last = (int(part) for part in text.split("-"))
    if first > last:
        line, column = parsed.position(("numbering", "range"))
        problems.append(
            Problem(name, line, column, f"numbering.range: {text} starts after it ends")
        )
        return None
    return first, last

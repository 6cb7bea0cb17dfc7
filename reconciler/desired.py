"""Load extensions.yaml, validate it completely, and build the desired state.

Validation reports every problem at once, each at FILE:LINE:COLUMN, before any
request is made to the PBX. The schema checks and the rules a schema cannot
state (duplicates, templates, spaces) both run on every file that parses, so a
schema error does not hide a duplicate number elsewhere.
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
from reconciler.schema_file import load_inlined_schema
from reconciler.yamlfile import JsonPath, ParsedYaml, escape_hidden, parse_yaml

# Larger files are rejected before parsing: 10,000 fully specified entries take
# about 3.2 MB.
# NOTE: PyYAML's pure-Python parser, used for its line and column marks, took
# about 30 s to validate that 3.2 MB file, so a file near this limit takes minutes.
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
# Fields the schema types as integers. Any other number in the file is text
# that YAML took for a number, such as an extension, a group id or a name.
INTEGER_FIELDS = frozenset({"version", "max_creates", "max_contacts"})
SECRET_FIELDS = frozenset({"pin", "password"})
EXTENSION_NUMBER = re.compile(r"[0-9]{1,20}")
# U+200D ZERO WIDTH JOINER is a format character, but emoji sequences such as
# a family or a flag with a modifier need it, so names may contain it.
ALLOWED_FORMAT_CHARACTERS = frozenset({"\u200d"})


def load_desired_state(path: Path) -> DesiredState:
    """Read and validate ``path``; raise InvalidDesiredState listing every problem."""
    name = str(path)
    text = _read_text(path, name)
    parsed, problems = parse_yaml(text, name)
    if parsed.value is None and problems:
        raise InvalidDesiredState(problems)

    # A duplicate key or a schema error does not stop the other checks: every
    # problem is reported at once.
    problems += _schema_problems(parsed, name)
    problems += _rule_problems(parsed, name)
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
        raise _file_problem(name, "file not found; pass the file with --file") from None
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


# --- schema validation ----------------------------------------------------------


def _schema_problems(parsed: ParsedYaml, name: str) -> list[Problem]:
    import jsonschema  # imported here: it is the slowest import of a validate run

    validator = jsonschema.Draft202012Validator(load_inlined_schema())
    problems = _misread_number_problems(parsed, name)
    misread = {(p.line, p.column) for p in problems}
    for error in validator.iter_errors(parsed.value):
        for problem in _describe_schema_error(error, parsed, name):
            if (problem.line, problem.column) not in misread:
                problems.append(problem)
    return problems


def _misread_number_problems(parsed: ParsedYaml, name: str) -> list[Problem]:
    """Flag numbers whose YAML reading differs from their digits (0212 is octal 138)."""
    problems = []
    for path, text in parsed.scalar_texts.items():
        value = _value_at(parsed.value, path)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or text == str(value)
            or _is_secret(path)
        ):
            continue
        line, column = parsed.position(path)
        message = _misread_message(value, text, path)
        problems.append(Problem(name, line, column, f"{_field_name(path)}: {message}"))
    return problems


def _value_at(document: Any, path: JsonPath) -> Any:
    for part in path:
        document = document[part]
    return document


def _is_secret(path: JsonPath) -> bool:
    """Return whether ``path`` is a PIN or password, or inside one."""
    return any(part in SECRET_FIELDS for part in path)


def _describe_schema_error(error: Any, parsed: ParsedYaml, name: str) -> list[Problem]:
    path: JsonPath = tuple(error.absolute_path)
    if parsed.is_reported(path):
        return []
    kind = error.validator

    if kind == "additionalProperties":
        return _unknown_key_problems(error, path, parsed, name)
    if kind == "required":
        return _missing_key_problems(error, path, parsed, name)
    if kind == "anyOf" and isinstance(error.instance, dict):
        # A mapping can only be meant for the mapping branch, so that branch's
        # errors describe the mistake and "not a boolean" from the other does not.
        problems = _mapping_branch_problems(error, parsed, name)
        if problems:
            return problems

    line, column = parsed.position(path)
    message = _schema_message(error, parsed, path)
    return [Problem(name, line, column, f"{_field_name(path)}: {message}")]


def _mapping_branch_problems(
    error: Any, parsed: ParsedYaml, name: str
) -> list[Problem]:
    branches = error.schema["anyOf"]
    problems = []
    for sub in error.context:
        branch = branches[sub.relative_schema_path[0]]
        if branch.get("type") == "object":
            problems += _describe_schema_error(sub, parsed, name)
    return problems


def _schema_message(error: Any, parsed: ParsedYaml, path: JsonPath) -> str:
    kind = error.validator
    text = parsed.scalar_texts.get(path)
    if kind in ("anyOf", "oneOf"):
        return _any_of_message(error, parsed, path)
    if error.instance is None:
        return _empty_message(path, text)
    if path == ("version",):
        return _version_message(error.instance, text)
    if kind == "type":
        return _type_message(error, text, path)
    if kind == "maxLength":
        return (
            f"is {len(error.instance)} characters long; FreePBX stores at most "
            f"{error.validator_value}"
        )
    if kind == "minLength":
        return "must not be empty"
    if kind == "pattern":
        return _pattern_message(error.instance, path)
    if kind in ("minimum", "maximum"):
        return f"{error.instance} is out of range ({_range_text(error.schema)})"
    if kind == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"'{_shown(error.instance)}' is not one of: {allowed}"
    if kind == "uniqueItems":
        return "lists the same value twice; remove the repeat"
    return str(error.message)


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
                f"{_field_name(path)}: unknown key '{_shown(key)}'{suggestion}",
            )
        )
    return problems


def _missing_key_problems(
    error: Any, path: JsonPath, parsed: ParsedYaml, name: str
) -> list[Problem]:
    if path in parsed.incomplete:
        # The parser dropped a key here (a merge key) and reported it already.
        return []
    missing = error.message.split("'")[1]
    line, column = parsed.position(path)
    message = f"{_field_name(path)}: missing required key '{missing}'"
    if path == () and missing == "version":
        message += "; add version: 1 as the first line"
    return [Problem(name, line, column, message)]


def _allowed_keys(schema: dict[str, Any]) -> set[str]:
    return set(schema.get("properties", {}))


def _range_text(schema: dict[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f"{low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


# --- messages for one wrong value -----------------------------------------------


def _empty_message(path: JsonPath, text: str | None) -> str:
    field = path[-1] if path else ""
    reading = f"YAML reads {text} as no value (null)" if text else "has no value"
    next_steps = {
        "extension": 'write the extension number in quotes, for example "4001"',
        "name": "write the person's name",
        "email": "write the email address",
        "extensions": "list the entries under it, or write extensions: [] for none",
        "version": "write version: 1",
        "pin": "write pin: random, or pin: {env: VARIABLE_NAME}",
        "password": "write password: random, or password: {env: VARIABLE_NAME}",
    }
    next_step = next_steps.get(str(field), "give it a value or remove the key")
    return f"{reading}; {next_step}"


def _version_message(value: Any, text: str | None) -> str:
    if value == "1":
        return "must be the number 1, not the text '1'; remove the quotes"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"must be 1, got {text}; this reconciler reads format version 1 only"
    return f"must be 1, got {_yaml_reading(value)}"


def _type_message(error: Any, text: str | None, path: JsonPath) -> str:
    expected = error.validator_value
    read_as = _yaml_reading(error.instance)
    if path == ():
        return f"must be a mapping with the keys version and extensions, got {read_as}"
    if text is not None and expected == "string":
        return _quote_message(text, read_as, error.schema, path)
    return f"must be {_article(expected)}, got {read_as}"


def _quote_message(
    text: str, read_as: str, schema: dict[str, Any], path: JsonPath
) -> str:
    """Advise quoting a scalar YAML read as a non-string, if quoting fixes it."""
    import jsonschema

    if jsonschema.Draft202012Validator(schema).is_valid(text):
        return f'YAML reads {text} as {read_as}; quote it: "{text}"'
    if path[-1] == "email":
        return (
            f"YAML reads {text} as {read_as}, and '{text}' is not an email address "
            "either; write the address, for example ann@example.com"
        )
    return (
        f"YAML reads {text} as {read_as}, and the text '{text}' is not valid here "
        "either"
    )


def _pattern_message(value: str, path: JsonPath) -> str:
    field = path[-1] if path else ""
    if field == "email":
        return f"'{_shown(value)}' is not a valid email address"
    if field == "env":
        rule = "use letters, digits and underscores, and do not start with a digit"
        if not value.strip("0123456789"):
            # Digits alone may be the PIN itself, which must not be echoed.
            return f"must name an environment variable, not a number; {rule}"
        return f"'{_shown(value)}' is not a valid environment variable name; {rule}"
    if field == "range":
        return (
            f"'{_shown(value)}' must be two numbers as FIRST-LAST, for example "
            "4000-4999"
        )
    return f"'{_shown(value)}' does not have the expected form"


def _any_of_message(error: Any, parsed: ParsedYaml, path: JsonPath) -> str:
    field = path[-1] if path else ""
    value = error.instance
    text = parsed.scalar_texts.get(path)
    if field == "extension":
        return _number_message(value, text, path)
    if len(path) >= 2 and path[-2] == "groups":
        return _group_message(value, text, path)
    if field in SECRET_FIELDS:
        return _secret_message(str(field), value, text)
    if field in ("voicemail", "user_manager"):
        return _switch_message(str(field), value, text)
    return str(error.message)


def _number_message(value: Any, text: str | None, path: JsonPath) -> str:
    if value is None:
        return _empty_message(path, text)
    if isinstance(value, bool):
        return f"YAML reads {text} as a boolean; write digits in quotes"
    if isinstance(value, float):
        return (
            f"YAML reads {text} as the decimal number {value}; write digits only, "
            "in quotes"
        )
    if isinstance(value, str):
        if value.isascii() and value.isdigit():
            return f"'{value}' has {len(value)} digits; FreePBX stores at most 20"
        return f"'{_shown(value)}' must be digits only (at most 20)"
    if isinstance(value, int) and value < 0:
        return f"{value} must not be negative; an extension number is digits only"
    if isinstance(value, int):
        return f"{value} has {len(str(value))} digits; FreePBX stores at most 20"
    return f"must be digits in quotes, got {_yaml_reading(value)}"


def _group_message(value: Any, text: str | None, path: JsonPath) -> str:
    if value is None:
        return _empty_message(path, text)
    written = text if text is not None else f"'{_shown(str(value))}'"
    return (
        f"{written} is not a User Manager group id; write the group's number in "
        'quotes, for example "1"'
    )


def _secret_message(field: str, value: Any, text: str | None) -> str:
    """Describe a PIN or password that is not a source; never echo the value."""
    if value is None:
        return _empty_message((field,), text)
    if isinstance(value, str) and value.strip().lower() == "random":
        return "write random in lower case, without spaces"
    noun = "PIN" if field == "pin" else "password"
    return (
        f"secrets never live in the file, so a literal {noun} is rejected; write "
        f"{field}: random, or {field}: {{env: VARIABLE_NAME}} to read it from the "
        "environment"
    )


def _switch_message(field: str, value: Any, text: str | None) -> str:
    if value is None:
        return _empty_message((field,), text)
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return f"'{_shown(value)}' is text, not true or false; remove the quotes"
    return "must be true, false or a mapping"


def _misread_message(value: int, text: str, path: JsonPath) -> str:
    """Say how YAML 1.1 read an integer whose digits differ from what was written."""
    notation = _integer_notation(text)
    field = str(path[-1]) if path else ""
    if field in INTEGER_FIELDS:
        if notation == "octal":
            return (
                f"YAML reads {text} as the octal number {value}; write the number "
                "without leading zeros"
            )
        return (
            f"YAML reads {text} as the {notation} number {value}; write it as "
            "plain digits"
        )

    if notation == "octal":
        return (
            f"YAML reads {text} as an octal number {value}; "
            f'quote it to keep the digits: "{text}"'
        )
    if notation in ("hexadecimal", "binary", "base-60"):
        if field == "extension" or (len(path) >= 2 and path[-2] == "groups"):
            return (
                f"YAML reads {text} as the {notation} number {value}; it must be "
                "digits only, in quotes"
            )
        return f'YAML reads {text} as the {notation} number {value}; quote it: "{text}"'
    # Underscores dropped or a + sign: the digits are still there.
    return f'YAML reads {text} as the number {value}; write "{value}" in quotes'


def _integer_notation(text: str) -> str:
    """Name the YAML 1.1 integer notation of ``text`` (PyYAML's int resolver)."""
    digits = text.lstrip("+-")
    if ":" in digits:
        return "base-60"
    if digits.startswith("0b"):
        return "binary"
    if digits.startswith("0x"):
        return "hexadecimal"
    if len(digits) > 1 and digits.startswith("0"):
        return "octal"
    return "decimal"


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
    if type(value).__name__ == "datetime":
        return "a date and time"
    return f"a {type(value).__name__}"


def _article(type_name: Any) -> str:
    names = {
        "string": "a string",
        "integer": "a whole number",
        "boolean": "true or false",
        "array": "a list",
        "object": "a mapping",
    }
    if isinstance(type_name, list):
        return " or ".join(names.get(str(t), str(t)) for t in type_name)
    return names.get(str(type_name), str(type_name))


def _field_name(path: JsonPath) -> str:
    if not path:
        return "file"
    parts = []
    for part in path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{_shown(part)}")
    return "".join(parts).lstrip(".")


def _shown(value: Any) -> str:
    return escape_hidden(str(value))


# --- rules a schema cannot state ------------------------------------------------


def _rule_problems(parsed: ParsedYaml, name: str) -> list[Problem]:
    """Check what a schema cannot state, on whatever parts have the right types.

    These checks run even when the schema failed, so each value's type is
    checked before use. A value of the wrong type is skipped here because the
    schema reports it.
    """
    document = parsed.value
    if not isinstance(document, dict):
        return []
    problems = _text_problems(parsed, name)
    defaults = document.get("defaults")
    if not isinstance(defaults, dict):
        defaults = {}
    template, template_problems = _checked_template(defaults, parsed, name)
    problems += template_problems
    problems += _defaults_problems(defaults, parsed, name)

    entries = document.get("extensions")
    if isinstance(entries, list):
        problems += _entries_problems(entries, defaults, template, parsed, name)
    problems += _numbering_problems(document, parsed, name)
    return problems


def _text_problems(parsed: ParsedYaml, name: str) -> list[Problem]:
    """Reject control and invisible characters: FreePBX would store them as is."""
    problems = []
    for path, value in _strings(parsed.value, ()):
        # isprintable() is False for every forbidden character (and for some
        # allowed ones), so it spares the per-character scan of almost every value.
        if value.isprintable():
            continue
        bad = next((c for c in value if _is_forbidden_character(c)), None)
        if bad is None or parsed.is_reported(path):
            continue
        line, column = parsed.position(path)
        if unicodedata.category(bad) == "Cc":
            description = f"the control character U+{ord(bad):04X}"
        else:
            description = (
                f"the invisible character U+{ord(bad):04X} "
                f"{unicodedata.name(bad, 'without a name')}"
            )
        problems.append(
            Problem(
                name,
                line,
                column,
                f"{_field_name(path)}: contains {description}; remove it",
            )
        )
    return problems


def _is_forbidden_character(character: str) -> bool:
    return (
        unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp")
        and character not in ALLOWED_FORMAT_CHARACTERS
    )


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


def _checked_template(
    defaults: dict[str, Any], parsed: ParsedYaml, name: str
) -> tuple[str | None, list[Problem]]:
    """Return defaults.outbound_cid if it is a usable template, and its problems."""
    template = defaults.get("outbound_cid")
    if not isinstance(template, str):
        return None, []
    line, column = parsed.position(("defaults", "outbound_cid"))
    message = _template_message(template)
    if message is not None:
        problem = Problem(name, line, column, f"defaults.outbound_cid: {message}")
        return None, [problem]
    if len(template) > MAX_OUTBOUND_CID:
        return None, []  # the schema reports its length
    return template, []


def _template_message(template: str) -> str | None:
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as error:
        return f"invalid template ({error}); write a literal brace as {{{{ or }}}}"
    for _, field, spec, conversion in fields:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS:
            return (
                f"unknown placeholder {{{_shown(field)}}}; use {{name}} or "
                "{extension}"
            )
        if spec or conversion:
            return (
                f"the placeholder {{{field}}} takes no format spec or conversion; "
                f"write {{{field}}}"
            )
    return None


def _defaults_problems(
    defaults: dict[str, Any], parsed: ParsedYaml, name: str
) -> list[Problem]:
    if defaults.get("tech") != "sip" or "max_contacts" not in defaults:
        return []
    line, column = parsed.position(("defaults", "max_contacts"))
    return [
        Problem(
            name,
            line,
            column,
            "defaults.max_contacts: applies to pjsip only, but defaults.tech is "
            "sip; remove max_contacts or set tech: pjsip",
        )
    ]


def _entries_problems(
    entries: list[Any],
    defaults: dict[str, Any],
    template: str | None,
    parsed: ParsedYaml,
    name: str,
) -> list[Problem]:
    problems = []
    first_line_of_number: dict[str, int] = {}
    first_line_of_email: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        path: JsonPath = ("extensions", index)
        problems += _name_problems(entry, path, parsed, name)
        problems += _expanded_cid_problems(entry, template, path, parsed, name)
        problems += _max_contacts_problems(entry, defaults, path, parsed, name)
        problems += _duplicate_number_problems(
            entry, path, parsed, name, first_line_of_number
        )
        problems += _duplicate_email_problems(
            entry, path, parsed, name, first_line_of_email
        )
    return problems


def _name_problems(
    entry: dict[str, Any], path: JsonPath, parsed: ParsedYaml, name: str
) -> list[Problem]:
    person = entry.get("name")
    if not isinstance(person, str) or person == person.strip():
        return []
    line, column = parsed.position((*path, "name"))
    where = _field_name((*path, "name"))
    if not person.strip():
        message = f"{where}: is only spaces; write the person's name"
    else:
        message = (
            f"{where}: '{_shown(person)}' has leading or trailing spaces, which "
            "FreePBX strips; remove them"
        )
    return [Problem(name, line, column, message)]


def _expanded_cid_problems(
    entry: dict[str, Any],
    template: str | None,
    path: JsonPath,
    parsed: ParsedYaml,
    name: str,
) -> list[Problem]:
    """Check the length of defaults.outbound_cid once expanded for this entry."""
    person = entry.get("name")
    number = _plain_number(entry.get("extension"), parsed, (*path, "extension"))
    if (
        template is None
        or "outbound_cid" in entry
        or not isinstance(person, str)
        or number is None
    ):
        return []
    expanded = _expand(template, {"name": person, "extension": number})
    if len(expanded) <= MAX_OUTBOUND_CID:
        return []
    line, column = parsed.position((*path, "outbound_cid"))
    return [
        Problem(
            name,
            line,
            column,
            f"{_field_name((*path, 'outbound_cid'))}: defaults.outbound_cid expands "
            f"to '{_shown(expanded)}', which is {len(expanded)} characters long; "
            f"FreePBX stores at most {MAX_OUTBOUND_CID}, so shorten the template "
            "or set outbound_cid on this entry",
        )
    ]


def _max_contacts_problems(
    entry: dict[str, Any],
    defaults: dict[str, Any],
    path: JsonPath,
    parsed: ParsedYaml,
    name: str,
) -> list[Problem]:
    # max_contacts from defaults does not apply to a sip entry, so only a value
    # the entry sets itself can contradict its tech.
    if "max_contacts" not in entry or _tech(entry, defaults) != "sip":
        return []
    line, column = parsed.position((*path, "max_contacts"))
    return [
        Problem(
            name,
            line,
            column,
            f"{_field_name((*path, 'max_contacts'))}: applies to pjsip only, but "
            "tech is sip; remove max_contacts or set tech: pjsip",
        )
    ]


def _tech(entry: dict[str, Any], defaults: dict[str, Any]) -> Any:
    return entry.get("tech", defaults.get("tech", "pjsip"))


def _duplicate_number_problems(
    entry: dict[str, Any],
    path: JsonPath,
    parsed: ParsedYaml,
    name: str,
    first_line_of: dict[str, int],
) -> list[Problem]:
    value_path = (*path, "extension")
    number = _plain_number(entry.get("extension"), parsed, value_path)
    if number is None:
        return []
    line, column = parsed.position(value_path)
    if number not in first_line_of:
        first_line_of[number] = line
        return []
    return [
        Problem(
            name,
            line,
            column,
            f"extension {number} is listed twice (first on line "
            f"{first_line_of[number]}); give each entry its own number",
        )
    ]


def _duplicate_email_problems(
    entry: dict[str, Any],
    path: JsonPath,
    parsed: ParsedYaml,
    name: str,
    first_line_of: dict[str, int],
) -> list[Problem]:
    email = entry.get("email")
    if not isinstance(email, str) or not email:
        return []
    # Email addresses are compared without case: mail systems treat
    # Ann@Example.com and ann@example.com as one mailbox.
    key = email.casefold()
    line, column = parsed.position((*path, "email"))
    if key not in first_line_of:
        first_line_of[key] = line
        return []
    return [
        Problem(
            name,
            line,
            column,
            f"email {_shown(email)} is used twice (first on line "
            f"{first_line_of[key]}); give each entry its own address",
        )
    ]


def _plain_number(value: Any, parsed: ParsedYaml, path: JsonPath) -> str | None:
    """Return an extension number as its digits, or None if the schema rejects it.

    An int counts only if YAML read it as written, so 0212 (octal 138) is
    not taken for extension 138.
    """
    if isinstance(value, str) and EXTENSION_NUMBER.fullmatch(value):
        return value
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and parsed.scalar_texts.get(path) == str(value)
        and EXTENSION_NUMBER.fullmatch(str(value))
    ):
        return str(value)
    return None


def _numbering_problems(
    document: dict[str, Any], parsed: ParsedYaml, name: str
) -> list[Problem]:
    numbering = document.get("numbering")
    text = numbering.get("range") if isinstance(numbering, dict) else None
    bounds = _range_bounds(text)
    if bounds is None or bounds[0] <= bounds[1]:
        return []
    first, last = text.split("-")  # type: ignore[union-attr]
    line, column = parsed.position(("numbering", "range"))
    return [
        Problem(
            name,
            line,
            column,
            f"numbering.range: {text} starts after it ends; write the lower number "
            f"first: {last}-{first}",
        )
    ]


def _range_bounds(text: Any) -> tuple[int, int] | None:
    if not isinstance(text, str):
        return None
    match = re.fullmatch(r"([0-9]{1,20})-([0-9]{1,20})", text)
    if match is None:
        return None
    return int(match[1]), int(match[2])


# --- building the model from a valid document -----------------------------------


def _build_state(parsed: ParsedYaml, name: str) -> DesiredState:
    document = parsed.value
    defaults = document.get("defaults", {})
    extensions = tuple(
        _build_extension(entry, defaults, parsed.position(("extensions", index))[0])
        for index, entry in enumerate(document["extensions"])
    )
    numbering = document.get("numbering", {})
    return DesiredState(
        path=name,
        extensions=extensions,
        max_creates=document.get("max_creates"),
        numbering_range=_range_bounds(numbering.get("range")),
    )


def _build_extension(
    entry: dict[str, Any], defaults: dict[str, Any], line: int
) -> DesiredExtension:
    settings = {key: entry.get(key, defaults.get(key)) for key in SETTING_KEYS}
    tech = settings["tech"] or "pjsip"
    if tech != "pjsip" and "max_contacts" not in entry:
        settings["max_contacts"] = None  # a pjsip default, see _max_contacts_problems
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
        email=entry.get("email"),
        tech=tech,
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

"""Validate the document against the JSON Schema and word each error for a user.

Each jsonschema error becomes a Problem at the value's line and column, in
plain words that say how YAML read the value and what to write instead.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from reconciler.errors import Problem
from reconciler.schema_check import schema_check
from reconciler.schema_file import load_inlined_schema
from reconciler.yamlfile import JsonPath, ParsedYaml, escape_hidden

# Fields the schema types as integers. Any other number in the file is text
# that YAML took for a number, such as an extension, a group id or a name.
INTEGER_FIELDS = frozenset({"version", "max_creates", "max_contacts"})
SECRET_FIELDS = frozenset({"pin", "password"})
# The prefix of every environment variable a PIN or password may come from.
SECRET_ENV_PREFIX = "RECONCILER_SECRET_"


def schema_problems(parsed: ParsedYaml, name: str) -> list[Problem]:
    problems = _misread_number_problems(parsed, name)
    check = schema_check()
    if check is not None and check(parsed.value):
        return problems

    import jsonschema  # imported here: it is the slowest import of a validate run

    validator = jsonschema.Draft202012Validator(load_inlined_schema())
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
        problems.append(Problem(name, line, column, f"{field_name(path)}: {message}"))
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
    return [Problem(name, line, column, f"{field_name(path)}: {message}")]


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
        return f"'{shown(error.instance)}' is not one of: {allowed}"
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
                f"{field_name(path)}: unknown key '{shown(key)}'{suggestion}",
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
    message = f"{field_name(path)}: missing required key '{missing}'"
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
        "pin": "write pin: random, or pin: {env: RECONCILER_SECRET_NAME}",
        "password": "write password: random, or password: "
        "{env: RECONCILER_SECRET_NAME}",
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
        return f"'{shown(value)}' is not a valid email address"
    if field == "env":
        return _env_name_message(value)
    if field == "range":
        return (
            f"'{shown(value)}' must be two numbers as FIRST-LAST, for example 4000-4999"
        )
    return f"'{shown(value)}' does not have the expected form"


def _env_name_message(value: str) -> str:
    rule = (
        f"write {SECRET_ENV_PREFIX} and then letters, digits and underscores, for "
        f"example {SECRET_ENV_PREFIX}RECEPTION_PIN"
    )
    if not value.strip("0123456789"):
        # Digits alone may be the PIN itself, which must not be echoed.
        return f"must name an environment variable, not a number; {rule}"
    if value == SECRET_ENV_PREFIX:
        return f"'{value}' lacks a name after the prefix; {rule}"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        return (
            f"'{shown(value)}' does not start with {SECRET_ENV_PREFIX}: only such "
            "variables may hold a PIN or password, so that the file cannot send "
            "another secret of the environment (a CI token, say) to the PBX and "
            f"the credentials file; rename it, for example to "
            f"{SECRET_ENV_PREFIX}{value.upper()}"
        )
    return f"'{shown(value)}' is not a valid environment variable name; {rule}"


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
        return f"'{shown(value)}' must be digits only (at most 20)"
    if isinstance(value, int) and value < 0:
        return f"{value} must not be negative; an extension number is digits only"
    if isinstance(value, int):
        return f"{value} has {len(str(value))} digits; FreePBX stores at most 20"
    return f"must be digits in quotes, got {_yaml_reading(value)}"


def _group_message(value: Any, text: str | None, path: JsonPath) -> str:
    if value is None:
        return _empty_message(path, text)
    written = text if text is not None else f"'{shown(str(value))}'"
    digits = str(value).lstrip("-")
    if isinstance(value, int | str) and digits.isascii() and digits.isdigit():
        # A number that quoting does not fix: too long, or negative.
        return (
            f"{written} is not a User Manager group id; a group id is 1 to 10 "
            'digits, for example "1"'
        )
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
        f"{field}: random, or {field}: {{env: RECONCILER_SECRET_NAME}} to read it "
        "from the environment"
    )


def _switch_message(field: str, value: Any, text: str | None) -> str:
    if value is None:
        return _empty_message((field,), text)
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return f"'{shown(value)}' is text, not true or false; remove the quotes"
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


def field_name(path: JsonPath) -> str:
    if not path:
        return "file"
    parts = []
    for part in path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{shown(part)}")
    return "".join(parts).lstrip(".")


def shown(value: Any) -> str:
    return escape_hidden(str(value))

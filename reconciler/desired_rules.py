"""The rules of extensions.yaml that a JSON Schema cannot state.

Duplicate numbers and emails, templates and their expansion, spaces and
invisible characters, max_contacts on sip entries and the numbering range.
"""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Any

from reconciler.errors import Problem
from reconciler.schema_messages import field_name, shown
from reconciler.yamlfile import JsonPath, ParsedYaml

TEMPLATE_FIELDS = frozenset({"name", "extension"})
MAX_OUTBOUND_CID = 50
# A template may be longer than the caller ID it expands to ("{extension}" is
# 11 characters for 4 digits); the schema holds it to this many.
MAX_TEMPLATE = 200
EXTENSION_NUMBER = re.compile(r"[0-9]{1,20}")
# U+200D ZERO WIDTH JOINER is a format character, but emoji sequences such as
# a family or a flag with a modifier need it, so names may contain it.
ALLOWED_FORMAT_CHARACTERS = frozenset({"\u200d"})


def rule_problems(parsed: ParsedYaml, name: str) -> list[Problem]:
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
    if parsed.printable:
        return []
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
        message = f"{field_name(path)}: contains {_character_problem(bad)}"
        problems.append(Problem(name, line, column, message))
    return problems


def _character_problem(character: str) -> str:
    code = f"U+{ord(character):04X}"
    category = unicodedata.category(character)
    if category == "Cc":
        return f"the control character {code}; remove it"
    if category == "Cs":
        # YAML reads "\ud83d\ude00" as two lone surrogates, not as one emoji.
        return (
            f"the lone surrogate {code}, which is not a character and cannot be "
            "encoded as UTF-8; write the character itself instead of a \\u escape"
        )
    name = unicodedata.name(character, "without a name")
    return f"the invisible character {code} {name}; remove it"


def _is_forbidden_character(character: str) -> bool:
    return (
        unicodedata.category(character) in ("Cc", "Cf", "Cs", "Zl", "Zp")
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
    if len(template) > MAX_TEMPLATE:
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
                f"unknown placeholder {{{shown(field)}}}; use {{name}} or {{extension}}"
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
    where = field_name((*path, "name"))
    if not person.strip():
        message = f"{where}: is only spaces; write the person's name"
    else:
        message = (
            f"{where}: '{shown(person)}' has leading or trailing spaces, which "
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
    """Check the entry's own outbound_cid template, then its expanded length.

    Without an outbound_cid of its own, the entry takes defaults.outbound_cid.
    """
    cid_path = (*path, "outbound_cid")
    own = entry.get("outbound_cid")
    if "outbound_cid" in entry:
        if not isinstance(own, str) or len(own) > MAX_TEMPLATE:
            return []  # the schema reports its type or length
        message = _template_message(own)
        if message is not None:
            line, column = parsed.position(cid_path)
            return [Problem(name, line, column, f"{field_name(cid_path)}: {message}")]
        template = own
    person = entry.get("name")
    number = _plain_number(entry.get("extension"), parsed, (*path, "extension"))
    if template is None or not isinstance(person, str) or number is None:
        return []
    expanded = expand_template(template, {"name": person, "extension": number})
    if len(expanded) <= MAX_OUTBOUND_CID and not (
        '"{name}"' in template and '"' in person
    ):
        return []
    # Field names are built only for an entry with a problem, because building
    # them for every entry was the largest cost of this check.
    where = field_name(cid_path)
    line, column = parsed.position(cid_path)
    if '"{name}"' in template and '"' in person:
        # The name's own quote would end the caller ID's quoted display name.
        source = "defaults.outbound_cid" if own is None else "the template"
        return [
            Problem(
                name,
                line,
                column,
                f"{where}: {source} puts the name in double quotes, but the name "
                f"'{shown(person)}' contains one, which gives the malformed caller "
                f"ID '{shown(expanded)}'; set an outbound_cid without it on this "
                "entry",
            )
        ]
    if own is not None and expanded == own:
        # No placeholder: say it plainly, without "expands".
        return [
            Problem(
                name,
                line,
                column,
                f"{where}: is {len(own)} characters long; FreePBX stores at most "
                f"{MAX_OUTBOUND_CID}",
            )
        ]
    if own is None:
        source = "defaults.outbound_cid expands"
        fix = "shorten the template or set outbound_cid on this entry"
    else:
        source = "expands"
        fix = "shorten it"
    return [
        Problem(
            name,
            line,
            column,
            f"{where}: {source} to '{shown(expanded)}', which is {len(expanded)} "
            f"characters long; FreePBX stores at most {MAX_OUTBOUND_CID}, so {fix}",
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
            f"{field_name((*path, 'max_contacts'))}: applies to pjsip only, but "
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
    first = _first_line(number, line, first_line_of)
    if first is None:
        return []
    return [
        Problem(
            name,
            line,
            column,
            f"extension {number} is listed twice (first on line {first}); give "
            "each entry its own number",
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
    first = _first_line(key, line, first_line_of)
    if first is None:
        return []
    return [
        Problem(
            name,
            line,
            column,
            f"email {shown(email)} is used twice (first on line {first}); give "
            "each entry its own address",
        )
    ]


def _first_line(key: str, line: int, first_line_of: dict[str, int]) -> int | None:
    """Return the line where ``key`` was first used, or record ``line`` as that."""
    if key in first_line_of:
        return first_line_of[key]
    first_line_of[key] = line
    return None


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
    bounds = range_bounds(text)
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


def range_bounds(text: Any) -> tuple[int, int] | None:
    if not isinstance(text, str):
        return None
    match = re.fullmatch(r"([0-9]{1,20})-([0-9]{1,20})", text)
    if match is None:
        return None
    return int(match[1]), int(match[2])


def expand_template(template: str, values: dict[str, str]) -> str:
    """Fill {name} and {extension} into a checked outbound_cid template."""
    return template.format_map(values)

"""Write the live PBX's extensions as an extensions file in this tool's format.

The file is built from the readable fields of one read, so a plan of the
exported file against the same PBX has nothing to create and no drift. PyYAML's
emitter quotes each value. An extension that the file format cannot contain (a
number with a letter, tech iax2, a number listed twice) is left out and named in
a comment, so plan then shows it as unmanaged.
"""

from __future__ import annotations

import html
import json
import os
import re
import stat
import tempfile
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from reconciler.errors import InvalidDesiredState, ReconcilerError
from reconciler.models import LiveExtension, LiveState, same_name
from reconciler.userman import EmailState, not_checked

SCHEMA_MODELINE = "# yaml-language-server: $schema=schema/extensions.schema.json"
EMAIL_UNKNOWN_COMMENT = (
    "# email unknown: FreePBX shows it only to a token with rest:userman:read"
)
NO_USER_COMMENT = "# no User Manager user: FreePBX shows no email for it"
EXTENSION_NUMBER = re.compile(r"[0-9]{1,20}")
TECHS = ("pjsip", "sip")
# The widths of FreePBX's columns, as the schema states them.
MAX_NAME = 50
MAX_OUTBOUND_CID = 50
MAX_EMERGENCY_CID = 100
# U+200D ZERO WIDTH JOINER joins emoji sequences, so the validator allows it.
ALLOWED_FORMAT_CHARACTERS = frozenset({"\u200d"})
# A named or numeric character reference that ends with ";", as FreePBX 17
# writes them. html.unescape alone would also decode "&copy" without the ";".
ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
# Wide enough that PyYAML never folds a value over two lines.
_NO_WRAP = 1 << 30
_INDENT = "    "


class ExportError(ReconcilerError):
    """The export cannot be written to the requested file."""


@dataclass(frozen=True)
class Export:
    """An exported extensions file and what it left out."""

    text: str
    exported: int
    # One line per extension left out, naming the number and the reason.
    skipped: tuple[str, ...]


def render_export(
    live: LiveState,
    source: str,
    exported_at: datetime,
    emails: EmailState | None = None,
) -> Export:
    """Render ``live`` as an extensions file, naming ``source`` in the header.

    ``emails``, when read, gives each entry its User Manager email.
    """
    emails = emails or not_checked("emails were not read")
    entries: list[list[str]] = []
    skipped: list[str] = []
    for extension in _in_number_order(live.extensions):
        reason = _skip_reason(extension, live.duplicates)
        if reason is None:
            entries.append(_entry_lines(extension, emails))
        else:
            skipped.append(f"extension {_quoted(extension.extension)}: {reason}")

    lines = _header_lines(source, exported_at, skipped, emails.checked)
    lines += [SCHEMA_MODELINE, "version: 1", ""]
    if not entries:
        lines.append("extensions: []")
    else:
        lines.append("extensions:")
        for index, entry in enumerate(entries):
            if index:
                lines.append("")
            lines += entry
    text = "\n".join(lines) + "\n"
    return Export(text=text, exported=len(entries), skipped=tuple(skipped))


def check_output(path: Path, force: bool) -> None:
    """Raise ExportError when ``path`` exists and ``force`` is not set."""
    if path.is_symlink() and not path.exists():
        # Writing through it would create a file wherever the link points.
        raise ExportError(
            f"{path} is a symbolic link to the missing file {os.readlink(path)}; "
            "remove the link or choose another file with -o"
        )
    if path.exists() and not force:
        raise ExportError(
            f"{path} already exists; pass --force to overwrite it, or choose "
            "another file with -o"
        )
    if path.is_dir():
        raise ExportError(f"{path} is a directory; give a file name with -o")
    if not path.parent.is_dir():
        raise ExportError(
            f"cannot write {path}: the directory {path.parent} does not exist; "
            "create it or give a file in an existing directory with -o"
        )


def validate_export(text: str) -> None:
    """Load ``text`` as reconciler loads extensions.yaml, and raise if it is invalid.

    The export checks each value against the file's rules before it writes it,
    so a failure here means that the two checks disagree. Nothing is written.
    """
    from reconciler.desired import load_desired_state

    with tempfile.TemporaryDirectory(prefix="reconciler-export-") as directory:
        path = Path(directory) / "export.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_desired_state(path)
        except InvalidDesiredState as error:
            problems = "; ".join(
                f"line {p.line}: {p.message}" for p in error.problems[:5]
            )
            raise ExportError(
                "the exported file would not pass validate, so nothing was "
                f"written ({problems}); please report this with the output of "
                "reconciler plan --format json"
            ) from None


def write_export(text: str, path: Path, force: bool) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory.

    The rename makes the write all or nothing. Without ``force`` the rename is
    a hard link, which fails if another process created ``path`` meanwhile.
    An overwritten file keeps its mode; a new one gets the umask's.
    """
    check_output(path, force)
    mode = _file_mode(path)
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise ExportError(
            f"cannot write {path}: {error.strerror}; give a file in a directory "
            "you can write to with -o"
        ) from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        _move_into_place(temporary, path, force)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _move_into_place(temporary: str, path: Path, force: bool) -> None:
    if force:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise ExportError(
            f"{path} was created while exporting; pass --force to overwrite it"
        ) from None
    except OSError:
        # A file system without hard links: check again, then rename.
        check_output(path, force)
        os.replace(temporary, path)


def _file_mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def public_url(url: str) -> str:
    """Return ``url`` without a user name or password, for the file's header."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=host))


# --- one entry -------------------------------------------------------------------


def _entry_lines(extension: LiveExtension, emails: EmailState) -> list[str]:
    lines = [
        f"  - extension: {_quoted(extension.extension)}",
        f"{_INDENT}name: {_scalar(exported_name(extension))}",
        *_email_lines(extension, emails),
    ]
    # Only values that differ from what an entry without the key means.
    if extension.tech != "pjsip":
        lines.append(f"{_INDENT}tech: {_scalar(extension.tech)}")
    if extension.outbound_cid:
        cid = _literal_template(extension.outbound_cid)
        lines.append(f"{_INDENT}outbound_cid: {_scalar(cid)}")
    if extension.emergency_cid:
        lines.append(f"{_INDENT}emergency_cid: {_scalar(extension.emergency_cid)}")
    lines.append(f"{_INDENT}voicemail: {_scalar(extension.voicemail)}")
    return lines


def _email_lines(extension: LiveExtension, emails: EmailState) -> list[str]:
    if not emails.checked:
        return [f"{_INDENT}{EMAIL_UNKNOWN_COMMENT}"]
    user = emails.user_for(extension.extension)
    if user is None:
        # The file then says so, and plan compares no email for it.
        return [f"{_INDENT}{NO_USER_COMMENT}", f"{_INDENT}user_manager: false"]
    if not user.email:
        return [f"{_INDENT}# email unknown: its User Manager user has none"]
    return [f"{_INDENT}email: {_scalar(user.email)}"]


def exported_name(extension: LiveExtension) -> str:
    """Return the name to write for ``extension``, as it was given to FreePBX.

    FreePBX 16 turns < and > into ( and ) in the user name but keeps them in the
    device description, so the description is used when it is the same name.
    FreePBX 17 stores both HTML-entity encoded; they are decoded.
    """
    description = decode_entities(extension.description)
    if description and same_name(extension.name, description):
        return description
    return decode_entities(extension.name)


def decode_entities(text: str) -> str:
    """Decode the character references that end with ";" (``&lt;`` to ``<``)."""
    return ENTITY.sub(lambda match: html.unescape(match.group(0)), text)


def _skip_reason(extension: LiveExtension, duplicates: tuple[str, ...]) -> str | None:
    """Return why ``extension`` cannot be an entry of the file, or None."""
    number = extension.extension
    if not EXTENSION_NUMBER.fullmatch(number):
        return "the file takes numbers of 1 to 20 digits only"
    if number in duplicates:
        return (
            "FreePBX lists it more than once; delete and re-create it, then "
            "export again"
        )
    if extension.tech not in TECHS:
        return f"tech {_quoted(extension.tech)} is not one the file takes (pjsip, sip)"
    name = exported_name(extension)
    if not name.strip():
        return "it has no name"
    problems = [
        _text_problem("name", name, MAX_NAME),
        _text_problem(
            "outbound_cid", _literal_template(extension.outbound_cid), MAX_OUTBOUND_CID
        ),
        _text_problem("emergency_cid", extension.emergency_cid, MAX_EMERGENCY_CID),
    ]
    if name != name.strip():
        problems.append("the name has leading or trailing spaces")
    return next((problem for problem in problems if problem), None)


def _literal_template(cid: str) -> str:
    """Double the braces of a live caller ID, which the file reads as a template."""
    return cid.replace("{", "{{").replace("}", "}}")


def _text_problem(field: str, value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"{field} is {len(value)} characters long, more than {limit}"
    hidden = next((c for c in value if _is_hidden(c)), None)
    if hidden is not None:
        return f"{field} contains the control character U+{ord(hidden):04X}"
    return None


def _is_hidden(character: str) -> bool:
    return (
        unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp")
        and character not in ALLOWED_FORMAT_CHARACTERS
    )


def _in_number_order(extensions: tuple[LiveExtension, ...]) -> list[LiveExtension]:
    # Numeric order with the text as a tie-break ("0212" before "212"); numbers
    # that are not digits sort last, and are skipped.
    def order(extension: LiveExtension) -> tuple[int, int, str]:
        number = extension.extension
        if number.isascii() and number.isdigit():
            return (0, int(number), number)
        return (1, 0, number)

    return sorted(extensions, key=order)


# --- YAML text -------------------------------------------------------------------


def _scalar(value: str | bool) -> str:
    """Return ``value`` as a YAML scalar for a block mapping, quoted if needed."""
    dumped = yaml.safe_dump(
        {"k": value}, allow_unicode=True, width=_NO_WRAP, default_flow_style=False
    )
    text = dumped.removeprefix("k: ").removesuffix("\n")
    if "\n" in text:
        raise ExportError(f"cannot write {value!r} on one line")  # pragma: no cover
    return text


def _quoted(text: str) -> str:
    """Return ``text`` in double quotes, with JSON's escapes, which YAML reads too."""
    return json.dumps(text, ensure_ascii=False)


def _header_lines(
    source: str, exported_at: datetime, skipped: list[str], emails_read: bool
) -> list[str]:
    lines = [
        "# FreePBX extensions, written by `reconciler export` from the live PBX.",
        f"# PBX:      {_comment_text(source)}",
        f"# Exported: {exported_at.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "#",
    ]
    if emails_read:
        lines += [
            "# Voicemail PINs, passwords and User Manager groups cannot be read",
            "# through FreePBX's API and are not in this file.",
        ]
    else:
        lines += [
            "# Emails, voicemail PINs, passwords and User Manager settings cannot be",
            "# read through FreePBX's GraphQL API and are not in this file. Give each",
            "# entry its email before apply creates it on another PBX, or export",
            "# with the scope rest:userman:read.",
        ]
    lines += [
        "# For `reconciler add`, declare the numbers new hires take, for example:",
        "#   numbering: {range: 4000-4999}",
    ]
    if skipped:
        lines += ["#", "# Left out, because the file format cannot hold them:"]
        lines += [f"#   {_comment_text(reason)}" for reason in skipped]
    return lines


def _comment_text(text: str) -> str:
    # A line break in a value from the PBX would end the comment early.
    return "".join(c if not _is_hidden(c) else "?" for c in text)

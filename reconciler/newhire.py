"""Add a new hire's entry to an extensions file without touching the rest of it.

The entry is inserted as text after the last item of the ``extensions:``
sequence, found through PyYAML's node marks, so every comment, blank line and
quote of the file stays byte for byte. The new entry copies the indentation and
the style (block or flow) of the entry before it. The result is validated like
any extensions file before it replaces the original, all at once.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from reconciler.errors import InvalidDesiredState, ReconcilerError
from reconciler.models import DesiredState

EXTENSION_NUMBER = re.compile(r"[0-9]{1,20}")
# Wide enough that PyYAML never folds a value over two lines.
_NO_WRAP = 1 << 30


class NewHireError(ReconcilerError):
    """The entry cannot be added; the file is unchanged."""


@dataclass(frozen=True)
class NewHire:
    """The person to add, as given on the command line."""

    name: str
    email: str
    # None: take the lowest free number of the file's numbering range.
    extension: str | None = None


@dataclass(frozen=True)
class Draft:
    """A new hire checked against the file, before the PBX is read."""

    path: Path
    text: str
    desired: DesiredState
    hire: NewHire


def prepare(path: Path, hire: NewHire) -> Draft:
    """Validate the file and check ``hire`` against it, sending no request.

    Raises InvalidDesiredState for an invalid file and NewHireError for a
    number or email the file already uses, or a file without a numbering range
    when no number is given.
    """
    from reconciler.desired import load_desired_state

    desired = load_desired_state(path)
    text = _read_text(path)
    _check_text("--name", hire.name)
    _check_text("--email", hire.email)
    if hire.extension is not None and not EXTENSION_NUMBER.fullmatch(hire.extension):
        raise NewHireError(
            f"--extension {hire.extension!r} must be 1 to 20 digits, for example 4013"
        )

    for entry in desired.extensions:
        if hire.extension is not None and entry.extension == hire.extension:
            raise NewHireError(
                f"extension {hire.extension} is already in {path} (line "
                f"{entry.line}, {entry.name}); choose another number or leave out "
                "--extension to take the lowest free one"
            )
        if entry.email is not None and entry.email.casefold() == hire.email.casefold():
            raise NewHireError(
                f"email {hire.email} is already used in {path} by extension "
                f"{entry.extension} (line {entry.line}); each entry needs its own "
                "address"
            )
    if hire.extension is None and _range_text(text) is None:
        raise NewHireError(
            f"{path} declares no numbering range, so there is no number to take; "
            "pass --extension N, or add to the file: numbering: {range: 4000-4999}"
        )
    return Draft(path=path, text=text, desired=desired, hire=hire)


def add(draft: Draft, pbx_numbers: Collection[str] | None) -> str:
    """Insert the entry, validate the result and replace the file.

    Returns the extension number of the new entry. ``pbx_numbers`` are the
    extensions the PBX lists, or None when offline.
    """
    number = draft.hire.extension
    if number is None:
        number = lowest_free_number(draft, pbx_numbers or ())
    elif pbx_numbers is not None and number in pbx_numbers:
        raise NewHireError(
            f"extension {number} already exists on the PBX (not in {draft.path}); "
            "choose another number, or leave out --extension to take a free one"
        )

    new_text = insert_entry(draft.text, number, draft.hire.name, draft.hire.email)
    _write_validated(draft, new_text, number)
    return number


def lowest_free_number(draft: Draft, pbx_numbers: Collection[str]) -> str:
    """Return the lowest number of the file's range used neither in it nor on the PBX.

    A range written with leading zeros (0200-0299) gives numbers of its width.
    """
    text = _range_text(draft.text)
    if text is None:  # prepare() checked this
        raise NewHireError(f"{draft.path} declares no numbering range")
    first_text, last_text = text.split("-")
    first, last = int(first_text), int(last_text)
    width = len(first_text) if first_text.startswith("0") else 0
    used = {entry.extension for entry in draft.desired.extensions}
    used.update(pbx_numbers)
    # At most len(used) + 1 candidates are tried, however wide the range.
    candidate = first
    while candidate <= last:
        number = str(candidate).zfill(width)
        if number not in used:
            return number
        candidate += 1
    where = "the file" if not pbx_numbers else "the file or on the PBX"
    raise NewHireError(
        f"every number of the range {text} is used in {where}; widen "
        "numbering.range or pass --extension N"
    )


# --- inserting the entry as text ----------------------------------------------------


def insert_entry(text: str, number: str, name: str, email: str) -> str:
    """Return ``text`` with a new entry appended to its ``extensions`` sequence."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        raise NewHireError("the file is not a mapping with an extensions key")
    key, sequence = _extensions_node(root)
    newline = "\r\n" if "\r\n" in text else "\n"
    if not sequence.value:
        if root.flow_style:
            return _insert_into_flow(text, sequence, number, name, email, newline)
        return _replace_empty(text, key, sequence, number, name, email, newline)
    if sequence.flow_style:
        return _insert_into_flow(text, sequence, number, name, email, newline)
    return _append_to_block(text, sequence, number, name, email, newline)


def _extensions_node(root: yaml.MappingNode) -> tuple[yaml.Node, yaml.SequenceNode]:
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "extensions":
            if not isinstance(value, yaml.SequenceNode):
                break
            if value.start_mark.index < key.end_mark.index:
                # An alias: the list is written elsewhere, under its anchor.
                raise NewHireError(
                    "extensions is an alias of a list written elsewhere; add "
                    "the entry by hand"
                )
            return key, value
    raise NewHireError("the file has no extensions list")


def _append_to_block(
    text: str,
    sequence: yaml.SequenceNode,
    number: str,
    name: str,
    email: str,
    newline: str,
) -> str:
    """Append an item after the last one, in its indentation and style."""
    last = sequence.value[-1]
    dash_column = _dash_column(text, last.start_mark.index)
    quote = _extension_quote(last)
    if isinstance(last, yaml.MappingNode) and not last.flow_style:
        key_column = max(last.start_mark.column, dash_column + 2)
        after_dash = " " * (key_column - dash_column - 1)
        indent = " " * key_column
        lines = [
            f"{' ' * dash_column}-{after_dash}extension: {quote}{number}{quote}",
            f"{indent}name: {_block_scalar(name)}",
            f"{indent}email: {_block_scalar(email)}",
        ]
    else:
        lines = [f"{' ' * dash_column}- {_flow_entry(number, name, email, quote)}"]

    text, position = _line_after(text, _content_end(last), newline)
    separator = newline if _blank_line_between_last_two(text, sequence) else ""
    block = separator + newline.join(lines) + newline
    return text[:position] + block + text[position:]


def _insert_into_flow(
    text: str,
    sequence: yaml.SequenceNode,
    number: str,
    name: str,
    email: str,
    newline: str,
) -> str:
    """Add an item to a [...] sequence, after its last item or inside []."""
    if not sequence.value:
        entry = _flow_entry(number, name, email, '"')
        position = sequence.start_mark.index + 1  # just after "["
        return text[:position] + entry + text[position:]
    last = sequence.value[-1]
    entry = _flow_entry(number, name, email, _extension_quote(last))
    position = last.end_mark.index
    if sequence.end_mark.line != last.end_mark.line:
        # One item per line: the new one gets its own line, at the same column.
        addition = f",{newline}{' ' * last.start_mark.column}{entry}"
    else:
        addition = f", {entry}"
    return text[:position] + addition + text[position:]


def _replace_empty(
    text: str,
    key: yaml.Node,
    sequence: yaml.SequenceNode,
    number: str,
    name: str,
    email: str,
    newline: str,
) -> str:
    """Turn ``extensions: []`` into a block sequence holding the new entry.

    A comment after the [] stays on the extensions line.
    """
    start, end = sequence.start_mark.index, sequence.end_mark.index
    line_end = _line_end(text, end)
    rest = text[end:line_end]
    before = text[:start]
    if not rest.strip():
        before = before.rstrip(" \t")
    text = before + rest + text[line_end:]
    position = len(before) + len(rest)
    if position == len(text):
        text += newline
    position += len(newline)

    dash = " " * (key.start_mark.column + 2)
    indent = dash + "  "
    lines = [
        f'{dash}- extension: "{number}"',
        f"{indent}name: {_block_scalar(name)}",
        f"{indent}email: {_block_scalar(email)}",
    ]
    return text[:position] + newline.join(lines) + newline + text[position:]


def _dash_column(text: str, item_start: int) -> int:
    """Return the column of the "-" before the item that starts at ``item_start``."""
    index = item_start - 1
    while index >= 0 and text[index] in " \t\r\n":
        index -= 1
    if index < 0 or text[index] != "-":
        raise NewHireError("cannot find the '-' of the last entry; add it by hand")
    return index - (text.rfind("\n", 0, index) + 1)


def _content_end(node: yaml.Node) -> yaml.Mark:
    """Return where the last value inside ``node`` ends.

    A block collection's own end mark lies after the comments and blank lines
    that follow it, so the last scalar or flow collection inside it is used.
    """
    while (
        isinstance(node, (yaml.MappingNode, yaml.SequenceNode))
        and not node.flow_style
        and node.value
    ):
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    return node.end_mark


def _line_after(text: str, mark: yaml.Mark, newline: str) -> tuple[str, int]:
    """Return ``text`` and the index of the line that follows the one ``mark`` ends.

    A block scalar (| or >) ends at the start of the next line already. A last
    line without a line break gets one.
    """
    if mark.column == 0:
        return text, mark.index
    end = _line_end(text, mark.index)
    if end == len(text):
        return text + newline, len(text) + len(newline)
    return text, end + (2 if text.startswith("\r\n", end) else 1)


def _line_end(text: str, index: int) -> int:
    """Return the index of the line break after ``index``, or the text's length."""
    end = text.find("\n", index)
    if end == -1:
        return len(text)
    return end - 1 if end > 0 and text[end - 1] == "\r" else end


def _blank_line_between_last_two(text: str, sequence: yaml.SequenceNode) -> bool:
    if len(sequence.value) < 2:
        return False
    previous_end = _content_end(sequence.value[-2]).line
    last_start = sequence.value[-1].start_mark.line
    lines = text.splitlines()[previous_end + 1 : last_start]
    return any(not line.strip() for line in lines)


def _extension_quote(entry: yaml.Node) -> str:
    """Return the quote character the entry's extension number is written with."""
    value = _mapping_value(entry, "extension")
    if isinstance(value, yaml.ScalarNode) and value.style in ("'", '"'):
        return str(value.style)
    # A plain number loses a leading zero, so the new one is always quoted.
    return '"'


def _block_scalar(value: str) -> str:
    dumped = yaml.safe_dump(
        {"k": value}, allow_unicode=True, width=_NO_WRAP, default_flow_style=False
    )
    return dumped.removeprefix("k: ").removesuffix("\n")


def _flow_entry(number: str, name: str, email: str, quote: str) -> str:
    name_text = _flow_scalar(name)
    email_text = _flow_scalar(email)
    return (
        f"{{extension: {quote}{number}{quote}, name: {name_text}, email: {email_text}}}"
    )


def _flow_scalar(value: str) -> str:
    dumped = yaml.safe_dump(
        {"k": value}, allow_unicode=True, width=_NO_WRAP, default_flow_style=True
    )
    return dumped.removeprefix("{k: ").removesuffix("}\n")


def _check_text(option: str, value: str) -> None:
    # The file's validation rejects control characters, and PyYAML would write
    # a line break as a second line, so reject them before building the entry.
    for character in value:
        if unicodedata.category(character) in ("Cc", "Zl", "Zp"):
            raise NewHireError(
                f"{option} contains the control character U+{ord(character):04X}; "
                "remove it"
            )


def _range_text(text: str) -> str | None:
    """Return numbering.range as written, e.g. "0200-0299", or None."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    numbering = _mapping_value(root, "numbering")
    value = _mapping_value(numbering, "range")
    return value.value if isinstance(value, yaml.ScalarNode) else None


def _mapping_value(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value  # type: ignore[no-any-return]
    return None


# --- writing ------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    # The file was read and validated just before, so it is UTF-8. A byte order
    # mark stays in the text, and is written back.
    return path.read_bytes().decode("utf-8")


def _write_validated(draft: Draft, new_text: str, number: str) -> None:
    """Validate ``new_text`` as the file, then move it into place all at once."""
    from reconciler.desired import load_desired_state

    target = draft.path.resolve()
    mode = stat.S_IMODE(target.stat().st_mode)
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(new_text.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        try:
            state = load_desired_state(Path(temporary))
        except InvalidDesiredState as error:
            raise _invalid_result(draft, error) from None
        _check_added(draft, state, number)
        os.chmod(temporary, mode)
        _check_unchanged(draft, target)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _check_unchanged(draft: Draft, target: Path) -> None:
    """Raise NewHireError when the file changed since add read it.

    Reading the PBX can take seconds, and another add or an editor may write
    the file meanwhile; replacing it then would lose that change.
    NOTE: a write between this check and the rename is still lost; the
    window is one stat and one read long.
    """
    if target.read_bytes() != draft.text.encode("utf-8"):
        raise NewHireError(
            f"{draft.path} changed while add ran (another add or an editor?), so "
            "it is unchanged by this add; run reconciler add again"
        )


def _invalid_result(draft: Draft, error: InvalidDesiredState) -> NewHireError:
    shown = [str(replace(p, path=str(draft.path))) for p in error.problems]
    return NewHireError(
        f"the new entry would make {draft.path} invalid, so the file is unchanged "
        "(line numbers count the new entry):\n" + "\n".join(shown)
    )


def _check_added(draft: Draft, state: DesiredState, number: str) -> None:
    """Check that the insertion added exactly the new entry, as a last guard."""
    before = [entry.extension for entry in draft.desired.extensions]
    after = [entry.extension for entry in state.extensions]
    added = [
        entry
        for entry in state.extensions
        if entry.extension == number
        and entry.name == draft.hire.name
        and entry.email == draft.hire.email
    ]
    if len(after) != len(before) + 1 or len(added) != 1:
        raise NewHireError(
            f"adding the entry to {draft.path} did not give the expected list, so "
            "the file is unchanged; add the entry by hand and report this"
        )

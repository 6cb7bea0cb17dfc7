"""Machine and review formats of a plan: versioned JSON and a Markdown table.

The JSON structure is documented in docs/plan-json.md; bump PLAN_FORMAT_VERSION
on any change that breaks a reader.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.models import DesiredExtension, SecretSource
from reconciler.planner import Plan
from reconciler.yamlfile import escape_hidden

PLAN_FORMAT_VERSION = 1
# U+200D joins emoji sequences (a family, a flag), which names may contain.
EMOJI_JOINER = frozenset({"\u200d"})


def plan_to_dict(plan: Plan, source: str, target: str) -> dict[str, Any]:
    """Return the plan as JSON-ready data, in the plan's stable order."""
    return {
        "format_version": PLAN_FORMAT_VERSION,
        "source": source,
        "target": target,
        "summary": {
            "create": len(plan.creates),
            "drift": len(plan.drifts),
            "unmanaged": len(plan.unmanaged),
            "in_sync": plan.in_sync,
            "duplicates": len(plan.duplicates),
        },
        "creates": [extension_to_dict(e) for e in plan.creates],
        "drift": [
            {
                "extension": d.desired.extension,
                "name": d.desired.name,
                "fields": [
                    {"field": f.field, "live": f.live, "desired": f.desired}
                    for f in d.fields
                ],
            }
            for d in plan.drifts
        ],
        "unmanaged": [
            {"extension": e.extension, "name": e.name} for e in plan.unmanaged
        ],
        "duplicates": list(plan.duplicates),
        "not_compared": list(plan.not_compared),
        "email_checked": plan.email_checked,
        "email_unchecked_reason": plan.email_unchecked_reason or None,
    }


def extension_to_dict(extension: DesiredExtension) -> dict[str, Any]:
    """Return the fields an addExtension will send; secrets by source only."""
    return {
        "extension": extension.extension,
        "name": extension.name,
        "email": extension.email,
        "tech": extension.tech,
        "outbound_cid": extension.outbound_cid,
        "emergency_cid": extension.emergency_cid,
        "caller_id": extension.caller_id,
        "voicemail": {
            "enabled": extension.voicemail,
            "pin": _source(extension.voicemail_pin) if extension.voicemail else None,
        },
        "user_manager": {
            "enabled": extension.user_manager,
            "groups": list(extension.user_manager_groups),
            "password": _source(extension.user_manager_password)
            if extension.user_manager
            else None,
        },
        "max_contacts": extension.max_contacts,
    }


def _source(source: SecretSource) -> str | dict[str, str]:
    if source.kind == "env":
        return {"env": source.env_var or ""}
    return "random"


def summary_counts(plan: Plan) -> str:
    """Return the plan's counts; the duplicates appear only when there are some."""
    counts = (
        f"{len(plan.creates)} to create, {len(plan.drifts)} drifted, "
        f"{len(plan.unmanaged)} unmanaged, {plan.in_sync} in sync"
    )
    if plan.duplicates:
        counts += f", {len(plan.duplicates)} listed twice"
    return counts


def render_json(plan: Plan, source: str, target: str) -> str:
    return json.dumps(plan_to_dict(plan, source, target), ensure_ascii=False, indent=2)


def render_markdown(plan: Plan, source: str, target: str) -> str:
    """Return a compact Markdown table for a pull-request comment."""
    lines = [
        f"#### reconciler plan: {summary_counts(plan)}",
        "",
        f"`{_code(source)}` against `{_code(target)}`",
        "",
    ]
    rows = _markdown_rows(plan)
    if rows:
        lines += [
            "| action | extension | name | details |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    else:
        lines += ["Nothing to create and no drift.", ""]
    # Each note is a paragraph of its own: Markdown joins adjacent lines.
    if plan.drifts:
        lines += [
            "Drift is reported only: apply creates missing extensions and never "
            "changes existing ones.",
            "",
        ]
    if plan.creates:
        not_compared = ", ".join(plan.not_compared)
        lines += [f"Not compared (cannot be read back): {not_compared}.", ""]
    if plan.emails_unchecked:
        lines += [f"Email not checked: {plan.email_unchecked_reason}.", ""]
    if plan.duplicates:
        numbers = ", ".join(_cell(number) for number in plan.duplicates)
        lines += [f"**Listed twice by FreePBX:** {numbers}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def _markdown_rows(plan: Plan) -> list[str]:
    rows = []
    for e in plan.creates:
        email = e.email or "email missing"
        details = f"{email}, {e.tech}, voicemail {'on' if e.voicemail else 'off'}, "
        details += f"user manager {'on' if e.user_manager else 'off'}"
        rows.append(_row("create", e.extension, e.name, details))
    for d in plan.drifts:
        changes = "; ".join(
            f"{f.field}: {_shown(f.live)} → {_shown(f.desired)}" for f in d.fields
        )
        rows.append(_row("drift", d.desired.extension, d.desired.name, changes))
    for live in plan.unmanaged:
        rows.append(_row("unmanaged", live.extension, live.name, "left alone"))
    return rows


def _row(action: str, extension: str, name: str, details: str) -> str:
    cells = [action, extension, name, details]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _cell(text: str) -> str:
    # A newline ends the table and a pipe ends a cell: flatten whitespace,
    # escape other control characters (names come from the PBX), and
    # backslash-escape the characters Markdown would read as formatting.
    escaped = escape_hidden(" ".join(text.split()), keep=EMOJI_JOINER)
    escaped = escaped.replace("\\", "\\\\").replace("|", "\\|")
    for char in "*_`[]<>#":
        escaped = escaped.replace(char, "\\" + char)
    return escaped


def _code(text: str) -> str:
    return text.replace("`", "'")


def _shown(value: str | bool) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f'"{value}"'

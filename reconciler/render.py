"""Text output of plans and apply results: stable order, plain words, no secrets."""

from __future__ import annotations

import json

from reconciler.applier import ApplyResult, CreateResult, ReloadResult
from reconciler.models import DesiredExtension
from reconciler.plan_formats import EMOJI_JOINER, summary_counts
from reconciler.planner import Plan
from reconciler.yamlfile import escape_hidden

ADDITIONS_ONLY_NOTE = (
    "  Drift is reported only: apply creates missing extensions and never changes "
    "or deletes existing ones\n"
    "  (FreePBX's update deletes and re-creates an extension, losing voicemail and "
    "settings)."
)


def render_plan(plan: Plan, source: str, target: str) -> str:
    """Return the plan as text: creates, drift, unmanaged, then the summary."""
    lines = [f"Plan for {source} against {target}", ""]
    lines += _creates_section(plan)
    lines += _drift_section(plan)
    lines += _unmanaged_section(plan)
    lines += _duplicates_section(plan)
    if plan.creates:
        lines.append(
            "Not compared: " + ", ".join(plan.not_compared) + " cannot be read back "
            "through the FreePBX GraphQL API; they are sent only when an extension is "
            "created."
        )
        lines.append("")
    if plan.emails_unchecked:
        lines += [f"Email not checked: {plan.email_unchecked_reason}.", ""]
    lines.append(plan_summary(plan))
    return "\n".join(lines)


def plan_summary(plan: Plan) -> str:
    return f"Plan: {summary_counts(plan)}."


def _creates_section(plan: Plan) -> list[str]:
    if not plan.creates:
        return ["Nothing to create: every extension in the file exists on the PBX.", ""]
    lines = [f"Create ({len(plan.creates)}):"]
    for extension in plan.creates:
        lines.append(f"  + {extension.extension}  {extension.name}")
        lines += [
            f"      {name}: {value}" for name, value in creation_fields(extension)
        ]
    return [*lines, ""]


def creation_fields(extension: DesiredExtension) -> list[tuple[str, str]]:
    """Return the fields an addExtension will send, secrets described, not shown."""
    fields = [
        ("email", extension.email or "missing (add email: to the entry)"),
        ("tech", extension.tech),
        ("outbound caller ID", _or_none(extension.outbound_cid)),
        ("emergency caller ID", _or_none(extension.emergency_cid)),
    ]
    if extension.caller_id is not None:
        fields.append(("device caller ID", extension.caller_id))
    if extension.voicemail:
        fields.append(("voicemail", f"on, PIN {extension.voicemail_pin.describe()}"))
    else:
        fields.append(("voicemail", "off"))
    if extension.user_manager:
        groups = ",".join(extension.user_manager_groups) or "FreePBX default"
        password = extension.user_manager_password.describe()
        fields.append(("user manager", f"on, groups {groups}, password {password}"))
    else:
        fields.append(("user manager", "off"))
    if extension.max_contacts is not None:
        fields.append(("max contacts", str(extension.max_contacts)))
    return fields


def _or_none(value: str) -> str:
    return value if value else "(none)"


def _drift_section(plan: Plan) -> list[str]:
    if not plan.drifts:
        return []
    lines = [f"Drift ({len(plan.drifts)}):"]
    for drift in plan.drifts:
        lines.append(f"  ~ {drift.desired.extension}  {drift.desired.name}")
        for field in drift.fields:
            lines.append(
                f"      {field.field}: live {_value(_from_pbx(field.live))}, "
                f"file {_value(field.desired)}"
            )
    return [*lines, ADDITIONS_ONLY_NOTE, ""]


def _value(value: str | bool) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    # Caller IDs hold double quotes themselves; quote with what the value lacks.
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    return json.dumps(value, ensure_ascii=False)


def _unmanaged_section(plan: Plan) -> list[str]:
    if not plan.unmanaged:
        return []
    lines = [
        f"Unmanaged ({len(plan.unmanaged)}, on the PBX but not in the file; "
        "left alone):"
    ]
    lines += [
        f"  ? {_from_pbx(live.extension)}  {_from_pbx(live.name)}"
        for live in plan.unmanaged
    ]
    return [*lines, ""]


def _duplicates_section(plan: Plan) -> list[str]:
    if not plan.duplicates:
        return []
    numbers = ", ".join(escape_hidden(number) for number in plan.duplicates)
    return [
        f"Warning: FreePBX lists these extensions more than once: {numbers}. Two "
        "clients added the same number at the same moment; delete and re-create it "
        "in the FreePBX web interface.",
        "",
    ]


def render_create(done: int, total: int, result: CreateResult) -> str:
    extension = result.extension
    text = f"[{done}/{total}] {extension.extension} {extension.name}: {result.status}"
    if result.status != "created" and result.message:
        text += f" ({escape_hidden(result.message)})"
    return text


def render_apply_result(result: ApplyResult) -> str:
    """Return the final report: created, failed, not attempted, reload, verification."""
    failed = [r for r in result.creates if r.status == "failed"]
    unknown = [r for r in result.creates if r.status == "outcome unknown"]
    skipped = [r for r in result.creates if r.status == "not attempted"]
    lines = _results_section("Failed", "!", failed, with_message=True)
    lines += _results_section(
        "Outcome unknown", "?", unknown, with_message=True, note=UNKNOWN_NOTE
    )
    lines += _results_section("Not attempted", "-", skipped, with_message=False)

    if result.interrupted:
        lines.append("Interrupted: stopped after the request in flight.")
    if result.stopped is not None:
        lines.append(f"Stopped: {result.stopped}")
    lines.append(_reload_line(result.reload))
    lines += _verification_lines(result)
    unknown_count = f"{len(unknown)} outcome unknown, " if unknown else ""
    lines.append(
        f"Apply: {result.count('created')} created, "
        f"{result.count('already present')} already present, {len(failed)} failed, "
        f"{unknown_count}{len(skipped)} not attempted; apply config "
        f"{result.reload.status}; {len(result.not_converged)} not converged."
    )
    return "\n".join(lines)


UNKNOWN_NOTE = "run reconciler plan to see whether FreePBX has them"


def _results_section(
    title: str,
    marker: str,
    results: list[CreateResult],
    *,
    with_message: bool,
    note: str | None = None,
) -> list[str]:
    if not results:
        return []
    count = f"{len(results)}, {note}" if note else str(len(results))
    lines = [f"{title} ({count}):"]
    for r in results:
        line = f"  {marker} {r.extension.extension}  {r.extension.name}"
        message = escape_hidden(r.message)
        lines.append(f"{line}: {message}" if with_message else line)
    return lines


def _reload_line(reload: ReloadResult) -> str:
    if reload.status == "not needed":
        return "Apply config: not needed (nothing was created)."
    if reload.status == "not run":
        return (
            f"Apply config: not run ({reload.details}); the next reconciler apply "
            "runs it, so that the created extensions take effect."
        )
    transaction = (
        f" (transaction {reload.transaction_id})" if reload.transaction_id else ""
    )
    text = f"Apply config: {reload.status}{transaction}"
    if reload.seconds:
        text += f" after {reload.seconds:.1f} s"
    if reload.details:
        text += f": {reload.details}"
    if reload.status == "timed out":
        text += (
            "; raise --reload-timeout or check the reload in the FreePBX web interface"
        )
    return text + "."


def _verification_lines(result: ApplyResult) -> list[str]:
    if result.verify_error:
        return [f"Verification failed: {result.verify_error}"]
    if not result.not_converged:
        return []
    lines = [f"Not converged ({len(result.not_converged)}):"]
    lines += [
        f"  ! {e.extension}  {e.name}: {escape_hidden(reason)}"
        for e, reason in result.not_converged
    ]
    return lines


def _from_pbx(value: str | bool) -> str | bool:
    """Escape control characters of a value read from the PBX.

    Anyone who can edit a name in FreePBX's web interface could otherwise
    write a line break or a terminal escape sequence into a CI log, and forge
    plan lines there.
    """
    if isinstance(value, str):
        return escape_hidden(value, keep=EMOJI_JOINER)
    return value

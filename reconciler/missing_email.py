"""Stop plan and apply before creating an extension whose entry has no email.

An exported file may hold entries without email, because FreePBX shows emails
only to a token with rest:userman:read. Such an entry can stand for an existing
extension, but a new one needs an address for its User Manager account and
voicemail, so it is never created without one.
"""

from __future__ import annotations

from reconciler.errors import ReconcilerError
from reconciler.planner import Plan

# Entries named one by one in the message; the rest are counted.
MAX_NAMED = 10


class MissingEmail(ReconcilerError):
    """Extensions to create whose entries have no email."""


def check_creates_have_email(plan: Plan, source: str, *, applying: bool = True) -> None:
    """Raise MissingEmail naming each extension to create that has no email.

    ``applying`` adds that nothing was created, which only apply can say.
    """
    missing = [extension for extension in plan.creates if extension.email is None]
    if not missing:
        return
    named = [f"{e.extension} (line {e.line})" for e in missing[:MAX_NAMED]]
    if len(missing) > MAX_NAMED:
        named.append(f"and {len(missing) - MAX_NAMED} more")
    noun = "extension" if len(missing) == 1 else "extensions"
    message = (
        f"cannot create {noun} {', '.join(named)} of {source}: a new extension "
        "needs an email for its User Manager account and voicemail, so add "
        "email: to the entry"
    )
    raise MissingEmail(message + (". Nothing was created" if applying else ""))

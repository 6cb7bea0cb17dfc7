"""Compare the desired state with the live state and compute the plan.

The plan only ever creates: FreePBX's updateExtension deletes and re-creates an
extension (voicemail and settings are lost), so differences on existing
extensions are reported as drift and left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.models import (
    DesiredExtension,
    DesiredState,
    LiveExtension,
    LiveState,
    same_name,
    same_text,
)
from reconciler.userman import EmailState

# Fields sent at creation that the GraphQL API cannot read back. The userman
# REST API shows the email, to a token with a userman read scope.
UNREADABLE_FIELDS = (
    "email",
    "user manager groups",
    "voicemail PIN",
    "user manager password",
    "device caller ID",
    "max contacts",
)


@dataclass(frozen=True)
class FieldDrift:
    """One readable field whose live value differs from the desired one."""

    field: str
    live: str | bool
    desired: str | bool


@dataclass(frozen=True)
class Drift:
    """An extension in both places whose readable fields differ."""

    desired: DesiredExtension
    live: LiveExtension
    fields: tuple[FieldDrift, ...]


@dataclass(frozen=True)
class Plan:
    """The changes an apply would make and the extensions it would leave alone.

    Each list is in a stable order.
    """

    creates: tuple[DesiredExtension, ...]
    drifts: tuple[Drift, ...]
    unmanaged: tuple[LiveExtension, ...]
    in_sync: int
    # Numbers FreePBX lists more than once (two clients added one number at once).
    duplicates: tuple[str, ...] = ()
    # Whether emails were read and compared; when not, why.
    email_checked: bool = False
    email_unchecked_reason: str = "emails were not read"

    @property
    def has_changes(self) -> bool:
        """Tell whether plan --detailed-exitcode exits 2.

        A number FreePBX lists twice counts, because only a person in the
        FreePBX web interface can repair it.
        """
        return bool(self.creates or self.drifts or self.duplicates)

    @property
    def emails_unchecked(self) -> bool:
        """Tell whether existing extensions had emails that were not compared."""
        return not self.email_checked and bool(self.drifts or self.in_sync)

    @property
    def not_compared(self) -> tuple[str, ...]:
        """Return the fields sent at creation that this plan did not compare."""
        if self.email_checked:
            return tuple(name for name in UNREADABLE_FIELDS if name != "email")
        return UNREADABLE_FIELDS


def compute_plan(
    desired: DesiredState, live: LiveState, emails: EmailState | None = None
) -> Plan:
    """Return the plan that turns ``live`` into ``desired`` by additions only.

    ``emails`` adds email drift when it contains the User Manager users.
    """
    live_by_number = live.by_number()
    creates = []
    drifts = []
    in_sync = 0
    for extension in desired.extensions:
        current = live_by_number.get(extension.extension)
        if current is None:
            creates.append(extension)
            continue
        differences = compare(extension, current) + compare_email(extension, emails)
        if differences:
            drifts.append(Drift(extension, current, differences))
        else:
            in_sync += 1

    managed = {extension.extension for extension in desired.extensions}
    unmanaged = [e for e in live.extensions if e.extension not in managed]
    return Plan(
        creates=tuple(sorted(creates, key=_number_order)),
        drifts=tuple(sorted(drifts, key=lambda d: _number_order(d.desired))),
        unmanaged=tuple(sorted(unmanaged, key=_number_order)),
        in_sync=in_sync,
        duplicates=live.duplicates,
        email_checked=emails is not None and emails.checked,
        email_unchecked_reason=_unchecked_reason(emails),
    )


def compare(desired: DesiredExtension, live: LiveExtension) -> tuple[FieldDrift, ...]:
    """Return the readable fields whose live value differs from the desired one."""
    wanted = desired.readable_fields()
    actual = live.readable_fields()
    differences = []
    for field, desired_value in wanted.items():
        live_value = actual[field]
        if field == "name" and isinstance(live_value, str):
            equal = same_name(live_value, desired.name)
        elif isinstance(desired_value, str) and isinstance(live_value, str):
            equal = same_text(live_value, desired_value)
        else:
            equal = live_value == desired_value
        if not equal:
            differences.append(FieldDrift(field, live_value, desired_value))
    return tuple(differences)


def compare_email(
    desired: DesiredExtension, emails: EmailState | None
) -> tuple[FieldDrift, ...]:
    """Return the email drift of an existing extension, when its email was read.

    Only an extension with User Manager on in the file and a User Manager user
    on the PBX has an email to compare.
    """
    if emails is None or not desired.user_manager or desired.email is None:
        return ()
    user = emails.user_for(desired.extension)
    if user is None or same_email(user.email, desired.email):
        return ()
    return (FieldDrift("email", user.email, desired.email),)


def same_email(live: str, desired: str) -> bool:
    """Compare two email addresses, ignoring blanks around them and the domain's case.

    Domain names are case-insensitive (RFC 5321, section 2.4), but the local
    part before the last "@" may not be, so it must match exactly.
    """
    live, desired = live.strip(), desired.strip()
    if "@" not in live or "@" not in desired:
        return live == desired
    live_local, _, live_domain = live.rpartition("@")
    desired_local, _, desired_domain = desired.rpartition("@")
    # NOTE: an internationalised domain in Unicode and the same domain in
    # punycode (xn--) compare as different.
    return live_local == desired_local and live_domain.lower() == desired_domain.lower()


def _unchecked_reason(emails: EmailState | None) -> str:
    if emails is None:
        return "emails were not read"
    return "" if emails.checked else emails.unchecked_reason


def _number_order(extension: DesiredExtension | LiveExtension) -> tuple[int, int, str]:
    # Numeric order, with the text as a tie-break ("0212" before "212"). FreePBX
    # also stores numbers such as "+5094" or " 5092", which sort last, by text.
    number = extension.extension
    if number.isdigit():
        return (0, int(number), number)
    return (1, 0, number)

"""Extension mutations with the checks, defaults and messages of FreePBX core.

The behaviour is that of core 16.0.68.4 (measured) and the core 16/17 sources
read: addExtension, updateExtension (delete and recreate) and deleteExtension.
Input dictionaries hold the GraphQL input fields the client sent; a field
sent as null counts as missing, as PHP's isset() has it.
"""

from __future__ import annotations

import hashlib
import html
import secrets
from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.errors import ClientSafeError
from reconciler.sandbox.pbx import Pbx
from reconciler.sandbox.php import TRIM_CHARACTERS, is_numeric
from reconciler.sandbox.store import CoreUser, Device, Mailbox, UsermanUser

CREATED = "Extension has been created Successfully"
UPDATED = "Extension has been updated"
DELETED = "Extension has been deleted"
NOT_NUMERIC = "Please enter only numeric values"
ALREADY_IN_USE = "This device id is already in use"
DOES_NOT_EXIST = "Extension does not exists."
PASSWORD_REQUIRED = "User management is enabled please provide password"
LICENCE_LIMIT = "Can not add extension beyond the extensions license limit"
NO_CHAN_SIP = (
    "The installed version of Asterisk does not support chan_sip."
    " Please use pjsip instead"
)

# Column widths (characters) of the core tables, in the order MariaDB
# checks them on insert. Strict SQL mode rejects longer values.
DEVICE_COLUMNS = (("id", 20), ("description", 50), ("emergency_cid", 100))
USER_COLUMNS = (("password", 20), ("name", 50), ("outboundcid", 50))

SIP_TECHS = ("pjsip", "sip")


@dataclass(frozen=True)
class MutationResult:
    """Status and message of a mutation payload, both None for a null payload."""

    status: bool | None
    message: str | None


@dataclass(frozen=True)
class NewExtension:
    """The rows one processQuickCreate writes."""

    device: Device | None
    user: CoreUser
    userman_user: UsermanUser | None
    mailbox: Mailbox | None


def add_extension(pbx: Pbx, fields: dict[str, Any]) -> MutationResult:
    """Run addExtension: checks in FreePBX's order, then create the rows."""
    with pbx.store.transaction():
        failure = _add_check_failure(pbx, fields)
        if failure is not None:
            return MutationResult(False, failure)
        extension = _build_extension(pbx, fields, secret=None)
        _store_extension(pbx, extension)
    return MutationResult(True, CREATED)


def update_extension(pbx: Pbx, fields: dict[str, Any]) -> MutationResult:
    """Run updateExtension: delete the extension, then create it again.

    Omitted values are taken from the existing rows only for the name,
    email, voicemail password and max contacts. The others revert to their
    defaults, and a missing extPassword makes a new SIP secret.
    """
    with pbx.store.transaction():
        failure = _update_check_failure(pbx, fields)
        if failure is not None:
            return MutationResult(False, failure)
        device = pbx.store.find_device(fields["extensionId"])
        assert device is not None
        if _update_is_ignored(pbx, fields, device):
            return MutationResult(None, None)
        merged = _merge_existing(pbx, fields, device)
        _delete_rows(pbx, device.id, userman=True)
        # NOTE: a too-long value raises here and rolls the deletion back, so
        # the extension stays as it was. A real FreePBX may have lost it.
        extension = _build_extension(pbx, merged, secret=fields.get("extPassword"))
        _store_extension(pbx, extension)
    return MutationResult(True, UPDATED)


def delete_extension(pbx: Pbx, fields: dict[str, Any]) -> MutationResult:
    """Run deleteExtension, which keeps the User Management user as FreePBX does."""
    extension_id = fields["extensionId"]
    if not is_numeric(extension_id):
        return MutationResult(False, NOT_NUMERIC)
    with pbx.store.transaction():
        device = pbx.store.find_device(extension_id)
        user = pbx.store.find_user(extension_id)
        if device is None and user is None:
            return MutationResult(False, DOES_NOT_EXIST)
        # NOTE: a real FreePBX also deletes the SIP settings of the id with
        # non-digits stripped and leaves the id's own rows. Not emulated.
        _delete_rows(pbx, extension_id, userman=False)
    return MutationResult(True, DELETED)


def _add_check_failure(pbx: Pbx, fields: dict[str, Any]) -> str | None:
    limit = pbx.settings.extension_limit
    if limit is not None and len(pbx.store.list_devices()) >= limit:
        return LICENCE_LIMIT
    common = _password_and_number_failure(fields)
    if common is not None:
        return common
    if pbx.store.find_device(fields["extensionId"]) is not None:
        return ALREADY_IN_USE
    return _tech_failure(pbx, fields)


def _update_check_failure(pbx: Pbx, fields: dict[str, Any]) -> str | None:
    common = _password_and_number_failure(fields)
    if common is not None:
        return common
    if pbx.store.find_device(fields["extensionId"]) is None:
        return DOES_NOT_EXIST
    return _tech_failure(pbx, fields)


def _password_and_number_failure(fields: dict[str, Any]) -> str | None:
    # Only an explicit umEnable:true requires umPassword, and "" counts as given.
    if fields.get("umEnable") is True and fields.get("umPassword") is None:
        return PASSWORD_REQUIRED
    if not is_numeric(fields["extensionId"]):
        return NOT_NUMERIC
    return None


def _tech_failure(pbx: Pbx, fields: dict[str, Any]) -> str | None:
    # Core 16.0.68.4 accepts any tech here, but FreePBX 17 checks it against
    # the Asterisk version and the SIP channel driver.
    if pbx.version < 17:
        return None
    tech = fields.get("tech") or "pjsip"
    if tech == "sip" and pbx.settings.asterisk_version >= 21:
        return NO_CHAN_SIP
    wanted = "pjsip" if pbx.settings.sip_driver == "chan_pjsip" else "sip"
    if tech != wanted:
        return (
            f"The existing driver not support this tech(`{tech}`) option ."
            f" Please use {wanted} instead"
        )
    return None


def _update_is_ignored(pbx: Pbx, fields: dict[str, Any], device: Device) -> bool:
    # FreePBX returns {"status":null,"message":null} and changes nothing in
    # these three cases.
    if fields.get("name") is None:
        return True
    if not fields.get("email") and pbx.store.find_userman_user(device.id) is None:
        return True
    tech = fields.get("tech") or "pjsip"
    return (
        tech == "pjsip" and device.tech != "pjsip" and fields.get("maxContacts") is None
    )


def _merge_existing(pbx: Pbx, fields: dict[str, Any], device: Device) -> dict[str, Any]:
    merged = {key: value for key, value in fields.items() if value is not None}
    if not merged.get("name"):
        merged["name"] = device.description
    userman_user = pbx.store.find_userman_user(device.id)
    if "email" not in merged and userman_user is not None:
        merged["email"] = userman_user.email
    mailbox = pbx.store.find_mailbox(device.id)
    if "vmPassword" not in merged and mailbox is not None:
        merged["vmPassword"] = mailbox.password
    if "maxContacts" not in merged and device.max_contacts is not None:
        merged["maxContacts"] = device.max_contacts
    merged["extensionId"] = device.id
    return merged


def _build_extension(
    pbx: Pbx, fields: dict[str, Any], secret: str | None
) -> NewExtension:
    extension_id: str = fields["extensionId"]
    tech = fields.get("tech")
    if tech is None:
        tech = "pjsip"
    # Core inserts the device, then checks for an existing user, then
    # inserts the user: the first failure decides the message.
    device = _build_device(pbx, fields, extension_id, tech, secret)
    _reject_existing_user(pbx, extension_id)
    user = _build_user(pbx, fields, extension_id)
    return NewExtension(
        device=device,
        user=user,
        userman_user=_build_userman_user(fields, extension_id),
        mailbox=_build_mailbox(fields, extension_id),
    )


def _build_device(
    pbx: Pbx, fields: dict[str, Any], extension_id: str, tech: str, secret: str | None
) -> Device | None:
    dial = _dial_string(tech, extension_id, fields.get("channelName") or "")
    if tech == "virtual":
        return None
    emergency_cid = fields.get("emergencyCid") or ""
    description = _stored_name(pbx, fields["name"].strip(TRIM_CHARACTERS))
    _check_widths(
        {
            "id": extension_id,
            "description": description,
            "emergency_cid": emergency_cid,
        },
        DEVICE_COLUMNS,
        "Could Not Insert Device::SQLSTATE[22001]: String data, right truncated:"
        " 1406 Data too long for column &#039;{column}&#039; at row 1",
    )
    if tech in SIP_TECHS and secret is None:
        secret = secrets.token_hex(16)
    return Device(
        id=extension_id,
        tech=tech,
        dial=dial,
        devicetype="fixed",
        user_extension=extension_id,
        description=description,
        emergency_cid=emergency_cid,
        callerid=fields.get("callerID") or emergency_cid,
        secret=secret if tech in SIP_TECHS else None,
        max_contacts=_max_contacts(fields.get("maxContacts"))
        if tech == "pjsip"
        else None,
    )


def _dial_string(tech: str, extension_id: str, channel_name: str) -> str:
    dial_prefixes = {
        "pjsip": f"PJSIP/{extension_id}",
        "sip": f"SIP/{extension_id}",
        "iax2": f"IAX2/{extension_id}",
        "dahdi": f"DAHDI/{channel_name}",
        "custom": f"/{extension_id}",
        "virtual": "",
    }
    if tech not in dial_prefixes:
        # Core looks the dial string up by tech, so PHP 8 warns of a missing key.
        raise ClientSafeError('Undefined array key "dial"')
    return dial_prefixes[tech]


def _build_user(pbx: Pbx, fields: dict[str, Any], extension_id: str) -> CoreUser:
    name = _stored_name(pbx, fields["name"].strip(TRIM_CHARACTERS))
    # Core's addUser turns angle brackets into parentheses, in the user only.
    name = name.replace("<", "(").replace(">", ")")
    password = fields.get("umPassword") or ""
    outbound_cid = fields.get("outboundCid") or ""
    _check_widths(
        {"password": password, "name": name, "outboundcid": outbound_cid},
        USER_COLUMNS,
        "Unable to insert into users: SQLSTATE[22001]: String data, right truncated:"
        " 1406 Data too long for column \\'{column}\\' at row 1",
    )
    voicemail = "default" if _build_mailbox(fields, extension_id) else "novm"
    return CoreUser(extension_id, name, password, voicemail, outbound_cid)


def _stored_name(pbx: Pbx, name: str) -> str:
    # FreePBX 17 stores names HTML-entity encoded.
    return html.escape(name, quote=True) if pbx.version >= 17 else name


def _check_widths(
    values: dict[str, str], columns: tuple[tuple[str, int], ...], message: str
) -> None:
    # NOTE: the users message was measured with its middle elided; the text
    # between "SQLSTATE[22001]:" and the column is MariaDB's usual wording.
    for column, width in columns:
        if len(values[column]) > width:
            raise ClientSafeError(message.format(column=column))


def _build_userman_user(
    fields: dict[str, Any], extension_id: str
) -> UsermanUser | None:
    if fields.get("umEnable") is False:
        return None
    password = fields.get("umPassword") or secrets.token_hex(16)
    return UsermanUser(
        username=extension_id,
        email=fields.get("email") or "",
        # Userman keeps the name exactly as given, blanks and < > included.
        displayname=fields["name"],
        password_sha256=hashlib.sha256(password.encode()).hexdigest(),
        default_extension=extension_id,
        description="Autogenerated user on new device creation",
        group_ids=fields.get("umGroups") or "1",
    )


def _build_mailbox(fields: dict[str, Any], extension_id: str) -> Mailbox | None:
    # Voicemail creates a mailbox only with vmEnable (default true) and a password.
    password = fields.get("vmPassword")
    if fields.get("vmEnable") is False or not password:
        return None
    name = fields["name"].strip(TRIM_CHARACTERS)
    return Mailbox(extension_id, password, name, fields.get("email") or "")


def _max_contacts(value: str | None) -> str:
    if not value:
        return "1"
    if is_numeric(value) and float(value) > 100:
        return "100"
    return value


def _reject_existing_user(pbx: Pbx, extension_id: str) -> None:
    # A core user without a device (tech "virtual") blocks a new extension.
    if pbx.store.find_user(extension_id) is not None:
        raise ClientSafeError(f"This user/extension {extension_id} is already in use")


def _store_extension(pbx: Pbx, extension: NewExtension) -> None:
    store = pbx.store
    if extension.device is not None:
        store.add_device(extension.device)
    store.add_user(extension.user)
    # An existing User Management user is kept as is, without an error.
    userman_user = extension.userman_user
    if (
        userman_user is not None
        and store.find_userman_user(userman_user.username) is None
    ):
        store.add_userman_user(userman_user)
    if extension.mailbox is not None:
        store.put_mailbox(extension.mailbox)
    mark_reload_needed(pbx)


def _delete_rows(pbx: Pbx, extension_id: str, *, userman: bool) -> None:
    pbx.store.delete_device_and_user(extension_id)
    pbx.store.delete_mailbox(extension_id)
    if userman:
        pbx.store.delete_userman_user(extension_id)
    mark_reload_needed(pbx)


def mark_reload_needed(pbx: Pbx) -> None:
    pbx.store.set_setting("config_changed_at", repr(pbx.clock()))

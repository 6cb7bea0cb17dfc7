"""The extension operations of the FreePBX API, in this tool's terms.

This is the edge where FreePBX's names (extensionId, umEnable, doreload,
transaction_id) meet the model's (extension, user_manager, apply config).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from reconciler import operations
from reconciler.client import FreePBXClient
from reconciler.errors import ApiError
from reconciler.lasting import building_lasting_data
from reconciler.models import DesiredExtension, LiveExtension, LiveState
from reconciler.scopes import explain_read_failure

CREATED_MESSAGE = "Extension has been created Successfully"
ALREADY_IN_USE = "This device id is already in use"
RELOAD_PROCESSING = "Processing"
RELOAD_EXECUTED = "Executed"
RELOAD_ALREADY_RUNNING = "Process is already running."
RELOAD_REQUIRED = "Doreload is required"


@dataclass(frozen=True)
class ExtensionSecrets:
    """The secrets sent with one new extension; never printed or logged."""

    voicemail_pin: str | None
    user_manager_password: str | None


def read_live_state(client: FreePBXClient) -> LiveState:
    """Read every extension once; a failed or partial read raises, never reads empty."""
    with building_lasting_data():
        return _read_live_state(client)


def _read_live_state(client: FreePBXClient) -> LiveState:
    try:
        data = client.query("fetchAllExtensions", operations.FETCH_ALL_EXTENSIONS, {})
    except ApiError as error:
        raise explain_read_failure(client, error) from None
    listing = _payload(data, "fetchAllExtensions")
    items = listing.get("extension")
    if not isinstance(items, list):
        raise ApiError(
            "fetchAllExtensions",
            "the answer has no extension list; the PBX state is unknown",
            200,
        )
    extensions = [_live_extension(item) for item in items if isinstance(item, dict)]
    total = listing.get("totalCount")
    if isinstance(total, int) and total != len(extensions):
        raise ApiError(
            "fetchAllExtensions",
            f"FreePBX counts {total} extensions but listed {len(extensions)}; "
            "the PBX state is unknown",
            200,
        )
    counts = Counter(extension.extension for extension in extensions)
    duplicates = tuple(sorted(number for number, n in counts.items() if n > 1))
    return LiveState(extensions=tuple(extensions), duplicates=duplicates)


def _live_extension(item: dict[str, Any]) -> LiveExtension:
    # `user` is null for an adhoc device and all-null when the core user is missing.
    user = item.get("user") or {}
    device = item.get("coreDevice") or {}
    name = user.get("name")
    if name is None:
        name = device.get("description") or ""
    return LiveExtension(
        extension=str(item.get("extensionId") or ""),
        name=name,
        tech=item.get("tech") or "",
        outbound_cid=user.get("outboundCid") or "",
        emergency_cid=device.get("emergencyCid") or "",
        voicemail=user.get("voicemail") not in (None, "", "novm"),
        description=device.get("description") or "",
    )


def add_extension(
    client: FreePBXClient, extension: DesiredExtension, secrets: ExtensionSecrets
) -> str:
    """Create one extension; return FreePBX's message or raise ApiError."""
    variables = {"input": addextension_input(extension, secrets)}
    data = client.mutate("addExtension", operations.ADD_EXTENSION, variables)
    payload = _payload(data, "addExtension")
    return str(payload.get("message") or CREATED_MESSAGE)


def addextension_input(
    extension: DesiredExtension, secrets: ExtensionSecrets
) -> dict[str, Any]:
    """Build addExtensionInput: every field explicit, as FreePBX's defaults surprise."""
    values: dict[str, Any] = {
        "extensionId": extension.extension,
        "name": extension.name,
        "email": extension.email,
        "tech": extension.tech,
        "outboundCid": extension.outbound_cid,
        "emergencyCid": extension.emergency_cid,
        # An omitted umEnable or vmEnable means "yes" to FreePBX.
        "umEnable": extension.user_manager,
        "vmEnable": extension.voicemail,
    }
    if extension.caller_id is not None:
        values["callerID"] = extension.caller_id
    if extension.user_manager:
        values["umPassword"] = secrets.user_manager_password
        if extension.user_manager_groups:
            values["umGroups"] = ",".join(extension.user_manager_groups)
    if extension.voicemail:
        values["vmPassword"] = secrets.voicemail_pin
    if extension.max_contacts is not None:
        values["maxContacts"] = str(extension.max_contacts)
    return values


def start_reload(client: FreePBXClient) -> str:
    """Start FreePBX's apply config (doreload); return its transaction id."""
    data = client.mutate("doreload", operations.DO_RELOAD, {"input": {}})
    payload = _payload(data, "doreload")
    transaction_id = payload.get("transaction_id")
    if transaction_id in (None, ""):
        raise ApiError("doreload", "FreePBX returned no transaction_id", 200)
    return str(transaction_id)


def reload_status(client: FreePBXClient, transaction_id: str) -> str:
    """Return the transaction's status: Processing, Executed, Failed or another text."""
    data = client.query(
        "fetchApiStatus", operations.FETCH_API_STATUS, {"txnId": transaction_id}
    )
    # fetchApiStatus returns status true for every id, so the outcome is in message.
    message = data.get("fetchApiStatus", {}) if isinstance(data, dict) else {}
    return str((message or {}).get("message") or "")


def reload_failure_details(client: FreePBXClient, transaction_id: str) -> str | None:
    """Return why a reload failed, where the FreePBX version exposes it."""
    try:
        data = client.query(
            "fetchApiStatus",
            operations.FETCH_API_STATUS_DETAILS,
            {"txnId": transaction_id},
        )
    except ApiError:
        return None  # FreePBX 15 has no `details` field.
    details = (data.get("fetchApiStatus") or {}).get("details")
    return str(details) if details else None


def reload_needed(client: FreePBXClient) -> bool:
    """Tell whether FreePBX has changes that no apply config has applied yet."""
    data = client.query("fetchNeedReload", operations.FETCH_NEED_RELOAD, {})
    return _payload(data, "fetchNeedReload").get("message") == RELOAD_REQUIRED


def _payload(data: Any, root_field: str) -> dict[str, Any]:
    payload = data.get(root_field) if isinstance(data, dict) else None
    if not isinstance(payload, dict):
        raise ApiError(root_field, "FreePBX returned no result", 200)
    if payload.get("status") is not True:
        message = payload.get("message") or f"status {payload.get('status')}"
        raise ApiError(root_field, str(message), 200)
    return payload

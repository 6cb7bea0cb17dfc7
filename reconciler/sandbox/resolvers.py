"""Resolvers of the root fields the sandbox emulates, returning FreePBX's shapes.

Results are dictionaries read by graphql-core's default resolver. A value
that is a function is called instead, which is how fields that always fail
on FreePBX (list items' status, pageInfo, ...) raise their error.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

from graphql import GraphQLResolveInfo

from reconciler.sandbox import extensions, reloads
from reconciler.sandbox.errors import InternalError, NotEmulated
from reconciler.sandbox.extensions import MutationResult
from reconciler.sandbox.paging import page
from reconciler.sandbox.pbx import Pbx
from reconciler.sandbox.store import CoreUser, Device

logger = logging.getLogger(__name__)

Resolver = Callable[..., Any]
Info = GraphQLResolveInfo[Pbx]

EXTENSIONS_FOUND = "Extension's found successfully"
EXTENSION_FOUND = "Extension found successfully"
EXTENSION_NOT_FOUND = "Extension does not exists"
STATUS_NOT_FOUND = "Sorry unable to fetch the status"


def global_id(type_name: str, identifier: str) -> str:
    """Encode a Relay global id the way graphql-relay-php does."""
    return base64.b64encode(f"{type_name}:{identifier}".encode()).decode()


# List items and module results carry ids with an empty identifier.
LIST_ITEM_ID = global_id("extension", "")
MODULE_ID = global_id("module", "")


def not_emulated(_root: Any, info: Info, **_arguments: Any) -> Any:
    logger.warning(
        "sandbox does not emulate %s.%s", info.parent_type.name, info.field_name
    )
    raise NotEmulated(f"{info.parent_type.name}.{info.field_name} is not emulated")


def _always_fails(_info: Info, **_arguments: Any) -> Any:
    raise InternalError("this field always fails on FreePBX")


def _pbx(info: Info) -> Pbx:
    return info.context


# Core: extensions


def resolve_fetch_all_extensions(
    _root: Any, info: Info, **arguments: Any
) -> dict[str, Any]:
    pbx = _pbx(info)
    devices = pbx.store.list_devices()
    return _extension_connection(devices, devices, _all_users(pbx), arguments)


def resolve_fetch_all_valid_extensions(
    _root: Any, info: Info, **arguments: Any
) -> dict[str, Any]:
    pbx = _pbx(info)
    devices = pbx.store.list_devices()
    users = _all_users(pbx)
    valid = [device for device in devices if _is_valid(device, users)]
    return _extension_connection(devices, valid, users, arguments)


def _extension_connection(
    devices: list[Device],
    listed: list[Device],
    users: dict[str, CoreUser],
    arguments: dict[str, Any],
) -> dict[str, Any]:
    # totalCount counts every device whatever the paging, count the valid ones.
    items = [_extension(device, users, listed=True) for device in listed]
    return {
        "pageInfo": None,
        "edges": None,
        "totalCount": len(devices),
        "count": sum(1 for device in devices if _is_valid(device, users)),
        "extension": page(items, arguments),
        "status": True,
        "message": EXTENSIONS_FOUND,
    }


def _all_users(pbx: Pbx) -> dict[str, CoreUser]:
    # Keys drop trailing spaces, as MariaDB's PAD SPACE comparison does.
    users: dict[str, CoreUser] = {}
    for user in pbx.store.list_users():
        users.setdefault(user.extension.rstrip(" "), user)
    return users


def _is_valid(device: Device, users: dict[str, CoreUser]) -> bool:
    has_user = device.id.rstrip(" ") in users
    return device.tech in ("pjsip", "sip") and has_user


def resolve_fetch_extension(
    _root: Any, info: Info, extensionId: str | None = None
) -> dict[str, Any]:
    pbx = _pbx(info)
    device = None if extensionId is None else pbx.store.find_device(extensionId)
    if device is None:
        # Selecting coreDevice's fields on a missing extension fails on FreePBX.
        return {"status": False, "message": EXTENSION_NOT_FOUND, "coreDevice": {}}
    user = pbx.store.find_user(device.user_extension)
    users = {} if user is None else {device.user_extension.rstrip(" "): user}
    return _extension(device, users, listed=False)


def _extension(
    device: Device, users: dict[str, CoreUser], *, listed: bool
) -> dict[str, Any]:
    user = None
    if device.devicetype == "fixed":
        user = _user(users.get(device.user_extension.rstrip(" ")), device.secret)
    return {
        "id": LIST_ITEM_ID if listed else global_id("extension", device.id),
        "extensionId": device.id,
        "tech": device.tech,
        "user": user,
        "coreDevice": _core_device(device, users),
        "status": _always_fails if listed else True,
        "message": _always_fails if listed else EXTENSION_FOUND,
    }


def _core_device(device: Device, users: dict[str, CoreUser]) -> dict[str, Any]:
    user = None
    if device.devicetype == "fixed":
        user = _user(users.get(device.user_extension.rstrip(" ")), None)
    return {
        "id": global_id("extension", device.id),
        "deviceId": device.id,
        "tech": device.tech,
        "dial": device.dial,
        "devicetype": device.devicetype,
        "user": user,
        "description": device.description,
        "emergencyCid": device.emergency_cid,
        "coreDevice": _always_fails,
        "status": _always_fails,
        "message": _always_fails,
    }


def _user(user: CoreUser | None, secret: str | None) -> dict[str, Any]:
    if user is None:
        # A device without its user row gives an object of nulls.
        return {}
    # NOTE: only ringtimer, sipname and mohclass were measured among the
    # settings the sandbox does not store; the other defaults are "".
    return {
        "id": global_id("coreuser", user.extension),
        "extension": user.extension,
        "password": user.password,
        "name": user.name,
        "voicemail": user.voicemail,
        "ringtimer": 0,
        "noanswer": "",
        "recording": "",
        "outboundCid": user.outboundcid,
        "sipname": "",
        "extPassword": secret,
        "noanswerCid": "",
        "busyCid": "",
        "chanunavailCid": "",
        "noanswerDestination": "",
        "busyDestination": "",
        "chanunavailDestination": "",
        "mohclass": "default",
    }


def resolve_add_extension(
    _root: Any, info: Info, input: dict[str, Any]
) -> dict[str, Any]:
    return _payload(extensions.add_extension(_pbx(info), input), input)


def resolve_update_extension(
    _root: Any, info: Info, input: dict[str, Any]
) -> dict[str, Any]:
    return _payload(extensions.update_extension(_pbx(info), input), input)


def resolve_delete_extension(
    _root: Any, info: Info, input: dict[str, Any]
) -> dict[str, Any]:
    return _payload(extensions.delete_extension(_pbx(info), input), input)


def _payload(result: MutationResult, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": result.status,
        "message": result.message,
        "clientMutationId": fields.get("clientMutationId"),
    }


# Framework: reloads


def resolve_doreload(_root: Any, info: Info, input: dict[str, Any]) -> dict[str, Any]:
    transaction = reloads.start_reload(_pbx(info))
    return {
        "status": True,
        "message": reloads.RELOAD_STARTED,
        "transaction_id": str(transaction.txn_id),
        "clientMutationId": input.get("clientMutationId"),
    }


def resolve_fetch_api_status(_root: Any, info: Info, txnId: str) -> dict[str, Any]:
    pbx = _pbx(info)
    transaction = None
    if txnId.strip().isdigit():
        transaction = pbx.store.find_transaction(int(txnId))
    result: dict[str, Any] = {"id": MODULE_ID, "status": True, "modules": _always_fails}
    if transaction is None:
        return {**result, "message": STATUS_NOT_FOUND, "details": None}
    status = reloads.transaction_status(pbx, transaction)
    return {
        **result,
        "message": status.message,
        "details": status.details,
        "event_output": status.event_output,
    }


def resolve_fetch_need_reload(_root: Any, info: Info) -> dict[str, Any]:
    needed = reloads.reload_needed(_pbx(info))
    message = "Doreload is required" if needed else "Doreload is not required"
    return {
        "id": MODULE_ID,
        "status": True,
        "message": message,
        "modules": _always_fails,
    }


def resolve_node(_root: Any, _info: Info, **_arguments: Any) -> Any:
    # FreePBX's node field fails for every id.
    raise InternalError("node is not resolvable on FreePBX")


ROOT_RESOLVERS: dict[str, Resolver] = {
    "Query.fetchAllExtensions": resolve_fetch_all_extensions,
    "Query.fetchAllValidExtensions": resolve_fetch_all_valid_extensions,
    "Query.fetchExtension": resolve_fetch_extension,
    "Query.fetchApiStatus": resolve_fetch_api_status,
    "Query.fetchNeedReload": resolve_fetch_need_reload,
    "Query.node": resolve_node,
    "Mutation.addExtension": resolve_add_extension,
    "Mutation.updateExtension": resolve_update_extension,
    "Mutation.deleteExtension": resolve_delete_extension,
    "Mutation.doreload": resolve_doreload,
}

"""Sandbox extension mutations against what a real FreePBX 16 was measured to do."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sandbox_http import graphql

from reconciler.sandbox.server import SandboxServer

ADD = """mutation ($input: addExtensionInput!) {
  addExtension(input: $input) { status message }
}"""
UPDATE = """mutation ($input: updateExtensionInput!) {
  updateExtension(input: $input) { status message }
}"""
DELETE = """mutation ($id: ID!) {
  deleteExtension(input: {extensionId: $id}) { status message }
}"""
FETCH = """query ($id: ID!) {
  fetchExtension(extensionId: $id) {
    status message id extensionId tech
    user {
      id name password voicemail outboundCid extPassword ringtimer sipname mohclass
    }
    coreDevice { id deviceId dial devicetype description emergencyCid }
  }
}"""
LIST_IDS = "query { fetchAllExtensions { totalCount extension { extensionId } } }"
SECRET = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "pbx.sqlite3", reload_seconds=0.0) as server:
        yield server


def add(sandbox: SandboxServer, **fields: Any) -> requests.Response:
    values = {"name": "Test User", "email": "test@example.com", **fields}
    return graphql(sandbox, ADD, {"input": values})


def fetch(sandbox: SandboxServer, extension: str) -> dict[str, Any]:
    response = graphql(sandbox, FETCH, {"id": extension})
    result: dict[str, Any] = response.json()["data"]["fetchExtension"]
    return result


def listed_ids(sandbox: SandboxServer) -> list[str]:
    connection = graphql(sandbox, LIST_IDS).json()["data"]["fetchAllExtensions"]
    return [item["extensionId"] for item in connection["extension"]]


def error_message(response: requests.Response) -> str:
    message: str = response.json()["errors"][0]["message"]
    return message


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_add_pjsip_without_userman_or_voicemail(sandbox: SandboxServer) -> None:
    response = add(
        sandbox, extensionId="7101", tech="pjsip", umEnable=False, vmEnable=False
    )
    extension = fetch(sandbox, "7101")

    assert response.json() == {
        "data": {
            "addExtension": {
                "status": True,
                "message": "Extension has been created Successfully",
            }
        }
    }
    assert extension["id"] == encoded("extension:7101")
    assert extension["tech"] == "pjsip"
    assert extension["coreDevice"]["id"] == encoded("extension:7101")
    assert extension["coreDevice"]["dial"] == "PJSIP/7101"
    assert extension["coreDevice"]["devicetype"] == "fixed"
    assert extension["coreDevice"]["description"] == "Test User"
    assert extension["coreDevice"]["emergencyCid"] == ""
    assert extension["user"]["id"] == encoded("coreuser:7101")
    assert extension["user"]["password"] == ""
    assert extension["user"]["voicemail"] == "novm"
    assert SECRET.fullmatch(extension["user"]["extPassword"])
    assert extension["user"]["ringtimer"] == 0
    assert extension["user"]["sipname"] == ""
    assert extension["user"]["mohclass"] == "default"


def test_add_with_userman_and_voicemail(sandbox: SandboxServer) -> None:
    add(
        sandbox,
        extensionId="7102",
        umEnable=True,
        umPassword="Um-Pass-1",
        vmEnable=True,
        vmPassword="1234",
    )
    user = fetch(sandbox, "7102")["user"]

    assert user["password"] == "Um-Pass-1"
    assert user["voicemail"] == "default"


@pytest.mark.parametrize(
    "fields",
    [{}, {"vmEnable": True}, {"vmEnable": False, "vmPassword": "1234"}],
    ids=["both-omitted", "vm-without-password", "vm-disabled"],
)
def test_add_without_mailbox(sandbox: SandboxServer, fields: dict[str, Any]) -> None:
    add(sandbox, extensionId="7103", **fields)

    assert fetch(sandbox, "7103")["user"]["voicemail"] == "novm"


def test_add_userman_enabled_needs_password(sandbox: SandboxServer) -> None:
    response = add(sandbox, extensionId="7104", umEnable=True)

    assert response.status_code == 400
    assert error_message(response) == (
        "User management is enabled please provide password"
    )
    assert listed_ids(sandbox) == []


def test_add_empty_userman_password_counts(sandbox: SandboxServer) -> None:
    response = add(sandbox, extensionId="7104", umEnable=True, umPassword="")

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("tech", "dial", "secret"),
    [
        ("sip", "SIP/7105", True),
        ("iax2", "IAX2/7105", False),
        ("custom", "/7105", False),
    ],
)
def test_add_other_techs(
    sandbox: SandboxServer, tech: str, dial: str, secret: bool
) -> None:
    add(sandbox, extensionId="7105", tech=tech)
    extension = fetch(sandbox, "7105")

    assert extension["tech"] == tech
    assert extension["coreDevice"]["dial"] == dial
    assert (extension["user"]["extPassword"] is not None) is secret


def test_add_dahdi_dials_channel(sandbox: SandboxServer) -> None:
    add(sandbox, extensionId="7106", tech="dahdi", channelName="1")

    assert fetch(sandbox, "7106")["coreDevice"]["dial"] == "DAHDI/1"


@pytest.mark.parametrize("tech", ["", "PJSIP", "skype"])
def test_add_unknown_tech_stores_nothing(sandbox: SandboxServer, tech: str) -> None:
    response = add(sandbox, extensionId="7107", tech=tech)

    assert response.status_code == 400
    assert error_message(response) == 'Undefined array key "dial"'
    assert listed_ids(sandbox) == []


def test_add_virtual_blocks_later_add(sandbox: SandboxServer) -> None:
    virtual = add(sandbox, extensionId="7108", tech="virtual")
    again = add(sandbox, extensionId="7108")

    assert virtual.status_code == 200
    assert listed_ids(sandbox) == []
    assert again.status_code == 400
    assert error_message(again) == "This user/extension 7108 is already in use"


def test_add_existing_extension(sandbox: SandboxServer) -> None:
    add(sandbox, extensionId="7109")
    response = add(sandbox, extensionId="7109", name="Dup")

    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": "This device id is already in use", "status": False}]
    }


@pytest.mark.parametrize(
    ("name", "user_name", "description"),
    [
        ('O\'Brien "Bob"', 'O\'Brien "Bob"', 'O\'Brien "Bob"'),
        ("Tom & Jerry", "Tom & Jerry", "Tom & Jerry"),
        ("<b>bold</b> a<b", "(b)bold(/b) a(b", "<b>bold</b> a<b"),
        ("Zoë Ørsted Łukasz", "Zoë Ørsted Łukasz", "Zoë Ørsted Łukasz"),
        ("Emoji 😀🎉", "Emoji 😀🎉", "Emoji 😀🎉"),
        (
            "A&amp;B &lt;x&gt; &#039;",
            "A&amp;B &lt;x&gt; &#039;",
            "A&amp;B &lt;x&gt; &#039;",
        ),
        ("  spaced  ", "spaced", "spaced"),
        ("   ", "", ""),
        ("x" * 50, "x" * 50, "x" * 50),
        ("é" * 50, "é" * 50, "é" * 50),
        ("😀" * 50, "😀" * 50, "😀" * 50),
    ],
    ids=[
        "quotes",
        "ampersand",
        "angle-brackets",
        "accents",
        "emoji",
        "entities",
        "spaces",
        "only-spaces",
        "50-ascii",
        "50-e-acute",
        "50-emoji",
    ],
)
def test_name_stored_as_freepbx_16(
    sandbox: SandboxServer, name: str, user_name: str, description: str
) -> None:
    add(sandbox, extensionId="7110", name=name)
    extension = fetch(sandbox, "7110")

    assert extension["user"]["name"] == user_name
    assert extension["coreDevice"]["description"] == description


DEVICE_TOO_LONG = (
    "Could Not Insert Device::SQLSTATE[22001]: String data, right truncated:"
    " 1406 Data too long for column &#039;{column}&#039; at row 1"
)
USER_TOO_LONG = (
    "Unable to insert into users: SQLSTATE[22001]: String data, right truncated:"
    " 1406 Data too long for column \\'{column}\\' at row 1"
)


@pytest.mark.parametrize(
    ("extension", "fields", "message"),
    [
        ("7111", {"name": "x" * 51}, DEVICE_TOO_LONG.format(column="description")),
        ("7111", {"name": "x" * 100}, DEVICE_TOO_LONG.format(column="description")),
        ("7111", {"name": "x" * 300}, DEVICE_TOO_LONG.format(column="description")),
        ("7111", {"name": "é" * 51}, DEVICE_TOO_LONG.format(column="description")),
        ("7111", {"name": "😀" * 51}, DEVICE_TOO_LONG.format(column="description")),
        (
            "7111",
            {"emergencyCid": "1" * 101},
            DEVICE_TOO_LONG.format(column="emergency_cid"),
        ),
        ("1" * 21, {}, DEVICE_TOO_LONG.format(column="id")),
        ("7111", {"outboundCid": "1" * 51}, USER_TOO_LONG.format(column="outboundcid")),
        ("7111", {"umPassword": "p" * 21}, USER_TOO_LONG.format(column="password")),
    ],
    ids=[
        "name-51",
        "name-100",
        "name-300",
        "name-51-e-acute",
        "name-51-emoji",
        "emergency-cid-101",
        "id-21",
        "outbound-cid-51",
        "um-password-21",
    ],
)
def test_too_long_value_stores_nothing(
    sandbox: SandboxServer, extension: str, fields: dict[str, Any], message: str
) -> None:
    response = add(sandbox, extensionId=extension, **fields)

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": message, "status": False}]}
    assert listed_ids(sandbox) == []
    assert fetch_status(sandbox, extension) == "Extension does not exists"


def fetch_status(sandbox: SandboxServer, extension: str) -> str:
    query = "query ($id: ID!) { fetchExtension(extensionId: $id) { status message } }"
    response = graphql(sandbox, query, {"id": extension})
    if response.status_code == 400:
        return error_message(response)
    message: str = response.json()["data"]["fetchExtension"]["message"]
    return message


def test_widest_accepted_values(sandbox: SandboxServer) -> None:
    response = add(
        sandbox,
        extensionId="1" * 20,
        emergencyCid="1" * 100,
        outboundCid="1" * 50,
        umPassword="p" * 20,
        callerID="c" * 300,
        vmPassword="1" * 300,
        email="e" * 290 + "@example.com",
    )

    assert response.status_code == 200
    assert listed_ids(sandbox) == ["1" * 20]


@pytest.mark.parametrize("extension", ["05590", "+697754", " 667517", "5593 ", "1e3"])
def test_php_numeric_ids_accepted(sandbox: SandboxServer, extension: str) -> None:
    response = add(sandbox, extensionId=extension)

    assert response.status_code == 200
    assert listed_ids(sandbox) == [extension]


@pytest.mark.parametrize("extension", ["abc", "", "12a", "0x1A", " "])
def test_non_numeric_ids_rejected(sandbox: SandboxServer, extension: str) -> None:
    response = add(sandbox, extensionId=extension)

    assert response.status_code == 400
    assert error_message(response) == "Please enter only numeric values"


def test_leading_zero_makes_distinct_extension(sandbox: SandboxServer) -> None:
    add(sandbox, extensionId="05590")
    response = add(sandbox, extensionId="5590")

    assert response.status_code == 200
    assert listed_ids(sandbox) == ["05590", "5590"]


def test_trailing_space_matches_without_it(sandbox: SandboxServer) -> None:
    add(sandbox, extensionId="5593 ")
    again = add(sandbox, extensionId="5593")

    assert fetch(sandbox, "5593")["extensionId"] == "5593 "
    assert error_message(again) == "This device id is already in use"


def test_caller_id_not_readable(sandbox: SandboxServer) -> None:
    add(
        sandbox,
        extensionId="7112",
        outboundCid='"Out" <5551000>',
        emergencyCid="5559111",
        callerID="Desk <7112>",
    )
    extension = fetch(sandbox, "7112")

    assert extension["user"]["outboundCid"] == '"Out" <5551000>'
    assert extension["coreDevice"]["emergencyCid"] == "5559111"


def test_licence_limit(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "pbx.sqlite3", extension_limit=1) as sandbox:
        first = add(sandbox, extensionId="7113")
        second = add(sandbox, extensionId="7114")

    assert first.status_code == 200
    assert error_message(second) == (
        "Can not add extension beyond the extensions license limit"
    )


def test_fetch_missing_extension(sandbox: SandboxServer) -> None:
    with_message = graphql(
        sandbox, 'query { fetchExtension(extensionId: "999") { status message } }'
    )
    without_message = graphql(
        sandbox, 'query { fetchExtension(extensionId: "999") { status } }'
    )
    with_device = graphql(
        sandbox,
        'query { fetchExtension(extensionId: "999") {'
        " status coreDevice { deviceId } } }",
    )

    assert with_message.json() == {
        "errors": [{"message": "Extension does not exists", "status": False}]
    }
    assert without_message.status_code == 400
    assert without_message.json() == {"errors": [{"status": False}]}
    assert error_message(with_device) == "Internal server error"


def test_update_rewrites_extension(sandbox: SandboxServer) -> None:
    add(sandbox, extensionId="7120", umEnable=True, umPassword="old", outboundCid="1")
    before = fetch(sandbox, "7120")
    response = graphql(
        sandbox,
        UPDATE,
        {"input": {"extensionId": "7120", "name": "New Name", "umPassword": "new"}},
    )
    after = fetch(sandbox, "7120")

    assert response.json()["data"]["updateExtension"] == {
        "status": True,
        "message": "Extension has been updated",
    }
    assert after["user"]["name"] == "New Name"
    assert after["coreDevice"]["description"] == "New Name"
    assert after["user"]["password"] == "new"
    # An omitted outboundCid is cleared, an omitted extPassword regenerated.
    assert after["user"]["outboundCid"] == ""
    assert after["user"]["extPassword"] != before["user"]["extPassword"]


def test_update_keeps_given_secret(sandbox: SandboxServer) -> None:
    add(sandbox, extensionId="7121", umEnable=True, umPassword="pw")
    secret = fetch(sandbox, "7121")["user"]["extPassword"]
    graphql(
        sandbox,
        UPDATE,
        {"input": {"extensionId": "7121", "name": "Same", "extPassword": secret}},
    )

    assert fetch(sandbox, "7121")["user"]["extPassword"] == secret


def test_update_empty_name_keeps_name(sandbox: SandboxServer) -> None:
    add(sandbox, extensionId="7122", name="Kept", umEnable=True, umPassword="pw")
    graphql(sandbox, UPDATE, {"input": {"extensionId": "7122", "name": ""}})

    assert fetch(sandbox, "7122")["user"]["name"] == "Kept"


def test_update_too_long_keeps_extension(sandbox: SandboxServer) -> None:
    add(sandbox, extensionId="7126", name="Kept", umEnable=True, umPassword="pw")
    before = fetch(sandbox, "7126")
    response = graphql(
        sandbox, UPDATE, {"input": {"extensionId": "7126", "name": "x" * 51}}
    )

    assert response.status_code == 400
    assert error_message(response) == DEVICE_TOO_LONG.format(column="description")
    assert fetch(sandbox, "7126") == before


@pytest.mark.parametrize(
    ("created", "update"),
    [
        ({"umEnable": True, "umPassword": "pw"}, {}),
        ({"umEnable": False}, {"name": "N"}),
        ({"umEnable": False, "tech": "sip"}, {"name": "N", "email": "n@example.com"}),
    ],
    ids=["name-absent", "no-email-no-userman", "pjsip-over-sip-without-max-contacts"],
)
def test_update_ignored_cases(
    sandbox: SandboxServer, created: dict[str, Any], update: dict[str, Any]
) -> None:
    add(sandbox, extensionId="7123", name="Original", **created)
    before = fetch(sandbox, "7123")
    response = graphql(sandbox, UPDATE, {"input": {"extensionId": "7123", **update}})

    assert response.status_code == 200
    assert response.json()["data"]["updateExtension"] == {
        "status": None,
        "message": None,
    }
    assert fetch(sandbox, "7123") == before


@pytest.mark.parametrize(
    ("extension", "message"),
    [
        ("999", "Extension does not exists."),
        ("abc", "Please enter only numeric values"),
    ],
)
def test_update_rejected(sandbox: SandboxServer, extension: str, message: str) -> None:
    response = graphql(
        sandbox, UPDATE, {"input": {"extensionId": extension, "name": "N"}}
    )

    assert response.status_code == 400
    assert error_message(response) == message


def test_delete_keeps_userman_user(sandbox: SandboxServer) -> None:
    add(sandbox, extensionId="7124", umEnable=True, umPassword="pw", email="a@b.c")
    deleted = graphql(sandbox, DELETE, {"id": "7124"})
    add(sandbox, extensionId="7124", umEnable=False)
    # With the old User Management user left, an update without email works.
    updated = graphql(sandbox, UPDATE, {"input": {"extensionId": "7124", "name": "N"}})

    assert deleted.json()["data"]["deleteExtension"] == {
        "status": True,
        "message": "Extension has been deleted",
    }
    assert updated.json()["data"]["updateExtension"]["status"] is True


@pytest.mark.parametrize(
    ("extension", "message"),
    [("999", "Extension does not exists."), ("x1", "Please enter only numeric values")],
)
def test_delete_rejected(sandbox: SandboxServer, extension: str, message: str) -> None:
    response = graphql(sandbox, DELETE, {"id": extension})

    assert response.status_code == 400
    assert error_message(response) == message


def test_mutation_echoes_client_mutation_id(sandbox: SandboxServer) -> None:
    query = """mutation {
      addExtension(input: {extensionId: "7125", name: "N", email: "e",
                           clientMutationId: "test1231"}) {
        clientMutationId status message
      }
    }"""
    response = graphql(sandbox, query)

    assert response.json() == {
        "data": {
            "addExtension": {
                "clientMutationId": "test1231",
                "status": True,
                "message": "Extension has been created Successfully",
            }
        }
    }


def test_valid_extensions_skip_other_techs(sandbox: SandboxServer) -> None:
    add(sandbox, extensionId="7130")
    add(sandbox, extensionId="7131", tech="custom")
    query = """query { fetchAllValidExtensions {
      totalCount count extension { extensionId } } }"""
    connection = graphql(sandbox, query).json()["data"]["fetchAllValidExtensions"]

    assert connection["totalCount"] == 2
    assert connection["count"] == 1
    assert connection["extension"] == [{"extensionId": "7130"}]

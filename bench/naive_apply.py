"""The naive way to apply extensions.yaml, for comparison with reconciler apply.

It sends the same requests as reconciler apply (read, one addExtension per
missing extension, doreload, status polls, read) but as a one-call-at-a-time
script does: a new token before every request and a new connection each time.

Usage: FREEPBX_URL=... FREEPBX_CLIENT_ID=... FREEPBX_CLIENT_SECRET=... \
    python bench/naive_apply.py extensions.yaml
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler import operations
from reconciler.credentials import secrets_for
from reconciler.desired import load_desired_state
from reconciler.pbx import addextension_input

URL = os.environ["FREEPBX_URL"]
CREDENTIALS = (os.environ["FREEPBX_CLIENT_ID"], os.environ["FREEPBX_CLIENT_SECRET"])


def call(document: str, variables: dict[str, Any]) -> Any:
    token = requests.post(
        URL + "/admin/api/api/token",
        data={"grant_type": "client_credentials", "scope": "gql:core gql:framework"},
        auth=CREDENTIALS,
        timeout=60,
    ).json()["access_token"]
    response = requests.post(
        URL + "/admin/api/api/gql",
        json={"query": document, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    return response.json().get("data")


def main() -> None:
    desired = load_desired_state(Path(sys.argv[1]))
    listing = call(operations.FETCH_ALL_EXTENSIONS, {})["fetchAllExtensions"]
    present = {item["extensionId"] for item in listing["extension"]}
    for extension in desired.extensions:
        if extension.extension not in present:
            variables = {"input": addextension_input(extension, secrets_for(extension))}
            call(operations.ADD_EXTENSION, variables)
    reload = call(operations.DO_RELOAD, {"input": {}})["doreload"]
    while True:
        status = call(operations.FETCH_API_STATUS, {"txnId": reload["transaction_id"]})
        if status["fetchApiStatus"]["message"] != "Processing":
            break
        time.sleep(1.0)
    call(operations.FETCH_ALL_EXTENSIONS, {})


if __name__ == "__main__":
    main()

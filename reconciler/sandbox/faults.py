"""Faults the sandbox injects on request: slow, broken or lost responses, and races.

Tests and `reconciler sandbox` use them to check how a client copes with the
failures a real FreePBX and its network produce. Every fault is off by
default. A `Selector` picks the requests a fault hits:

    Faults(http_500_on=(Selector.parse("addExtension:2"),), latency_ms=200)

FreePBX 16's duplicate-add race follows a measurement on core 16.0.68.4: in one
of ten rounds, two clients adding one number at the same moment both passed
the existence check. One got `status:true` and the other an SQL error, and
fetchAllExtensions then listed the number twice.
"""

from __future__ import annotations

import difflib
import json
import math
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.sandbox.exchange import HttpRequest, HttpResponse
from reconciler.sandbox.graphql_endpoint import first_root_field
from reconciler.sandbox.pbx import Pbx
from reconciler.sandbox.php import json_encode
from reconciler.sandbox.responses import (
    ClientError,
    GraphqlOutcome,
    access_denied_response,
    graphql_response,
)
from reconciler.sandbox.rest import ROUTES, is_rest_path, route_name
from reconciler.sandbox.schema import full_schema

Route = Callable[[HttpRequest], HttpResponse]
ReloadFault = Literal["hang", "fail"]

# Apache's page for a PHP fatal error or a broken proxy in front of FreePBX.
SERVER_ERROR_PAGE = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>500 Internal Server Error</title>
</head><body>
<h1>Internal Server Error</h1>
<p>The server encountered an internal error or
misconfiguration and was unable to complete
your request.</p>
</body></html>
"""
# A framework unit test of FreePBX expects this failure reason of a reload.
DEFAULT_RELOAD_FAILURE = "Failed to restart asterisk"
ALREADY_RUNNING = "Process is already running."
TOKEN_EXPIRED_HINT = "Access token is invalid"
RELOAD_REQUIRED = "Doreload is required"
# How long the second add of a race waits for the first one's rows.
RACE_PARTNER_TIMEOUT_SECONDS = 30.0


class ConnectionDropped(Exception):
    """The server closes the connection without sending any response."""

    def __init__(self, operation: str | None) -> None:
        super().__init__(f"connection dropped on {operation or 'a request'}")
        self.operation = operation


class InvalidSelector(ValueError):
    """A selector text that is not N, OPERATION or OPERATION:N."""


@dataclass(frozen=True)
class Selector:
    """The requests one fault hits.

    `operation` is a GraphQL root field, "token" or a REST route name such
    as "rest userman/users", and None means any request. `occurrence` counts
    from 1 among the requests of that operation, or among all requests when
    `operation` is None, and None means every one.
    """

    operation: str | None = None
    occurrence: int | None = None

    @classmethod
    def parse(cls, text: str) -> Selector:
        """Read "7" (the 7th request), "addExtension" (each) or "addExtension:2"."""
        operation, colon, number = text.strip().rpartition(":")
        if not colon and number.isdigit():
            return cls(None, _positive(number, text))
        if not operation:
            operation, number = number, ""
        if not operation.isidentifier() and operation not in _rest_route_names():
            raise InvalidSelector(
                f"invalid request selector {text!r}: expected N, OPERATION or "
                "OPERATION:N, for example 3, fetchAllExtensions or addExtension:2"
            )
        if number == "":
            return cls(operation, None)
        return cls(operation, _positive(number, text))

    def matches(self, operation: str | None, overall: int, of_operation: int) -> bool:
        if self.operation is None:
            return self.occurrence is None or self.occurrence == overall
        if self.operation != operation:
            return False
        return self.occurrence is None or self.occurrence == of_operation


def _positive(number: str, text: str) -> int:
    if not number.isdigit() or int(number) < 1:
        raise InvalidSelector(
            f"invalid request selector {text!r}: the request number must be 1 or more"
        )
    return int(number)


@dataclass
class Faults:
    """The faults the sandbox injects; every one is off by default.

    `latency_ms` delays each request that `latency_on` selects (every request
    when empty) before it runs. `http_500_on` responds HTTP 500 with an HTML
    page and does not run the request. `truncate_on` runs the request and
    sends the first half of its body. `reset_after_on` runs the request and
    then resets the connection without a response, which looks to a client
    like a timeout after sending. `reset_before_on` resets without running it.
    `token_lifetime_seconds` makes issued tokens expire that long after the
    token endpoint issued them. `reload` makes each doreload stay Processing
    ("hang") or end Failed with `reload_failure` ("fail"). A
    `race_window_seconds` above 0 makes addExtension wait that long between
    its existence check and its insert. Two adds of one number within the
    window then both insert rows, and the second fails on an SQL error
    afterwards, as on FreePBX 16.
    """

    latency_ms: float = 0.0
    latency_on: tuple[Selector, ...] = ()
    http_500_on: tuple[Selector, ...] = ()
    truncate_on: tuple[Selector, ...] = ()
    reset_after_on: tuple[Selector, ...] = ()
    reset_before_on: tuple[Selector, ...] = ()
    token_lifetime_seconds: float | None = None
    reload: ReloadFault | None = None
    reload_failure: str = DEFAULT_RELOAD_FAILURE
    race_window_seconds: float = 0.0


@dataclass
class _PendingAdd:
    """An addExtension inside the race window; `done` is set once it has run."""

    done: threading.Event = field(default_factory=threading.Event)
    succeeded: bool = False


class FaultInjector:
    """Serves each request through the faults that select it.

    It also keeps every access token the token endpoint issued, with the
    time it was issued, which token lifetimes need and tests read.
    """

    def __init__(self, pbx: Pbx, faults: Faults | None = None) -> None:
        self._pbx = pbx
        self._lock = threading.Lock()
        self._faults = faults or Faults()
        self._overall = 0
        self._per_operation: dict[str | None, int] = {}
        self._issued: dict[str, float] = {}
        self._reloads: dict[str, str] = {}
        self._last_reload_faulted = False
        self._adds: dict[str, _PendingAdd] = {}
        # Set when the sandbox stops, to cut short the delays of requests
        # in progress instead of making stop() wait them out.
        self._stopping = threading.Event()

    def stop(self) -> None:
        """End the delays of requests in progress; they close unanswered."""
        self._stopping.set()

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        """Replace the faults, count requests from 1 again and end hanging reloads."""
        with self._lock:
            self._faults = faults
            self._overall = 0
            self._per_operation = {}
            self._reloads = {}

    @property
    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    def serve(self, request: HttpRequest, route: Route) -> HttpResponse:
        """Run `route` on the request with the selected faults applied.

        Raises ConnectionDropped when the connection must close unanswered.
        """
        operation = _operation(request)
        faults, hits = self._count(operation)
        delayed = faults.latency_ms > 0 and (
            not faults.latency_on or hits(faults.latency_on)
        )
        if delayed and self._stopping.wait(faults.latency_ms / 1000):
            raise ConnectionDropped(operation)
        if hits(faults.reset_before_on):
            raise ConnectionDropped(operation)
        if hits(faults.http_500_on):
            return _server_error(operation)
        expired = self._expired_token_response(request, operation, faults)
        if expired is not None:
            return expired

        if operation == "addExtension" and faults.race_window_seconds > 0:
            response = self._add_with_race(request, route, faults.race_window_seconds)
        else:
            response = route(request)
        response = self._after(request, operation, response, faults)

        if hits(faults.reset_after_on):
            raise ConnectionDropped(operation)
        if hits(faults.truncate_on):
            cut = response.body[: len(response.body) // 2]
            return HttpResponse(response.status, response.headers, cut, operation)
        return response

    def _count(
        self, operation: str | None
    ) -> tuple[Faults, Callable[[tuple[Selector, ...]], bool]]:
        with self._lock:
            self._overall += 1
            of_operation = self._per_operation.get(operation, 0) + 1
            self._per_operation[operation] = of_operation
            overall = self._overall
            faults = self._faults

        def hits(selectors: tuple[Selector, ...]) -> bool:
            return any(s.matches(operation, overall, of_operation) for s in selectors)

        return faults, hits

    def _after(
        self,
        request: HttpRequest,
        operation: str | None,
        response: HttpResponse,
        faults: Faults,
    ) -> HttpResponse:
        if operation == "token" and response.status == 200:
            return self._record_token(response, faults)
        if operation == "doreload":
            self._record_reload(response, faults.reload)
        if operation == "fetchApiStatus":
            return self._reload_status(request, response, faults)
        if operation == "fetchNeedReload":
            return self._need_reload(response)
        return response

    # Token lifetime

    def _record_token(self, response: HttpResponse, faults: Faults) -> HttpResponse:
        body = _json(response.body)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            return response
        with self._lock:
            self._issued[token] = time.monotonic()
        lifetime = faults.token_lifetime_seconds
        if lifetime is None or not isinstance(body, dict):
            return response
        body["expires_in"] = math.ceil(lifetime)
        return HttpResponse(
            response.status, response.headers, json_encode(body), response.operation
        )

    def _expired_token_response(
        self, request: HttpRequest, operation: str | None, faults: Faults
    ) -> HttpResponse | None:
        lifetime = faults.token_lifetime_seconds
        if lifetime is None or operation == "token":
            return None
        authorization = request.header("Authorization") or ""
        token = authorization.removeprefix("Bearer ").strip()
        with self._lock:
            issued_at = self._issued.get(token)
        if issued_at is None or time.monotonic() - issued_at < lifetime:
            return None
        return access_denied_response(TOKEN_EXPIRED_HINT, self._pbx.version, operation)

    # Reloads

    def _record_reload(self, response: HttpResponse, fault: ReloadFault | None) -> None:
        body = _json(response.body)
        payload = _root_payload(body, "doreload")
        transaction_id = payload.get("transaction_id") if payload else None
        if transaction_id is None:
            return
        with self._lock:
            # A real reload that hangs keeps reload.lock, so later ones fail.
            hanging = "hang" in self._reloads.values()
            if hanging:
                self._reloads[str(transaction_id)] = "locked"
            elif fault is not None:
                self._reloads[str(transaction_id)] = fault
            self._last_reload_faulted = hanging or fault is not None

    def _need_reload(self, response: HttpResponse) -> HttpResponse:
        # The store records every reload as executed, but a reload that hangs
        # or fails on FreePBX leaves the configuration still to apply.
        with self._lock:
            faulted = self._last_reload_faulted
        body = _json(response.body)
        payload = _root_payload(body, "fetchNeedReload")
        if not faulted or payload is None:
            return response
        _replace_present(payload, message=RELOAD_REQUIRED)
        return HttpResponse(
            response.status, response.headers, json_encode(body), response.operation
        )

    def _reload_status(
        self, request: HttpRequest, response: HttpResponse, faults: Faults
    ) -> HttpResponse:
        variables = _variables(request)
        with self._lock:
            fault = self._reloads.get(str(variables.get("txnId")))
        body = _json(response.body)
        payload = _root_payload(body, "fetchApiStatus")
        if fault is None or payload is None:
            return response
        if fault == "hang":
            status, details = "Processing", ""
        elif fault == "locked":
            status, details = "Failed", ALREADY_RUNNING
        elif payload.get("message") == "Processing":
            return response
        else:
            status, details = "Failed", faults.reload_failure
        _replace_present(payload, message=status, details=details, event_output="")
        return HttpResponse(
            response.status, response.headers, json_encode(body), response.operation
        )

    # FreePBX 16's duplicate-add race

    def _add_with_race(
        self, request: HttpRequest, route: Route, window: float
    ) -> HttpResponse:
        fields = _variables(request).get("input")
        extension_id = fields.get("extensionId") if isinstance(fields, dict) else None
        if not isinstance(extension_id, str):
            return route(request)
        mine = _PendingAdd()
        with self._lock:
            partner = self._adds.setdefault(extension_id, mine)
        if partner is not mine:
            return self._second_add(request, route, extension_id, partner)

        # The gap between FreePBX's existence check and its inserts.
        try:
            time.sleep(window)
            response = route(request)
            mine.succeeded = response.status == 200
            return response
        finally:
            with self._lock:
                del self._adds[extension_id]
            mine.done.set()

    def _second_add(
        self,
        request: HttpRequest,
        route: Route,
        extension_id: str,
        partner: _PendingAdd,
    ) -> HttpResponse:
        """Finish an add that passed the existence check while another one ran.

        FreePBX inserts the device and user rows, then fails on the primary
        key of the SIP settings. NOTE: the duplicate rows are copies of the
        first add's rows, while FreePBX writes the second add's own values.
        """
        partner.done.wait(RACE_PARTNER_TIMEOUT_SECONDS)
        store = self._pbx.store
        with store.transaction():
            device = store.find_device(extension_id)
            user = store.find_user(extension_id)
            if not partner.succeeded or device is None or user is None:
                return route(request)
            store.add_device(device)
            store.add_user(user)
        message = (
            "SQLSTATE[23000]: Integrity constraint violation: 1062 Duplicate entry "
            f"'{extension_id}-sipdriver' for key 'PRIMARY'"
        )
        outcome = GraphqlOutcome([ClientError(message)], None)
        return graphql_response(outcome, self._pbx.version, "addExtension")


class InvalidFault(ValueError):
    """A fault option that is not one of FAULT_FORMS."""


FAULT_FORMS = (
    "latency-ms=MS, latency-on=SELECTOR, http-500=SELECTOR, truncate=SELECTOR, "
    "reset-after=SELECTOR, reset-before=SELECTOR, token-lifetime=SECONDS, "
    "reload=hang|fail, race-window=SECONDS; a SELECTOR is N (the Nth request), "
    "OPERATION (each request of it) or OPERATION:N"
)
_SELECTOR_FIELDS = {
    "latency-on": "latency_on",
    "http-500": "http_500_on",
    "truncate": "truncate_on",
    "reset-after": "reset_after_on",
    "reset-before": "reset_before_on",
}
_SECONDS_FIELDS = {
    "latency-ms": "latency_ms",
    "token-lifetime": "token_lifetime_seconds",
    "race-window": "race_window_seconds",
}


def faults_from_options(options: list[str]) -> Faults:
    """Build Faults from NAME=VALUE texts, such as "http-500=addExtension:2".

    A selector option may be repeated, and each adds one selector.
    """
    faults = Faults()
    for option in options:
        name, _, value = option.partition("=")
        name = name.strip()
        try:
            _set_fault(faults, name, value.strip())
            _check_operations(faults)
        except InvalidSelector as error:
            raise InvalidFault(f"invalid fault {option!r}: {error}") from None
        except ValueError:
            raise InvalidFault(
                f"invalid fault {option!r}; use one of: {FAULT_FORMS}"
            ) from None
    return faults


def _set_fault(faults: Faults, name: str, value: str) -> None:
    if name in _SELECTOR_FIELDS:
        field_name = _SELECTOR_FIELDS[name]
        selectors = getattr(faults, field_name)
        setattr(faults, field_name, (*selectors, Selector.parse(value)))
    elif name in _SECONDS_FIELDS:
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise ValueError(value)
        setattr(faults, _SECONDS_FIELDS[name], number)
    elif name == "reload" and value in ("hang", "fail"):
        faults.reload = "hang" if value == "hang" else "fail"
    else:
        raise ValueError(name)


def known_operations() -> frozenset[str]:
    """Return the operation names a selector may use.

    They are "token", the root fields of the recorded FreePBX 16 schema (the
    FreePBX 17 emulation serves the same schema) and the REST route names.
    """
    schema = full_schema()
    assert schema.query_type is not None and schema.mutation_type is not None
    fields = [*schema.query_type.fields, *schema.mutation_type.fields]
    return frozenset({"token", *fields, *_rest_route_names()})


def _rest_route_names() -> frozenset[str]:
    return frozenset(route.name for route in ROUTES)


def _check_operations(faults: Faults) -> None:
    known = known_operations()
    selectors = (
        *faults.latency_on,
        *faults.http_500_on,
        *faults.truncate_on,
        *faults.reset_after_on,
        *faults.reset_before_on,
    )
    for selector in selectors:
        if selector.operation is None or selector.operation in known:
            continue
        close = difflib.get_close_matches(selector.operation, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise InvalidSelector(
            f"unknown operation {selector.operation!r}: expected token, a GraphQL "
            f"root field such as addExtension, or a REST route such as "
            f"'rest userman/users'{hint}"
        )


def drop_connection(connection: socket.socket) -> None:
    """Close `connection` with a TCP reset, so the client reads no response at all."""
    # SO_LINGER on with a timeout of 0 makes close() send RST instead of FIN.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def _operation(request: HttpRequest) -> str | None:
    if request.path.endswith("/api/token"):
        return "token"
    if is_rest_path(request.path):
        return route_name(request.path)
    return first_root_field(request)


def _server_error(operation: str | None) -> HttpResponse:
    headers = (("Content-Type", "text/html; charset=iso-8859-1"),)
    return HttpResponse(500, headers, SERVER_ERROR_PAGE.encode(), operation)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _variables(request: HttpRequest) -> dict[str, Any]:
    body = _json(request.body)
    variables = body.get("variables") if isinstance(body, dict) else None
    return variables if isinstance(variables, dict) else {}


def _root_payload(body: Any, root_field: str) -> dict[str, Any] | None:
    data = body.get("data") if isinstance(body, dict) else None
    payload = data.get(root_field) if isinstance(data, dict) else None
    return payload if isinstance(payload, dict) else None


def _replace_present(payload: dict[str, Any], **values: str) -> None:
    # Only fields the client selected are in the payload.
    for name, value in values.items():
        if name in payload:
            payload[name] = value

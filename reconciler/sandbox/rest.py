"""The REST endpoint: the userman module's read-only routes, as FreePBX 16 serves them.

Checks run in the order measured on FreePBX 16 (api 16.0.13, userman
16.0.44.13): the bearer token for every path, then routing (404 and 405, also
for a token without the scope), then the route's scope, then the handler.
FreePBX routes REST requests through a Slim 3 app, so routing failures and
handler crashes get Slim's error pages in HTML, JSON or XML as the Accept
header requests. Every response carries the PHP session's no-cache headers.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from reconciler.sandbox import userman_rest
from reconciler.sandbox.exchange import HttpRequest, HttpResponse, json_response
from reconciler.sandbox.graphql_endpoint import METHOD_NOT_ALLOWED_PAGE
from reconciler.sandbox.pbx import Pbx
from reconciler.sandbox.responses import NO_CACHE_HEADERS, access_denied_response
from reconciler.sandbox.tokens import AccessDenied, authenticate

logger = logging.getLogger(__name__)

REST_PATH = "/admin/api/api/rest"
USERMAN_PATH = REST_PATH + "/userman"

# Any one of these scopes lets a token read userman. rest:userman:write does not.
USERMAN_READ_SCOPES = frozenset({"rest", "rest:userman", "rest:userman:read"})
ALLOWED_METHODS = "GET"

JSON_HEADERS = (*NO_CACHE_HEADERS, ("Content-Type", "application/json;charset=utf-8"))
UNAUTHORIZED = {"status": False, "message": "unauthorized"}

# Content types Slim 3's error renderers can produce.
ERROR_CONTENT_TYPES = ("application/json", "application/xml", "text/xml", "text/html")

NOT_FOUND_PAGE = """<html>
    <head>
        <title>Page Not Found</title>
        <style>
            body{{
                margin:0;
                padding:30px;
                font:12px/1.5 Helvetica,Arial,Verdana,sans-serif;
            }}
            h1{{
                margin:0;
                font-size:48px;
                font-weight:normal;
                line-height:48px;
            }}
            strong{{
                display:inline-block;
                width:65px;
            }}
        </style>
    </head>
    <body>
        <h1>Page Not Found</h1>
        <p>
            The page you are looking for could not be found. Check the address bar
            to ensure your URL is spelled correctly. If all else fails, you can
            visit our home page at the link below.
        </p>
        <a href='{home}'>Visit the Home Page</a>
    </body>
</html>"""

APPLICATION_ERROR_PAGE = (
    "<html><head><meta http-equiv='Content-Type' content='text/html; charset=utf-8'>"
    "<title>Slim Application Error</title><style>body{margin:0;padding:30px;"
    "font:12px/1.5 Helvetica,Arial,Verdana,sans-serif;}h1{margin:0;font-size:48px;"
    "font-weight:normal;line-height:48px;}strong{display:inline-block;width:65px;}"
    "</style></head><body><h1>Slim Application Error</h1><p>A website error has "
    "occurred. Sorry for the temporary inconvenience.</p></body></html>"
)

# A route handler gets the PBX and the decoded route argument ("" for none).
Handler = Callable[[Pbx, str], Any]


@dataclass(frozen=True)
class Route:
    """One REST route: its path pattern, name and handler."""

    pattern: re.Pattern[str]
    name: str
    handler: Handler


# Slim matches a route argument as one non-empty path segment.
ROUTES = (
    Route(
        re.compile(re.escape(USERMAN_PATH) + "/users"),
        "rest userman/users",
        lambda pbx, _argument: userman_rest.list_users(pbx),
    ),
    Route(
        re.compile(re.escape(USERMAN_PATH) + "/users/(?P<argument>[^/]+)"),
        "rest userman/users/{username}",
        userman_rest.find_user,
    ),
    Route(
        re.compile(re.escape(USERMAN_PATH) + "/extensions"),
        "rest userman/extensions",
        lambda pbx, _argument: userman_rest.map_extensions(pbx),
    ),
    Route(
        re.compile(re.escape(USERMAN_PATH) + "/extensions/(?P<argument>[^/]+)"),
        "rest userman/extensions/{extension}",
        userman_rest.find_user_by_extension,
    ),
)


def is_rest_path(path: str) -> bool:
    return path == REST_PATH or path.startswith(REST_PATH + "/")


def handle_rest_request(request: HttpRequest, pbx: Pbx) -> HttpResponse:
    """Handle a request to a path under /admin/api/api/rest."""
    route, argument = _match(request.path)
    operation = route.name if route is not None else None
    try:
        claims = authenticate(
            request.header("Authorization"), pbx.store, pbx.signing_key, pbx.clock()
        )
    except AccessDenied as denied:
        logger.info("rejected REST request: %s", denied)
        # NOTE: measured on FreePBX 16 only; FreePBX 17 gets the response its
        # GraphQL endpoint gives.
        return access_denied_response(str(denied), pbx.version, operation)

    if route is None:
        return _not_found(request)
    if request.method == "OPTIONS":
        return _options_response(operation)
    # Slim serves HEAD with the GET route, and the server leaves the body out.
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed(request, operation)
    if not USERMAN_READ_SCOPES.intersection(claims.scopes):
        return json_response(401, UNAUTHORIZED, JSON_HEADERS, operation)

    try:
        payload = route.handler(pbx, argument)
    except userman_rest.PhpWarning as warning:
        logger.info("REST handler %s failed: %s", route.name, warning)
        return _application_error(request, operation)
    return json_response(200, payload, JSON_HEADERS, operation)


def route_name(path: str) -> str | None:
    """Name the REST route that serves ``path``, such as "rest userman/users"."""
    route, _ = _match(path)
    return route.name if route is not None else None


def _match(path: str) -> tuple[Route | None, str]:
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match is not None:
            # Slim url-decodes route arguments, so "+" becomes a space.
            return route, unquote_plus(match.groupdict().get("argument") or "")
    return None, ""


def _error_content_type(request: HttpRequest) -> str:
    """Pick the error page's type from the Accept header, as Slim 3 does.

    The first known type in the list wins. Entries are split at commas and not
    trimmed, so the " application/json" of "text/html, application/json"
    matches nothing. A "+json" or "+xml" suffix counts as that type.
    """
    # NOTE: FreePBX 16 was measured only with single Accept types.
    accept = request.header("Accept") or ""
    for entry in accept.split(","):
        if entry in ERROR_CONTENT_TYPES:
            return entry
    suffix = re.search(r"\+(json|xml)", accept)
    if suffix is not None:
        return "application/" + suffix[1]
    return "text/html"


def _not_found(request: HttpRequest) -> HttpResponse:
    content_type = _error_content_type(request)
    if content_type == "application/json":
        headers = (*NO_CACHE_HEADERS, ("Content-Type", "application/json"))
        return json_response(404, {"message": "Not found"}, headers)
    if content_type != "text/html":
        body = "<root><message>Not found</message></root>"
        return _page(404, content_type, body, None)
    # Slim links to the scheme, host and port the request came to.
    host = html.escape(request.header("Host") or "127.0.0.1", quote=True)
    page = NOT_FOUND_PAGE.format(home=f"http://{host}/")
    return _page(404, "text/html;charset=UTF-8", page, None)


def _method_not_allowed(request: HttpRequest, operation: str | None) -> HttpResponse:
    message = f"Method not allowed. Must be one of: {ALLOWED_METHODS}"
    content_type = _error_content_type(request)
    allow = (("Allow", ALLOWED_METHODS),)
    if content_type == "application/json":
        headers = (*NO_CACHE_HEADERS, ("Content-type", "application/json"), *allow)
        return json_response(405, {"message": message}, headers, operation)
    if content_type != "text/html":
        # NOTE: not measured; Slim 3 words it as its XML 404 page.
        body = f"<root><message>{message}</message></root>"
        return _page(405, content_type, body, operation, allow)
    # The GraphQL route's page, naming this route's method instead.
    page = METHOD_NOT_ALLOWED_PAGE.replace(
        "<strong>POST</strong>", f"<strong>{ALLOWED_METHODS}</strong>"
    )
    return _page(405, "text/html;charset=UTF-8", page, operation, allow)


def _options_response(operation: str | None) -> HttpResponse:
    body = f"Allowed methods: {ALLOWED_METHODS}"
    return _page(200, "text/plain", body, operation)


def _application_error(request: HttpRequest, operation: str | None) -> HttpResponse:
    content_type = _error_content_type(request)
    if content_type == "application/json":
        # Slim pretty-prints this one body, with PHP's four-blank indent.
        text = json.dumps({"message": "Slim Application Error"}, indent=4)
        return _page(500, "application/json", text, operation)
    if content_type != "text/html":
        body = "<error><message>Slim Application Error</message></error>"
        return _page(500, content_type, body, operation)
    return _page(500, "text/html;charset=UTF-8", APPLICATION_ERROR_PAGE, operation)


def _page(
    status: int,
    content_type: str,
    body: str,
    operation: str | None,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> HttpResponse:
    headers = (*NO_CACHE_HEADERS, ("Content-type", content_type), *extra_headers)
    return HttpResponse(status, headers, body.encode(), operation)

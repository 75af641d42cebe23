"""Problem details (RFC 9457): the one shape of every HTTP error ordtool's services send.

``type`` names the kind of problem (``urn:ordtool:problem:<error>`` for ordtool's own errors,
``about:blank`` for plain HTTP ones), ``title`` is stable per type, ``detail`` says what went
wrong and how to fix it, ``instance`` is the request path (never its query string). Extra
members: ``request_id`` always, ``hint`` when the error has one, ``errors`` (one entry per bad
field) for invalid input. An unexpected failure says nothing about its cause.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from ordtool.domain.commands import describe_error
from ordtool.errors import DependencyUnavailable, InvalidInput, OrdtoolError
from ordtool.logs import current_request_id

PROBLEM_JSON = "application/problem+json"
DEFAULT_RETRY_AFTER_S = 1
_PARAMETER_SOURCES = ("body", "query", "path", "header", "cookie")
_SEND_JSON = "send the body as JSON with Content-Type: application/json"
_NOT_AN_OBJECT = ("missing", "model_attributes_type", "dict_type", "model_type")

log = logging.getLogger(__name__)


# The path of the request being served, set by the request middleware, so that a problem
# can name its ``instance`` wherever it is built (auth refusals, middleware, handlers).
REQUEST_PATH: ContextVar[str] = ContextVar("ordtool_request_path", default="")


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    **members: Any,
) -> JSONResponse:
    """A problem details response; ``instance`` defaults to the current request's path."""
    body = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": REQUEST_PATH.get() if instance is None else instance,
        "request_id": current_request_id(),
        **{key: value for key, value in members.items() if value is not None},
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


problem = problem_response  # the shorter name the auth and idempotency modules use


def retry_after_value(seconds: float | None) -> str:
    """A Retry-After header value: whole seconds, at least 1 (HTTP has no fractions here)."""
    return str(max(1, math.ceil(seconds or DEFAULT_RETRY_AFTER_S)))


def internal_error() -> JSONResponse:
    """What a client learns of a bug: that it happened, and the id to quote when reporting it."""
    return problem_response(
        500,
        "Internal error",
        "the server failed to handle this request; quote the request_id when reporting it",
    )


def type_uri(exc: OrdtoolError) -> str:
    words = re.findall(r"[A-Z][a-z]*", type(exc).__name__)
    return "urn:ordtool:problem:" + "-".join(word.lower() for word in words)


def _ordtool_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OrdtoolError)
    headers = None
    if isinstance(exc, DependencyUnavailable):
        headers = {"Retry-After": retry_after_value(exc.retry_after)}
    if exc.http_status >= 500:
        log.warning("%s: %s", exc.title, exc)
    return problem_response(
        exc.http_status,
        exc.title,
        str(exc),
        type_=type_uri(exc),
        headers=headers,
        hint=exc.hint,
    )


def validation_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [field_error(error) for error in exc.errors()]
    if not _sent_as_json(request) and any(tuple(e["loc"]) == ("body",) for e in exc.errors()):
        # FastAPI parses only JSON bodies; anything else arrives as "not an object".
        errors = [{"field": None, "message": _SEND_JSON}]
    return problem_response(
        InvalidInput.http_status,
        InvalidInput.title,
        "; ".join(error["message"] for error in errors),
        type_=type_uri(InvalidInput("")),
        errors=errors,
    )


def _sent_as_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def field_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """One FastAPI validation error as ``{"field", "message"}``, worded like the CLI's."""
    loc: Sequence[Any] = tuple(error.get("loc", ()))
    if loc and loc[0] in _PARAMETER_SOURCES:
        loc = loc[1:]
    kind = error.get("type")
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "malformed")
        return {"field": None, "message": f"the body is not valid JSON: {reason}"}
    if not loc:
        # The body as a whole: absent, or not a JSON object.
        if kind in _NOT_AN_OBJECT:
            return {"field": None, "message": "the body must be a JSON object"}
        return {"field": None, "message": str(error.get("msg", "")).removeprefix("Value error, ")}
    field = ".".join(str(part) for part in loc)
    return {"field": field, "message": describe_error({**error, "loc": loc})}


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    return problem_response(
        exc.status_code,
        phrase,
        detail or _HTTP_DETAILS.get(exc.status_code, phrase.lower()),
        headers=exc.headers,
    )


_HTTP_DETAILS = {
    404: "no such resource; see /docs for the API",
    405: "this method is not allowed here; see /docs for the API",
}


def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The driver's message can quote SQL and values; the log gets it, the client does not.
    log.warning("database error: %s", str(exc).splitlines()[0] if str(exc) else type(exc))
    return _ordtool_error(
        request,
        DependencyUnavailable(
            "the database is unavailable", hint="retry shortly", retry_after=DEFAULT_RETRY_AFTER_S
        ),
    )


def install(app: FastAPI) -> None:
    """Register the handlers that turn every expected error into problem details. Unexpected
    exceptions are answered by the request middleware (see middleware.py)."""
    app.add_exception_handler(OrdtoolError, _ordtool_error)
    app.add_exception_handler(RequestValidationError, validation_problem)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)

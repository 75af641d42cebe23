"""Who is calling, and may they? ``Authorization: Bearer <key or JWT>`` on every route.

Use in a route::

    from ordtool.web import auth

    @router.post("/orders")
    def create(caller: Annotated[auth.Caller, Depends(auth.require("orders:write"))]): ...

Refusals are HTTPExceptions with ``WWW-Authenticate`` (or ``Retry-After``) headers, which
``ordtool.web.problems.install`` renders as problem details.

The app must have ``api.state.app`` (an ``ordtool.bootstrap.App``) and ``api.state.service``
("orders" or "customers"): a key is checked against that service's own database.

Refusals: no or malformed header, unknown or revoked key, bad JWT -> 401; a valid caller
without the scope -> 403 (``admin`` grants every scope); over the rate limit -> 429 with
Retry-After. A verified key is cached for ``ORDTOOL_AUTH__KEY_CACHE_S`` (5 s), so a revoke takes
effect within that time. Keys and tokens are never logged.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from fastapi import FastAPI, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ordtool.bootstrap import App
from ordtool.domain.keys import SCOPES, grants, looks_like_key
from ordtool.metrics import AUTH_REFUSALS
from ordtool.ratelimit import RateLimiter
from ordtool.services.keys import KeyVerifier, VerifiedKey
from ordtool.store.migrate import ServiceDatabase
from ordtool.web.tokens import InvalidToken, JwtVerifier, looks_like_jwt

REALM = 'Bearer realm="ordtool"'
# RFC 6750 b64token, bounded so a huge header costs nothing.
_BEARER = re.compile(r"Bearer +([A-Za-z0-9\-._~+/]{1,8192}=*)", re.IGNORECASE)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: ``key:<id>`` for an API key, ``jwt:<sub>`` for a JWT."""

    id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return grants(self.scopes, scope)


def _refusal(status: int, detail: str, headers: dict[str, str]) -> HTTPException:
    # problems.install renders an HTTPException as problem details, keeping its headers.
    return HTTPException(status_code=status, detail=detail, headers=headers)


def require(scope: str) -> Callable[[Request], Awaitable[Caller]]:
    """A FastAPI dependency: the authenticated Caller holding ``scope``, else a refusal."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; one of {', '.join(SCOPES)}")

    async def authenticated_caller(request: Request) -> Caller:
        state = _state(request)
        caller = await state.authenticate(_bearer_token(request))
        state.check_rate(caller)
        if not caller.allows(scope):
            AUTH_REFUSALS.labels(reason="forbidden").inc()
            raise _refusal(
                403,
                f"this key lacks the scope {scope}; ask for a key with it "
                f"(ordtool keys create --scope {scope})",
                {"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
            )
        request.state.caller = caller
        return caller

    return authenticated_caller


def _unauthorized(detail: str, reason: str, *, invalid: bool = True) -> HTTPException:
    AUTH_REFUSALS.labels(reason=reason).inc()
    challenge = f'{REALM}, error="invalid_token"' if invalid else REALM
    return _refusal(401, detail, {"WWW-Authenticate": challenge})


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise _unauthorized(
            "this endpoint needs an API key: send Authorization: Bearer <key>",
            "missing",
            invalid=False,
        )
    match = _BEARER.fullmatch(header.strip())
    if match is None:
        raise _unauthorized(
            "malformed Authorization header; send Authorization: Bearer <key>", "malformed"
        )
    return match.group(1)


class _AuthState:
    """Per FastAPI app: the key verifier of its service, the JWT verifier, the rate limiter."""

    def __init__(self, app: App, service: ServiceDatabase) -> None:
        self._app = app
        self._service = service
        self._keys: KeyVerifier | None = None
        auth = app.settings.auth
        self._jwt = JwtVerifier(auth) if auth.jwt_key is not None else None
        rate = auth.rate_limit_per_s
        self._limiter = RateLimiter(rate, auth.rate_limit_burst) if rate else None

    async def authenticate(self, token: str) -> Caller:
        if looks_like_key(token):
            return await self._by_key(token)
        if self._jwt is not None and looks_like_jwt(token):
            return self._by_jwt(self._jwt, token)
        raise _unauthorized("not an ordtool API key (they start with ordk_)", "malformed")

    async def _by_key(self, token: str) -> Caller:
        verified = self._keys.cached(token) if self._keys is not None else None
        if verified is None:
            # Opening the database and the look-up block: off the event loop.
            verified = await run_in_threadpool(self._verify, token)
        if verified is None:
            raise _unauthorized("unknown or revoked API key", "invalid_key")
        return Caller(f"key:{verified.id}", verified.name, verified.scopes)

    def _verify(self, token: str) -> VerifiedKey | None:
        if self._keys is None:
            self._keys = self._app.key_verifier(self._service)
        return self._keys.verify(token)

    @staticmethod
    def _by_jwt(verifier: JwtVerifier, token: str) -> Caller:
        try:
            identity = verifier.verify(token)
        except InvalidToken as exc:
            raise _unauthorized(str(exc), "invalid_jwt") from None
        return Caller(f"jwt:{identity.subject}", identity.subject, identity.scopes)

    def check_rate(self, caller: Caller) -> None:
        if self._limiter is None:
            return
        wait_s = self._limiter.acquire(caller.id)
        if wait_s > 0:
            AUTH_REFUSALS.labels(reason="rate_limited").inc()
            raise _refusal(
                429,
                "this caller is over its rate limit; retry after Retry-After seconds",
                {"Retry-After": str(max(1, math.ceil(wait_s)))},
            )


_state_lock = threading.Lock()


def prepare(api: FastAPI) -> None:
    """Build the auth state now (call at start-up), so that a wrong JWT setting stops the
    service before it takes traffic instead of failing its first request."""
    api.state.ordtool_auth = _AuthState(api.state.app, api.state.service)


def _state(request: Request) -> _AuthState:
    state = getattr(request.app.state, "ordtool_auth", None)
    if state is None:
        with _state_lock:
            state = getattr(request.app.state, "ordtool_auth", None)
            if state is None:
                state = _AuthState(request.app.state.app, request.app.state.service)
                request.app.state.ordtool_auth = state
    return cast(_AuthState, state)

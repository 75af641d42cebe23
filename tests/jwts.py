"""JWTs for tests: an HS256 issuer's settings, claims, and the tokens an attacker would send."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
from pydantic import SecretStr

SECRET = "jwt-test-secret-" + "s" * 64
ISSUER = "https://login.example"
AUDIENCE = "ordtool-api"


def jwt_settings(**changes: Any) -> dict[str, Any]:
    """``AuthSettings`` fields that turn HS256 JWTs from ISSUER for AUDIENCE on."""
    return {
        "jwt_algorithm": "HS256",
        "jwt_key": SecretStr(SECRET),
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwt_leeway_s": 0,
    } | changes


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for a day (tokens are built when tests are collected, which can be many
    minutes before they run); a change to None drops that claim."""
    base = {
        "sub": "partner-42",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 86_400,
        "scope": "orders:read",
    }
    return {k: v for k, v in (base | changes).items() if v is not None}


def token_for(**changes: Any) -> str:
    return jwt.encode(claims(**changes), SECRET, "HS256")


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def unsigned(payload: dict[str, Any]) -> str:
    """An ``alg: none`` token: claims without a signature."""
    header = b64(b'{"alg":"none","typ":"JWT"}')
    return (header + b"." + b64(json.dumps(payload).encode()) + b".").decode()

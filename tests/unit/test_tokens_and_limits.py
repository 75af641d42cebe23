"""JWT validation (on a fixed algorithm, with exp/iss/aud required) and the per-caller token
bucket, without I/O."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from pydantic import SecretStr

from ordtool.bootstrap import App
from ordtool.config import AuthSettings, Settings
from ordtool.errors import ConfigurationError
from ordtool.ratelimit import RateLimiter
from ordtool.web import auth
from ordtool.web.tokens import InvalidToken, JwtVerifier
from tests.jwts import SECRET, b64, claims, jwt_settings, token_for, unsigned


def hs_settings(**changes: Any) -> AuthSettings:
    return AuthSettings(**jwt_settings(**changes))


def test_a_valid_token_gives_its_subject_and_known_scopes() -> None:
    identity = JwtVerifier(hs_settings()).verify(token_for(scope="orders:read bogus"))
    assert identity.subject == "partner-42"
    assert identity.scopes == {"orders:read"}


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (token_for(exp=int(time.time()) - 60), "expired"),
        (unsigned(claims()), "algorithm"),
        (token_for(iss="https://evil.example"), "issuer"),
        (token_for(aud="someone-else"), "audience"),
        (token_for(exp=None), "required claim"),
        (token_for(iss=None), "required claim"),
        (token_for(aud=None), "required claim"),
        (token_for(sub=None), "required claim"),
        (jwt.encode(claims(), "another-secret-" + "y" * 64, "HS256"), "signature"),
        (jwt.encode(claims(), SECRET, "HS512"), "algorithm"),
        ("not.a.token", "malformed"),
    ],
    ids=[
        "expired",
        "alg-none",
        "wrong-issuer",
        "wrong-audience",
        "no-exp",
        "no-iss",
        "no-aud",
        "no-sub",
        "bad-signature",
        "other-algorithm",
        "garbage",
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str, reason: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        JwtVerifier(hs_settings()).verify(token)
    assert reason in str(caught.value)


def _rsa_pair() -> tuple[Any, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public_pem.decode()


def test_rs256_accepts_the_issuers_signature_and_refuses_hmac_with_the_public_key() -> None:
    private, public_pem = _rsa_pair()
    verifier = JwtVerifier(hs_settings(jwt_algorithm="RS256", jwt_key=SecretStr(public_pem)))
    assert verifier.verify(jwt.encode(claims(), private, "RS256")).subject == "partner-42"
    # The classic confusion attack: an HS256 token "signed" with the public key as secret.
    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(json.dumps(claims()).encode())
    signature = hmac.new(public_pem.encode(), header + b"." + body, hashlib.sha256).digest()
    token = b".".join([header, body, b64(signature)]).decode()
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(token)


def test_misconfiguration_is_found_at_start() -> None:
    with pytest.raises(ConfigurationError, match="ISSUER"):
        JwtVerifier(hs_settings(jwt_issuer=None))
    with pytest.raises(ConfigurationError, match="not a valid RS256 key"):
        JwtVerifier(hs_settings(jwt_algorithm="RS256", jwt_key=SecretStr("not a pem")))
    with pytest.raises(ConfigurationError):
        JwtVerifier(hs_settings(jwt_key=None))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("a")
    assert wait == pytest.approx(0.5)
    assert limiter.acquire("b") == 0.0  # buckets are per caller
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    clock.now += 100
    assert [limiter.acquire("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # never above burst


def test_idle_buckets_are_forgotten_when_the_table_is_full() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 1, clock=clock, max_callers=2)
    limiter.acquire("a")
    limiter.acquire("b")
    clock.now += 5  # both refilled
    limiter.acquire("c")
    assert set(limiter._buckets) == {"c"}


def test_prepare_refuses_a_bad_jwt_setting_before_the_first_request(tmp_path: Path) -> None:
    bad = AuthSettings(**jwt_settings(jwt_algorithm="ES256", jwt_key=SecretStr("not a key")))
    api = FastAPI()
    api.state.app = App(Settings(data_dir=tmp_path, auth=bad, _env_file=None))  # type: ignore[call-arg]
    api.state.service = "orders"
    with pytest.raises(ConfigurationError, match="ES256"):
        auth.prepare(api)

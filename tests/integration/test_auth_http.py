"""Every auth case over real HTTP (uvicorn) against real databases (SQLite and PostgreSQL):
no header, malformed, wrong, revoked, wrong scope, the other service's key, JWTs (valid,
expired, ``alg: none``, wrong issuer or audience), and the rate limit."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import jwt
import pytest

from ordtool.bootstrap import App
from ordtool.config import AuthSettings
from ordtool.services import keys
from ordtool.store.migrate import ServiceDatabase
from tests.integration.auth_app import build, serving
from tests.jwts import claims, jwt_settings, token_for, unsigned

Serve = Callable[..., str]


@pytest.fixture
def serve(any_app: App) -> Iterator[Serve]:
    """Start the tiny service over ``any_app``'s databases with the given auth settings."""
    with ExitStack() as stack:

        def start(service: ServiceDatabase = "orders", **auth: Any) -> str:
            settings = any_app.settings.model_copy(
                update={"auth": AuthSettings(**({"key_cache_s": 0.0} | auth))}
            )
            app = App(settings)
            stack.callback(app.close)
            api, _probe = build(app, service)
            return stack.enter_context(serving(api))

        yield start


def make_key(app: App, *scopes: str) -> str:
    _key, token = keys.create_key(app.api_key_stores(), "test", frozenset(scopes))
    return token


def get(url: str, token: str | None = None, path: str = "/things") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url + path, headers=headers, timeout=30)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


def assert_unauthorized(response: httpx.Response) -> dict[str, Any]:
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    return body


def test_a_valid_key_is_accepted_and_names_its_caller(any_app: App, serve: Serve) -> None:
    url = serve()
    token = make_key(any_app, "orders:read")
    response = get(url, token)
    assert response.status_code == 200
    assert response.json()["id"].startswith("key:") and response.json()["scopes"] == [
        "orders:read"
    ]


def test_no_header_is_401_with_a_bearer_challenge(serve: Serve) -> None:
    body = assert_unauthorized(get(serve()))
    assert "Authorization: Bearer" in body["detail"]


MALFORMED = ("Basic dXNlcjpwYXNz", "Bearer", "Bearer two words", "ordk_abc", "Bearer \u00e9")


def test_a_malformed_header_is_401(serve: Serve) -> None:
    url = serve()
    for header in MALFORMED:
        raw = {"Authorization": header.encode("utf-8")}
        assert_unauthorized(httpx.get(url + "/things", headers=raw, timeout=30))


def test_wrong_keys_are_401(any_app: App, serve: Serve) -> None:
    url = serve()
    real = make_key(any_app, "orders:read")
    tampered = real[:-2] + ("AA" if not real.endswith("AA") else "BB")
    unknown = "ordk_0123456789abcdef_" + "x" * 43
    for token in (tampered, unknown, "not-a-key", real + "x"):
        assert_unauthorized(get(url, token))
    assert get(url, real).status_code == 200


def test_a_revoked_key_is_401(any_app: App, serve: Serve) -> None:
    url = serve()
    token = make_key(any_app, "orders:read")
    assert get(url, token).status_code == 200
    keys.revoke_key(any_app.api_key_stores(), keys.list_keys(any_app.api_key_stores())[0].key.id)
    assert_unauthorized(get(url, token))


def test_a_cached_key_is_refused_once_the_cache_expires(any_app: App, serve: Serve) -> None:
    url = serve(key_cache_s=0.5)
    token = make_key(any_app, "orders:read")
    assert get(url, token).status_code == 200
    keys.revoke_key(any_app.api_key_stores(), keys.list_keys(any_app.api_key_stores())[0].key.id)
    time.sleep(0.6)
    assert_unauthorized(get(url, token))


def test_a_key_without_the_scope_is_403_and_admin_may_do_everything(
    any_app: App, serve: Serve
) -> None:
    url = serve()
    reader = make_key(any_app, "orders:read")
    body = assert_problem(
        httpx.post(url + "/orders", headers={"Authorization": f"Bearer {reader}"}, json={}),
        403,
    )
    assert "orders:write" in body["detail"]
    response = get(url, reader, "/customers-only")
    assert_problem(response, 403)
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    admin = make_key(any_app, "admin")
    assert get(url, admin).status_code == 200
    assert get(url, admin, "/customers-only").status_code == 200


def test_each_service_checks_keys_in_its_own_database(any_app: App, serve: Serve) -> None:
    orders_url, customers_url = serve("orders"), serve("customers")
    _key, token = keys.create_key(
        [any_app.api_key_store("customers")], "customers only", frozenset({"admin"})
    )
    assert_unauthorized(get(orders_url, token))
    assert get(customers_url, token).status_code == 200
    both = make_key(any_app, "admin")  # the CLI's way: written to both databases
    assert get(orders_url, both).status_code == 200 and get(customers_url, both).status_code == 200


def test_a_valid_jwt_is_accepted_with_its_scopes(serve: Serve) -> None:
    url = serve(**jwt_settings())
    response = get(url, token_for())
    assert response.status_code == 200
    assert response.json()["id"] == "jwt:partner-42"
    assert_problem(get(url, token_for(), "/customers-only"), 403)


def test_bad_jwts_are_401_saying_why(serve: Serve) -> None:
    url = serve(**jwt_settings())
    cases = {
        "expired": token_for(exp=int(time.time()) - 120),
        "algorithm": unsigned(claims(scope="admin")),  # alg: none
        "issuer": token_for(iss="https://other.example"),
        "audience": token_for(aud="another-api"),
        "claim": token_for(exp=None),
        "signature": jwt.encode(claims(), "wrong" * 20, "HS256"),
    }
    for reason, token in cases.items():
        body = assert_unauthorized(get(url, token))
        assert reason in body["detail"], (reason, body)


def test_jwts_are_refused_when_not_configured(serve: Serve) -> None:
    assert_unauthorized(get(serve(), token_for()))


def test_over_the_rate_limit_is_429_with_retry_after(any_app: App, serve: Serve) -> None:
    # One request per 100 s after a burst of 2: the third is refused however slow the machine.
    url = serve(rate_limit_per_s=0.01, rate_limit_burst=2)
    first, second = make_key(any_app, "orders:read"), make_key(any_app, "orders:read")
    assert [get(url, first).status_code for _ in range(2)] == [200, 200]
    limited = get(url, first)
    assert_problem(limited, 429)
    assert 1 <= int(limited.headers["retry-after"]) <= 100
    assert get(url, second).status_code == 200  # the limit is per caller


def test_the_rate_limit_is_off_by_default(any_app: App, serve: Serve) -> None:
    url = serve()
    token = make_key(any_app, "orders:read")
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        assert {client.get(url + "/things").status_code for _ in range(60)} == {200}

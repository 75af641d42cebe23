"""``ordtool keys`` in a child process, on SQLite and PostgreSQL: a key is printed once, works
on both services, never appears in a listing, and stops working when revoked."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.domain.keys import hash_key
from ordtool.store.migrate import SERVICE_DATABASES
from tests.integration.auth_app import build, serving
from tests.processes import ok_json, ordtool_env, run_ordtool


@pytest.fixture
def env(any_app: App) -> dict[str, str]:
    return ordtool_env(any_app.settings, ORDTOOL_AUTH__KEY_CACHE_S="0")


@pytest.fixture
def sqlite_env(settings: Settings) -> dict[str, str]:
    """For what does not depend on the database: run once, not once per backend."""
    return ordtool_env(settings)


@pytest.fixture
def service_urls(any_app: App) -> Iterator[dict[str, str]]:
    """The tiny service once per database, with the key cache off (as the env above)."""
    settings = any_app.settings.model_copy(
        update={"auth": any_app.settings.auth.model_copy(update={"key_cache_s": 0.0})}
    )
    app = App(settings)
    orders_api, _ = build(app, "orders")
    customers_api, _ = build(app, "customers")
    with serving(orders_api) as orders_url, serving(customers_api) as customers_url:
        yield {"orders": orders_url, "customers": customers_url}
    app.close()


def status(url: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(url + "/things", headers=headers, timeout=30).status_code


def test_create_prints_the_key_once_and_it_works_on_both_services(
    any_app: App, env: dict[str, str], service_urls: dict[str, str]
) -> None:
    created = run_ordtool(["keys", "create", "--name", "billing", "--scope", "orders:read"], env)
    assert created.returncode == 0, created.stderr
    [token] = created.stdout.split()  # stdout holds the key and nothing else
    assert token.startswith("ordk_") and token not in created.stderr
    assert {db: status(url, token) for db, url in service_urls.items()} == {
        "orders": 200,
        "customers": 200,
    }
    for database in SERVICE_DATABASES:
        [stored] = any_app.api_key_store(database).list()
        assert stored.key_hash == hash_key(token) and stored.name == "billing"


def test_json_output_and_a_listing_that_hides_secrets(any_app: App, env: dict[str, str]) -> None:
    made = ok_json(
        ["keys", "create", "--name", "ops", "--scope", "orders:read", "--scope", "admin"], env
    )
    assert set(made) >= {"key", "id", "name", "scopes"}
    assert made["name"] == "ops" and made["scopes"] == ["orders:read", "admin"]
    listed = ok_json(["keys", "list"], env)
    [item] = listed["items"]
    assert item["id"] == made["id"] and item["revoked_at"] is None
    table = run_ordtool(["keys", "list"], env)
    for output in (json.dumps(listed), table.stdout + table.stderr):
        assert made["key"] not in output
        # The secret is what follows "ordk_<id>_" (it may hold "_" itself).
        assert made["key"].split("_", 2)[2][:12] not in output
        assert hash_key(made["key"]) not in output
    assert made["id"] in table.stdout


def test_revoke_makes_the_key_fail(
    env: dict[str, str], service_urls: dict[str, str]
) -> None:
    made = ok_json(["keys", "create", "--name", "temp", "--scope", "orders:read"], env)
    assert status(service_urls["orders"], made["key"]) == 200
    revoked = run_ordtool(["keys", "revoke", made["id"]], env)
    assert revoked.returncode == 0, revoked.stderr
    assert {status(url, made["key"]) for url in service_urls.values()} == {401}
    [item] = ok_json(["keys", "list"], env)["items"]
    assert item["revoked_at"] is not None and item["revoked_at"].endswith("Z")


def test_bad_input_is_exit_2_and_an_unknown_id_exit_1(sqlite_env: dict[str, str]) -> None:
    env = sqlite_env
    unknown_scope = run_ordtool(["keys", "create", "--name", "x", "--scope", "orders:delete"], env)
    assert unknown_scope.returncode == 2
    [line] = unknown_scope.stderr.strip().splitlines()
    assert "orders:delete" in line and "customers:write" in line and "admin" in line
    no_scope = run_ordtool(["keys", "create", "--name", "x"], env)
    assert no_scope.returncode == 2 and "--scope" in no_scope.stderr
    missing = run_ordtool(["keys", "revoke", "0123456789abcdef"], env)
    assert missing.returncode == 1 and "0123456789abcdef" in missing.stderr


def test_every_keys_command_has_help_with_an_example(sqlite_env: dict[str, str]) -> None:
    env = sqlite_env
    for command in ("create", "list", "revoke"):
        shown = run_ordtool(["keys", command, "--help"], env)
        assert shown.returncode == 0 and "Example: ordtool keys " + command in shown.stdout

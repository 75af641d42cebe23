"""The customer check over real HTTP: a stub customer service on a real port misbehaves, and
the adapter (built by bootstrap, as the order service and the CLI build it) must answer
correctly and within the deadline, whatever the stub does."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY
from pydantic import SecretStr

from ordtool.bootstrap import App
from ordtool.config import CustomerCheckSettings, Settings
from ordtool.customers_client.http import HttpCustomerDirectory
from ordtool.errors import DependencyUnavailable
from ordtool.services.ports import CustomerLookup
from tests.conftest import REDIS_URL, require_service
from tests.integration.customer_stub import Mode, StubCustomerService, closed_port

DEADLINE = 1.0
MARGIN = 0.3  # scheduling noise on a busy 2-core machine; the bound itself is the deadline
KNOWN, UNKNOWN = 1, 99

MakeDirectory = Callable[..., HttpCustomerDirectory]


@pytest.fixture
def stub() -> Iterator[StubCustomerService]:
    service = StubCustomerService()
    service.start()
    yield service
    service.stop()


@pytest.fixture
def make_directory(settings: Settings) -> Iterator[MakeDirectory]:
    """Build the HTTP adapter through App, as production does; closes it afterwards."""
    apps: list[App] = []

    def make(url: str, *, redis_url: str | None = None, **check: Any) -> HttpCustomerDirectory:
        configured = settings.model_copy(
            update={
                "customer_service_url": url,
                "customer_service_key": SecretStr("stub-key"),
                "redis_url": SecretStr(redis_url) if redis_url else None,
                "customer_check": CustomerCheckSettings(deadline_s=DEADLINE, **check),
            }
        )
        app = App(configured)
        apps.append(app)
        directory = app.customer_directory
        assert isinstance(directory, HttpCustomerDirectory)
        return directory

    yield make
    for app in apps:
        app.close()


def timed(call: Callable[[], CustomerLookup]) -> tuple[CustomerLookup | Exception, float]:
    started = time.monotonic()
    try:
        result: CustomerLookup | Exception = call()
    except DependencyUnavailable as exc:
        result = exc
    return result, time.monotonic() - started


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- answers -----------------------------------------------------------------------------------


def test_known_and_unknown_customers_with_auth_and_request_id(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    directory = make_directory(stub.url)
    assert directory.lookup(KNOWN, request_id="req-123") == CustomerLookup(exists=True)
    assert directory.lookup(UNKNOWN) == CustomerLookup(exists=False)
    first = stub.state.headers[0]
    assert first["authorization"] == "Bearer stub-key"
    assert first["x-request-id"] == "req-123"


def test_fresh_cache_hit_makes_no_request(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    directory = make_directory(stub.url)
    hits = metric("ordtool_customer_cache_lookups_total", result="hit")
    directory.lookup(KNOWN)
    assert stub.requests == 1
    assert directory.lookup(KNOWN) == CustomerLookup(exists=True)
    assert stub.requests == 1
    assert metric("ordtool_customer_cache_lookups_total", result="hit") == hits + 1


def test_not_found_is_neither_retried_nor_cached(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    directory = make_directory(stub.url)
    assert not directory.lookup(UNKNOWN).exists
    assert stub.requests == 1  # a 404 is an answer: no retry
    stub.state.known.add(UNKNOWN)  # the customer is created a moment later
    assert directory.lookup(UNKNOWN).exists  # so "not found" must not have been cached
    assert stub.requests == 2


def test_503_then_ok_is_retried_to_success(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    stub.state.mode, stub.state.fail_first = "flaky503", 2
    directory = make_directory(stub.url)
    result, took = timed(lambda: directory.lookup(KNOWN))
    assert result == CustomerLookup(exists=True)
    assert stub.requests == 3
    assert took < DEADLINE + MARGIN


def test_at_most_two_retries(stub: StubCustomerService, make_directory: MakeDirectory) -> None:
    stub.state.mode, stub.state.fail_first = "flaky503", 10
    directory = make_directory(stub.url)
    with pytest.raises(DependencyUnavailable):
        directory.lookup(KNOWN)
    assert stub.requests == 3  # the first attempt and max_retries=2


# -- failures: answer and time -----------------------------------------------------------------


@pytest.mark.parametrize(
    "mode", ["error500", "unauthorized", "malformed", "wrong_shape", "wrong_id"]
)
def test_bad_answers_fail_the_check_once_without_retry(
    stub: StubCustomerService, make_directory: MakeDirectory, mode: Mode
) -> None:
    stub.state.mode = mode
    directory = make_directory(stub.url)
    result, took = timed(lambda: directory.lookup(KNOWN))
    assert isinstance(result, DependencyUnavailable)
    assert result.retry_after is not None and result.retry_after >= 1
    assert "cannot check customer 1" in str(result)
    assert stub.requests == 1  # only connect errors, timeouts and 502/503/504 are retried
    assert took < DEADLINE + MARGIN


@pytest.mark.parametrize("mode", ["frozen", "slow", "trickle"])
def test_a_hanging_service_costs_at_most_the_deadline(
    stub: StubCustomerService, make_directory: MakeDirectory, mode: Mode
) -> None:
    stub.state.mode = mode
    directory = make_directory(stub.url)
    result, took = timed(lambda: directory.lookup(KNOWN))
    assert isinstance(result, DependencyUnavailable)
    assert "timed out" in str(result)
    assert took < DEADLINE + MARGIN
    assert stub.requests <= 3


def test_a_stopped_service_fails_fast_after_bounded_retries(
    make_directory: MakeDirectory,
) -> None:
    directory = make_directory(f"http://127.0.0.1:{closed_port()}")
    retryable = metric("ordtool_customer_check_attempts_total", result="retryable")
    result, took = timed(lambda: directory.lookup(KNOWN))
    assert isinstance(result, DependencyUnavailable)
    assert "cannot connect" in str(result)
    assert took < DEADLINE + MARGIN
    assert metric("ordtool_customer_check_attempts_total", result="retryable") == retryable + 3


def test_waiting_for_a_pooled_connection_counts_against_the_deadline(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    # One pooled connection, held 0.7 s by the first look-up: the others queue for it. An
    # attempt timeout as long as the deadline makes any per-phase timeout overrun visible.
    stub.state.mode, stub.state.slow_s = "slow", 0.7
    directory = make_directory(stub.url, pool_size=1, attempt_timeout_s=DEADLINE)
    took: list[float] = []

    def look_up(customer_id: int) -> None:
        took.append(timed(lambda: directory.lookup(customer_id))[1])

    threads = [threading.Thread(target=look_up, args=(i,)) for i in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(took) == 3
    assert max(took) < DEADLINE + MARGIN


# -- circuit breaker ---------------------------------------------------------------------------

BREAKER = {"breaker_min_calls": 3, "breaker_window": 5, "breaker_open_s": 0.5}


def open_breaker(stub: StubCustomerService, directory: HttpCustomerDirectory) -> None:
    stub.state.mode = "error500"
    for customer_id in (5, 6, 7):  # one attempt each: a 500 is not retried
        with pytest.raises(DependencyUnavailable):
            directory.lookup(customer_id)
    assert directory.health()["breaker"]["state"] == "open"


@pytest.fixture
def tripped(stub: StubCustomerService, make_directory: MakeDirectory) -> HttpCustomerDirectory:
    """An adapter whose breaker has just opened."""
    directory = make_directory(stub.url, **BREAKER)
    open_breaker(stub, directory)
    return directory


def test_open_breaker_fails_at_once_without_a_request(
    stub: StubCustomerService, tripped: HttpCustomerDirectory
) -> None:
    directory = tripped
    seen = stub.requests
    gauge = metric("ordtool_circuit_breaker_state", dependency="customer-service")
    result, took = timed(lambda: directory.lookup(KNOWN))
    assert isinstance(result, DependencyUnavailable)
    assert "circuit breaker open" in str(result)
    assert took < 0.05
    assert stub.requests == seen
    assert gauge == 2


def test_breaker_recovers_after_the_interval_through_a_probe(
    stub: StubCustomerService, tripped: HttpCustomerDirectory
) -> None:
    directory = tripped
    stub.state.mode = "normal"
    with pytest.raises(DependencyUnavailable):
        directory.lookup(KNOWN)  # still open: the service is not asked yet
    seen = stub.requests
    time.sleep(0.6)
    assert directory.lookup(KNOWN) == CustomerLookup(exists=True)
    assert stub.requests == seen + 1  # exactly one probe
    assert directory.health()["breaker"]["state"] == "closed"


def test_failed_probe_reopens_the_breaker(
    stub: StubCustomerService, tripped: HttpCustomerDirectory
) -> None:
    directory = tripped
    time.sleep(0.6)
    seen = stub.requests
    with pytest.raises(DependencyUnavailable):
        directory.lookup(KNOWN)
    assert stub.requests == seen + 1  # the probe, and no retry once it reopened
    assert directory.health()["breaker"]["state"] == "open"


def test_in_memory_answers_need_no_request_and_no_thread(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    """lookup_in_memory (the order service's event-loop path) answers a fresh entry, and
    while the breaker is open a stale entry or a refusal; anything else is left to lookup."""
    directory = make_directory(stub.url, **BREAKER)
    assert directory.lookup_in_memory(KNOWN) is None  # nothing cached: only lookup can tell
    directory.lookup(KNOWN)
    seen = stub.requests
    assert directory.lookup_in_memory(KNOWN) == CustomerLookup(exists=True)
    assert directory.lookup_in_memory(UNKNOWN) is None  # breaker closed: ask the service
    assert stub.requests == seen

    stale = make_directory(stub.url, **NEVER_FRESH, **BREAKER)
    stale.lookup(KNOWN)
    assert stale.lookup_in_memory(KNOWN) is None  # stale, breaker closed: ask the service
    open_breaker(stub, stale)
    seen = stub.requests
    assert stale.lookup_in_memory(KNOWN) == CustomerLookup(exists=True, stale=True)
    with pytest.raises(DependencyUnavailable, match="circuit breaker open") as refused:
        stale.lookup_in_memory(UNKNOWN)
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
    assert stub.requests == seen


# -- stale-if-error ---------------------------------------------------------------------------

# Every look-up asks the service; entries only go stale (no revalidate window either).
NEVER_FRESH = {"cache_fresh_s": 0.0, "cache_revalidate_s": 0.0}


def test_known_customer_served_stale_while_service_is_down(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    directory = make_directory(stub.url, **NEVER_FRESH)
    assert not directory.lookup(KNOWN).stale
    assert not directory.lookup(UNKNOWN).exists
    stub.stop()
    stale = metric("ordtool_customer_checks_total", outcome="stale")
    result, took = timed(lambda: directory.lookup(KNOWN))
    assert result == CustomerLookup(exists=True, stale=True)
    assert took < DEADLINE + MARGIN
    assert metric("ordtool_customer_checks_total", outcome="stale") == stale + 1
    with pytest.raises(DependencyUnavailable):
        directory.lookup(UNKNOWN)  # never accepted: "not found" was never cached
    with pytest.raises(DependencyUnavailable):
        directory.lookup(2)  # never looked up: nothing to fall back on


def test_stale_answer_while_breaker_is_open_makes_no_request(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    directory = make_directory(stub.url, **NEVER_FRESH, **BREAKER)
    directory.lookup(KNOWN)
    open_breaker(stub, directory)
    seen = stub.requests
    result, took = timed(lambda: directory.lookup(KNOWN))
    assert result == CustomerLookup(exists=True, stale=True)
    assert took < 0.05
    assert stub.requests == seen


def test_a_deleted_customer_loses_its_stale_entry(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    directory = make_directory(stub.url, **NEVER_FRESH)
    directory.lookup(KNOWN)
    stub.state.known.discard(KNOWN)
    assert not directory.lookup(KNOWN).exists
    stub.stop()
    with pytest.raises(DependencyUnavailable):
        directory.lookup(KNOWN)


def test_invalidate_drops_the_cached_customer(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    directory = make_directory(stub.url)
    directory.lookup(KNOWN)
    directory.invalidate(KNOWN)
    directory.lookup(KNOWN)
    assert stub.requests == 2


# -- stale-while-revalidate -------------------------------------------------------------------

REVALIDATE_SOON = {"cache_fresh_s": 0.2, "cache_revalidate_s": 30.0}


def wait_for(condition: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_an_entry_due_for_revalidation_answers_at_once_and_is_renewed_behind(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    directory = make_directory(stub.url, **REVALIDATE_SOON)
    assert directory.lookup(KNOWN).exists
    time.sleep(0.25)  # past the fresh TTL, inside the revalidate window
    stub.state.mode, stub.state.slow_s = "slow", 0.3
    renewed = metric("ordtool_customer_cache_refreshes_total", outcome="found")
    result, took = timed(lambda: directory.lookup(KNOWN))
    assert result == CustomerLookup(exists=True)  # not stale: it is within its windows
    assert took < 0.1  # the slow re-check runs behind, not in the request
    for _ in range(5):  # one re-check at a time per customer
        directory.lookup(KNOWN)
    assert wait_for(lambda: metric("ordtool_customer_cache_refreshes_total", outcome="found")
                    == renewed + 1)
    assert stub.requests == 2
    directory.lookup(KNOWN)  # renewed: fresh again, no re-check
    assert stub.requests == 2


def test_revalidation_forgets_a_customer_deleted_meanwhile(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    directory = make_directory(stub.url, **REVALIDATE_SOON)
    directory.lookup(KNOWN)
    stub.state.known.discard(KNOWN)
    time.sleep(0.25)
    directory.lookup(KNOWN)  # still answers from the cache, and queues the re-check
    assert wait_for(lambda: stub.requests == 2)
    assert wait_for(lambda: not directory.lookup(KNOWN).exists)  # asked again: 404


def test_with_the_breaker_open_an_entry_due_for_revalidation_answers_stale(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    directory = make_directory(stub.url, **REVALIDATE_SOON, **BREAKER)
    directory.lookup(KNOWN)
    time.sleep(0.25)
    open_breaker(stub, directory)
    seen = stub.requests
    # Nobody has confirmed the customer since its fresh TTL ended: the answer says so.
    assert directory.lookup(KNOWN) == CustomerLookup(exists=True, stale=True)
    assert stub.requests == seen  # and no re-check while the breaker is open
    stub.state.mode = "normal"
    time.sleep(0.55)  # past the open interval: half-open
    recovered = metric("ordtool_customer_cache_refreshes_total", outcome="found")
    assert directory.lookup(KNOWN) == CustomerLookup(exists=True, stale=True)
    # That look-up's re-check was the breaker's probe: it closes, and the entry is renewed.
    assert wait_for(
        lambda: metric("ordtool_customer_cache_refreshes_total", outcome="found")
        == recovered + 1
    )
    assert directory.health()["breaker"]["state"] == "closed"
    assert directory.lookup(KNOWN) == CustomerLookup(exists=True)


# -- Redis -------------------------------------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    require_service("Redis", "127.0.0.1", 6379)
    prefix = f"ordtool-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_redis_cache_is_shared_between_processes_adapters(
    stub: StubCustomerService, make_directory: MakeDirectory, redis_prefix: str
) -> None:
    first = make_directory(stub.url, redis_url=REDIS_URL, cache_key_prefix=redis_prefix)
    second = make_directory(stub.url, redis_url=REDIS_URL, cache_key_prefix=redis_prefix)
    assert first.lookup(KNOWN).exists
    assert second.lookup(KNOWN) == CustomerLookup(exists=True)
    assert stub.requests == 1  # the second adapter's look-up was a hit in Redis
    assert not first.lookup(UNKNOWN).exists
    client = redis.Redis.from_url(REDIS_URL)
    assert client.exists(f"{redis_prefix}{KNOWN}")
    assert not client.exists(f"{redis_prefix}{UNKNOWN}")  # "not found" is never stored
    ttl_ms = client.pttl(f"{redis_prefix}{KNOWN}")
    assert 3600_000 < ttl_ms <= 3660_000  # kept for fresh + stale window, then gone
    second.invalidate(KNOWN)
    assert not client.exists(f"{redis_prefix}{KNOWN}")
    client.close()


def test_redis_stale_entry_serves_another_adapter_during_an_outage(
    stub: StubCustomerService, make_directory: MakeDirectory, redis_prefix: str
) -> None:
    options = {"redis_url": REDIS_URL, "cache_key_prefix": redis_prefix, **NEVER_FRESH}
    first = make_directory(stub.url, **options)
    second = make_directory(stub.url, **options)
    assert first.lookup(KNOWN).exists
    assert not first.lookup(UNKNOWN).exists
    stub.stop()
    result, took = timed(lambda: second.lookup(KNOWN))
    assert result == CustomerLookup(exists=True, stale=True)
    assert took < DEADLINE + MARGIN
    with pytest.raises(DependencyUnavailable):
        second.lookup(UNKNOWN)


def test_unreachable_redis_only_costs_the_cache(
    stub: StubCustomerService, make_directory: MakeDirectory
) -> None:
    directory = make_directory(stub.url, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    assert directory.lookup(KNOWN) == CustomerLookup(exists=True)
    assert directory.lookup(KNOWN) == CustomerLookup(exists=True)
    assert stub.requests == 2  # no cache, but no failure either


# -- wiring and the CLI ------------------------------------------------------------------------


def test_bootstrap_uses_the_local_directory_without_a_url(sqlite_app: App) -> None:
    assert not isinstance(sqlite_app.customer_directory, HttpCustomerDirectory)
    assert sqlite_app.customer_directory_health() == {"kind": "local"}


def cli(tmp_path: Path, url: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORDTOOL_")}
    env |= {"ORDTOOL_DATA_DIR": str(tmp_path / "cli-data"), "ORDTOOL_CUSTOMER_SERVICE_URL": url}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ordtool", *args],
        env=env,
        cwd=tmp_path,  # no stray .env
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, time.monotonic() - started


CREATE = ("orders", "create", "--customer-id", "1", "--sku", "BOOK-1", "--quantity", "1")


def test_cli_exits_3_fast_with_one_line_when_the_service_is_down(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    done, _ = cli(tmp_path, url, *CREATE)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: customer service unavailable")
    assert "retry in" in lines[0]


def test_cli_gives_up_within_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The same command in-process, so that interpreter start-up (seconds on a loaded
    # machine) stays out of the measured time.
    from ordtool.cli import main as cli_main
    from ordtool.cli import shared

    for key in [key for key in os.environ if key.startswith("ORDTOOL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("ORDTOOL_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("ORDTOOL_CUSTOMER_SERVICE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["ordtool", *CREATE])
    monkeypatch.setitem(shared._state, "app", None)
    started = time.monotonic()
    try:
        with pytest.raises(SystemExit) as exited:
            cli_main.run()
        took = time.monotonic() - started
    finally:
        if shared._state["app"] is not None:
            shared._state["app"].close()
    assert exited.value.code == 3
    assert took < DEADLINE + MARGIN
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_places_orders_through_the_customer_service(
    tmp_path: Path, stub: StubCustomerService
) -> None:
    # Customer 1 exists only in the stub, not in the CLI's local database.
    done, _ = cli(
        tmp_path,
        stub.url,
        "orders",
        "create",
        "--customer-id",
        "1",
        "--sku",
        "B-1",
        "--quantity",
        "2",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert '"customer_id": 1' in done.stdout
    done, _ = cli(
        tmp_path,
        stub.url,
        "orders",
        "create",
        "--customer-id",
        "99",
        "--sku",
        "B-1",
        "--quantity",
        "2",
    )
    assert done.returncode == 2
    assert "customer 99 does not exist" in done.stderr


def test_redis_entries_are_never_answered_in_memory(
    stub: StubCustomerService, make_directory: MakeDirectory, redis_prefix: str
) -> None:
    directory = make_directory(stub.url, redis_url=REDIS_URL, cache_key_prefix=redis_prefix)
    assert directory.lookup(KNOWN) == CustomerLookup(exists=True)
    assert directory.lookup_in_memory(KNOWN) is None  # a Redis read is I/O: a thread's job

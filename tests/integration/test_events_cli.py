"""``ordtool events`` as a user runs it: child processes against the real broker and
databases; exit codes and one-line errors included."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete
from typer.testing import CliRunner

from ordtool.bootstrap import App
from ordtool.cli import events as events_cli
from ordtool.cli.main import app as cli_app
from ordtool.domain.clock import iso_z
from ordtool.messaging.lease import lease_state
from ordtool.store.tables import audit_events, orders_leases
from tests.integration.test_messaging_support import (
    a_customer,
    audit_rows,
    child_env,
    events_app_fixture,  # noqa: F401
    kill,
    place_orders,
    rabbitmqctl,
    ready,
    running,
    start_relay_process,
    unpublished,
    vhost_fixture,  # noqa: F401
    wait_until,
)
from tests.processes import run_ordtool

pytestmark = pytest.mark.timeout(180)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}/%2F"


def relayed_and_audited(app: App, count: int) -> None:
    """Place ``count`` orders and let a relay and the audit consumer handle them."""
    place_orders(app, a_customer(app), count)
    with ready(app.events.audit_consumer()), running(app.events.relay()):
        wait_until(lambda: len(audit_rows(app)) == count + 1, 30, "every event audited")


def test_every_events_command_has_help_with_an_example() -> None:
    names = [c.name or (c.callback.__name__ if c.callback else "")
             for c in events_cli.cli.registered_commands]
    assert set(names) == {"relay", "audit", "tail", "status", "replay", "verify"}
    for name in names:
        result = CliRunner().invoke(cli_app, ["events", name, "--help"])
        assert result.exit_code == 0, result.output
        assert f"Example: ordtool events {name}" in result.output


def test_verify_reports_a_deleted_audit_record_as_lost_and_exits_4(events_app: App) -> None:
    app = events_app
    relayed_and_audited(app, 5)
    env = child_env(app)
    clean = run_ordtool(["events", "verify", "--wait", "0", "--json"], env)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout) | {"lost_ids": []} == {
        "published": 6, "received": 6, "lost": 0, "pending": 0, "duplicates": 0,
        "extra_deliveries": 0, "lost_ids": [], "ok": True}
    victim = sorted(audit_rows(app))[0]
    with app.audit_engine.begin() as connection:
        connection.execute(delete(audit_events).where(audit_events.c.event_id == victim))
    broken = run_ordtool(["events", "verify", "--wait", "1", "--json"], env)
    assert broken.returncode == 4
    report = json.loads(broken.stdout)
    assert (report["lost"], report["lost_ids"], report["ok"]) == (1, [victim], False)
    assert broken.stderr.count("\n") == 1 and victim in broken.stderr


def test_status_shows_backlog_and_whether_the_broker_answers(events_app: App) -> None:
    app = events_app
    place_orders(app, a_customer(app), 3)
    report = json.loads(run_ordtool(["events", "status", "--json"], child_env(app)).stdout)
    outboxes = {o["database"]: o for o in report["outboxes"]}
    assert report["broker_reachable"] is True
    assert (outboxes["orders"]["backlog"], outboxes["customers"]["backlog"]) == (3, 1)
    assert outboxes["orders"]["oldest_unpublished"].endswith("Z")
    assert outboxes["orders"]["last_published"] is None
    down = run_ordtool(["events", "status", "--json"],
                       child_env(app, ORDTOOL_AMQP_URL=closed_port_url()))
    assert down.returncode == 0 and json.loads(down.stdout)["broker_reachable"] is False


def test_tail_follows_live_events_of_the_chosen_types(events_app: App, vhost: str) -> None:
    app = events_app
    customer_id = a_customer(app)
    tail = subprocess.Popen(
        [sys.executable, "-m", "ordtool", "events", "tail", "--type", "order.*", "--json",
         "--count", "2", "--timeout", "60"],
        env=child_env(app), cwd=app.settings.data_dir, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: "amq.gen-" in rabbitmqctl("list_queues", "-p", vhost, "name"), 30,
                   "the tail's private queue")
        place_orders(app, customer_id, 2)
        with running(app.events.relay()):
            out, err = tail.communicate(timeout=60)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(e["type"], e["data"]["sku"]) for e in lines] == [
        ("order.created", "SKU-0"), ("order.created", "SKU-1")]  # no customer.created


def test_broker_unreachable_is_exit_3_and_no_broker_configured_is_exit_2(
    events_app: App,
) -> None:
    down = child_env(events_app, ORDTOOL_AMQP_URL=closed_port_url())
    for args in (["tail", "--timeout", "5"], ["replay", "--since", "2026-01-01T00:00:00Z"]):
        result = run_ordtool(["events", *args], down)
        assert result.returncode == 3, result.stderr
        assert result.stderr.startswith("error: cannot reach the message broker")
        assert result.stderr.count("\n") == 1 and "guest:guest" not in result.stderr
    unset = child_env(events_app)
    del unset["ORDTOOL_AMQP_URL"]
    result = run_ordtool(["events", "relay"], unset)
    assert result.returncode == 2 and "ORDTOOL_AMQP_URL" in result.stderr


def test_replay_sends_retained_events_again_and_consumers_drop_them(events_app: App) -> None:
    app = events_app
    before = datetime.now(UTC) - timedelta(seconds=1)
    relayed_and_audited(app, 4)
    env = child_env(app)
    bad = run_ordtool(["events", "replay", "--since", "yesterday"], env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: since")
    result = run_ordtool(["events", "replay", "--since", iso_z(before), "--json"], env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["replayed"] == 5
    with ready(app.events.audit_consumer()):
        wait_until(lambda: set(audit_rows(app).values()) == {2}, 30, "a second delivery each")
    assert len(audit_rows(app)) == 5
    verified = app.events.verify(None, wait_s=0)
    assert (verified.lost, verified.duplicates) == (0, 5)


def test_relay_keeps_retrying_without_a_broker_and_stops_cleanly_on_sigterm(
    events_app: App, tmp_path: Path
) -> None:
    app = events_app
    place_orders(app, a_customer(app), 2)
    log = tmp_path / "relay.log"
    stranded = start_relay_process(app, log, ORDTOOL_AMQP_URL=closed_port_url())
    try:
        wait_until(lambda: "retrying" in log.read_text(), 30, "a failed attempt")
        assert stranded.poll() is None  # still trying, not given up
    finally:
        kill(stranded)
    relay = start_relay_process(app, log)
    try:
        wait_until(lambda: unpublished(app) == 0, 30, "the relay to publish")
        assert lease_state(app.orders_engine, orders_leases, "relay:orders") is not None
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(timeout=15) == 0
    finally:
        kill(relay)
    # A clean stop gives the leases up, so a standby need not wait for them to expire.
    assert lease_state(app.orders_engine, orders_leases, "relay:orders") is None

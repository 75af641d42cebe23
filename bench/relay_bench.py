"""Outbox relay benchmark (issue 4): the relay with confirms in flight, side by side in one run
with the three publishing modes design.md measured:

- relay: ``ordtool events relay``'s code (Relay.step until the outbox is empty): read a batch
  of outbox rows, publish it with publisher confirms kept in flight, mark the confirmed rows
  published; timed from the first pass to the last row marked;
- publisher: the same ConfirmingPublisher without the database (what the relay costs on top);
- no confirms: BlockingConnection.basic_publish in a loop, nothing confirmed (the ceiling: fast
  and unsafe, a message lost in a broker crash is never known);
- confirm-and-wait: BlockingChannel.confirm_delivery(), then basic_publish per message, each
  waiting for its own confirm;
- connection per message: open a connection, publish one message, close it (the old system).

Every mode publishes the same envelopes (order.created, as the outbox holds them) to the same
local broker, through the same topology (durable topic exchange, the quorum audit queue bound
to '#'), persistent and mandatory. After each mode the audit queue must hold exactly the
messages published (then it is purged), and after the relay every outbox row must be marked:
a benchmark that loses messages is worthless.

    python bench/relay_bench.py [--events 30000] [--confirm-wait-events 3000]
                                [--connection-events 2000] [--rounds 3]
                                [--backend sqlite|postgresql] [--amqp-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pika
from _support import REPO_DIR, fresh_pg_databases, shown
from pydantic import SecretStr
from sqlalchemy import func, select

from ordtool.bootstrap import App, upgrade_databases
from ordtool.config import EventsSettings, Settings
from ordtool.domain.events import Event, order_created
from ordtool.domain.orders import Order, OrderStatus
from ordtool.messaging import broker
from ordtool.messaging.publisher import ConfirmingPublisher, Outgoing
from ordtool.messaging.topology import Topology
from ordtool.store.tables import orders_outbox

RESULTS_DIR = REPO_DIR / "bench" / "results"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
# The targets.
TARGET_EVENTS_PER_S = 15_000
TARGET_OF_NO_CONFIRM = 0.6
TARGET_OVER_CONFIRM_WAIT = 10
TARGET_OVER_CONNECTION = 50


@dataclass
class Measured:
    mode: str
    events: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.events / self.seconds


# -- the messages -------------------------------------------------------------------------------


def events(count: int) -> list[Event]:
    now = datetime.now(UTC)
    return [
        order_created(Order(i, 1 + i % 1000, f"BOOK-{i % 97}", 1 + i % 5, OrderStatus.PENDING,
                            now, now))
        for i in range(1, count + 1)
    ]


def outgoing(batch: Sequence[Event]) -> list[Outgoing]:
    return [
        Outgoing(str(e.id), e.type, json.dumps(e.envelope(), separators=(",", ":")).encode())
        for e in batch
    ]


def properties(message: Outgoing) -> pika.BasicProperties:
    # What the relay sends (publisher._properties), so every mode carries the same bytes.
    return pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                message_id=message.message_id, type=message.routing_key)


# -- the broker ---------------------------------------------------------------------------------


class Broker:
    def __init__(self, url: str, exchange: str) -> None:
        self.settings = EventsSettings(exchange=exchange)
        self.params = broker.parameters(url, self.settings, "ordtool bench")
        self.topology = Topology(exchange, self.settings.max_attempts)
        with broker.blocking_channel(self.params) as channel:
            self.topology.declare(channel)

    def drain(self, expected: int) -> None:
        """Wait until the audit queue holds ``expected`` messages, then empty it."""
        deadline = time.monotonic() + 120
        with broker.blocking_channel(self.params) as channel:
            while True:
                depth = channel.queue_declare(self.topology.audit_queue, passive=True)
                count = depth.method.message_count
                if count == expected:
                    channel.queue_purge(self.topology.audit_queue)
                    return
                if count > expected or time.monotonic() > deadline:
                    raise SystemExit(f"the audit queue holds {count}, expected {expected}")
                time.sleep(0.1)

    def delete(self) -> None:
        with broker.blocking_channel(self.params) as channel:
            t = self.topology
            for queue in (t.audit_queue, t.dead_letter_queue):
                channel.queue_delete(queue)
            for exchange in (t.exchange, t.dead_letter_exchange):
                channel.exchange_delete(exchange)


# -- the modes ------------------------------------------------------------------------------------


def timed(bus: Broker, mode: str, count: int, run: Callable[[], None]) -> Measured:
    """Time ``run``; then check that the audit queue got exactly ``count`` messages."""
    start = time.perf_counter()
    run()
    measured = Measured(mode, count, time.perf_counter() - start)
    bus.drain(count)
    return measured


def relay_mode(bus: Broker, app: App, batch: Sequence[Event]) -> Measured:
    with app.orders_uow(write=True) as uow:
        uow.outbox.add(batch)
        uow.commit()
    relay = app.events.relay()

    def run() -> None:
        while relay.step():
            pass

    try:
        measured = timed(bus, "relay (outbox -> broker, confirms in flight)", len(batch), run)
    finally:
        relay.shutdown()
    with app.orders_engine.connect() as connection:
        left = connection.execute(
            select(func.count()).where(orders_outbox.c.published_at.is_(None))
        ).scalar_one()
    if left:
        raise SystemExit(f"the relay left {left} rows unpublished")
    return measured


def publisher_mode(bus: Broker, messages: Sequence[Outgoing]) -> Measured:
    publisher = ConfirmingPublisher(bus.params, bus.topology.exchange)
    size = bus.settings.batch_size

    def run() -> None:
        # As the relay does: the next batch is sent before the last one is settled.
        publisher.open(10)
        previous = None
        for start in range(0, len(messages), size):
            batch = publisher.send(messages[start:start + size])
            if previous is not None and not all(publisher.settle(previous, 30)):
                raise SystemExit("the broker did not confirm a batch")
            previous = batch
        if previous is not None and not all(publisher.settle(previous, 30)):
            raise SystemExit("the broker did not confirm a batch")
        publisher.close()

    return timed(bus, "publisher alone (confirms in flight, no database)", len(messages), run)


def no_confirm_mode(bus: Broker, messages: Sequence[Outgoing]) -> Measured:
    def run() -> None:
        connection = pika.BlockingConnection(bus.params)
        channel = connection.channel()
        for m in messages:
            channel.basic_publish(bus.topology.exchange, m.routing_key, m.body, properties(m),
                                  mandatory=True)
        connection.process_data_events(0)  # flush what is buffered
        connection.close()

    return timed(bus, "no confirms (BlockingConnection)", len(messages), run)


def confirm_wait_mode(bus: Broker, messages: Sequence[Outgoing]) -> Measured:
    def run() -> None:
        connection = pika.BlockingConnection(bus.params)
        channel = connection.channel()
        channel.confirm_delivery()
        for m in messages:
            channel.basic_publish(bus.topology.exchange, m.routing_key, m.body, properties(m),
                                  mandatory=True)
        connection.close()

    return timed(bus, "confirm-and-wait per message", len(messages), run)


def connection_per_message_mode(bus: Broker, messages: Sequence[Outgoing]) -> Measured:
    def run() -> None:
        for m in messages:
            connection = pika.BlockingConnection(bus.params)
            connection.channel().basic_publish(bus.topology.exchange, m.routing_key, m.body,
                                               properties(m), mandatory=True)
            connection.close()

    return timed(bus, "new connection per message", len(messages), run)


# -- the run --------------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_app(backend: str, amqp_url: str, exchange: str) -> Iterator[App]:
    with tempfile.TemporaryDirectory() as data_dir, contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        if backend == "postgresql":
            urls = stack.enter_context(fresh_pg_databases("orders", "customers"))
        settings = Settings(  # type: ignore[call-arg]
            environment="test", data_dir=Path(data_dir), amqp_url=SecretStr(amqp_url),
            orders_database_url=urls.get("orders"), customers_database_url=urls.get("customers"),
            events=EventsSettings(exchange=exchange), _env_file=None,
        )
        if backend == "postgresql":
            upgrade_databases(settings)
        app = App(settings)
        try:
            yield app
        finally:
            app.close()


def median(runs: Sequence[Measured]) -> Measured:
    best = statistics.median_low([r.seconds for r in runs])
    return next(r for r in runs if r.seconds == best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--confirm-wait-events", type=int, default=3_000)
    parser.add_argument("--connection-events", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of the fast modes (median)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    args = parser.parse_args()

    exchange = f"ordtool.bench.{uuid.uuid4().hex[:8]}"
    bus = Broker(args.amqp_url, exchange)
    fast: dict[str, list[Measured]] = {}
    try:
        for round_ in range(args.rounds):
            batch = events(args.events)
            messages = outgoing(batch)
            with fresh_app(args.backend, args.amqp_url, exchange) as app:
                runs = [relay_mode(bus, app, batch), publisher_mode(bus, messages),
                        no_confirm_mode(bus, messages)]
            for run in runs:
                fast.setdefault(run.mode, []).append(run)
                print(f"round {round_ + 1}: {run.mode}: {run.per_s:,.0f}/s", file=sys.stderr)
        slow_messages = outgoing(events(max(args.confirm_wait_events, args.connection_events)))
        confirm_wait = confirm_wait_mode(bus, slow_messages[: args.confirm_wait_events])
        connection = connection_per_message_mode(bus, slow_messages[: args.connection_events])
    finally:
        bus.delete()
    relay, publisher, no_confirm = (median(runs) for runs in fast.values())
    report(args, [relay, publisher, no_confirm, confirm_wait, connection])


def report(args: argparse.Namespace, results: Sequence[Measured]) -> None:
    relay, _publisher, no_confirm, confirm_wait, connection = results
    ratios = {
        "relay / no confirms": relay.per_s / no_confirm.per_s,
        "relay / confirm-and-wait": relay.per_s / confirm_wait.per_s,
        "relay / connection per message": relay.per_s / connection.per_s,
    }
    targets = {
        f"relay >= {TARGET_EVENTS_PER_S:,} events/s": relay.per_s >= TARGET_EVENTS_PER_S,
        f"relay >= {TARGET_OF_NO_CONFIRM} x no confirms":
            ratios["relay / no confirms"] >= TARGET_OF_NO_CONFIRM,
        f"relay >= {TARGET_OVER_CONFIRM_WAIT} x confirm-and-wait":
            ratios["relay / confirm-and-wait"] >= TARGET_OVER_CONFIRM_WAIT,
        f"relay >= {TARGET_OVER_CONNECTION} x connection per message":
            ratios["relay / connection per message"] >= TARGET_OVER_CONNECTION,
    }
    command = shown([sys.executable.rsplit("/", 1)[-1], "bench/relay_bench.py", *sys.argv[1:]])
    print(f"\n{command}\n")
    print("| mode | events | seconds | events/s |\n|---|---:|---:|---:|")
    for r in results:
        print(f"| {r.mode} | {r.events:,} | {r.seconds:.2f} | {r.per_s:,.0f} |")
    print()
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    for name, met in targets.items():
        print(f"target {name}: {'met' if met else 'MISSED'}")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS_DIR / f"relay_bench-{stamp}.json").write_text(json.dumps({
        "command": command, "backend": args.backend, "rounds": args.rounds,
        "machine": {"python": platform.python_version(), "pika": pika.__version__,
                    "cpus": __import__("os").cpu_count()},
        "results": [asdict(r) | {"per_s": r.per_s} for r in results],
        "ratios": ratios, "targets": targets,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()

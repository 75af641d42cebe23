"""ordtool events: run the outbox relay and the audit consumer, follow, inspect, replay and
verify the order system's events (docs/events.md)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import datetime
from enum import StrEnum
from types import FrameType
from typing import Annotated, Any

import typer

from ordtool.cli import shared
from ordtool.domain.clock import iso_z
from ordtool.domain.commands import Command, parse_input
from ordtool.domain.values import UtcDatetime
from ordtool.errors import CheckFailed
from ordtool.interpreter import tune_for_serving
from ordtool.messaging.codec import Source
from ordtool.messaging.consumer import QueueSpec, Received
from ordtool.messaging.runtime import EventsStatus

cli = typer.Typer(
    help="Relay, follow, inspect, replay and verify the order system's events.",
    no_args_is_help=True,
)


class Database(StrEnum):
    orders = "orders"
    customers = "customers"


_SOURCES: dict[Database, Source] = {Database.orders: "orders", Database.customers: "customers"}


class _Window(Command):
    since: UtcDatetime | None = None


def _since(raw: str | None) -> datetime | None:
    return parse_input(_Window, {"since": raw}).since


def _stop_on_signals() -> threading.Event:
    """Ctrl-C and SIGTERM ask the long-running commands to finish cleanly."""
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop


def _configure_logging() -> None:
    from ordtool.logs import configure_logging

    configure_logging(shared.app().settings)
    # pika narrates every connection step at INFO; ordtool logs what matters itself.
    logging.getLogger("pika").setLevel(logging.WARNING)


@cli.command()
def relay() -> None:
    """Publish both databases' outboxes to RabbitMQ until Ctrl-C or SIGTERM.

    Needs ORDTOOL_AMQP_URL. One relay per outbox is active (a lease in its database); start
    a second one anywhere as a standby that takes over when the first dies.

    Example: ordtool events relay
    """
    events = shared.app().events
    running = events.relay()
    _configure_logging()
    tune_for_serving()
    shared.note(f"relay {running.holder}: publishing to {events.topology.exchange}; Ctrl-C stops")
    running.run(_stop_on_signals())


@cli.command()
def audit() -> None:
    """Record every event in the audit table (what `events verify` checks) until Ctrl-C.

    Example: ordtool events audit
    """
    consumer = shared.app().events.audit_consumer()
    _configure_logging()
    tune_for_serving()
    shared.note("audit consumer: recording events; Ctrl-C stops")
    consumer.run(_stop_on_signals())


@cli.command()
def tail(
    type_pattern: Annotated[
        str, typer.Option("--type", metavar="PATTERN",
                          help="Event types to follow: order.created, order.*, customer.#.")
    ] = "#",
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON envelope per line.")
    ] = False,
    count: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many events.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0.1, metavar="SECONDS", help="Stop after this long.")
    ] = None,
) -> None:
    """Follow live events as they are published (from now on; nothing is consumed from the
    durable queues).

    Example: ordtool events tail --type 'order.*' --count 10 --json
    """
    events = shared.app().events
    stop = _stop_on_signals()
    seen = 0

    def show(received: Received) -> bool:
        nonlocal seen
        _print_event(received, json_output)
        seen += 1
        if count is not None and seen >= count:
            stop.set()
        return True

    consumer = events.consumer("tail", QueueSpec((type_pattern,)), show)
    if timeout is not None:
        timer = threading.Timer(timeout, stop.set)
        timer.daemon = True
        timer.start()
    consumer.run(stop, fail_fast=True)


def _print_event(received: Received, json_output: bool) -> None:
    envelope = received.envelope
    if json_output:
        sys.stdout.write(envelope.model_dump_json() + "\n")
    else:
        data = json.dumps(envelope.data, separators=(",", ":"), ensure_ascii=False)
        line = f"{iso_z(envelope.occurred_at)}  {envelope.type:<22} {envelope.id}  {data}"
        shared.console.print(line, highlight=False, markup=False, soft_wrap=True)
    sys.stdout.flush()


@cli.command()
def status(json_output: shared.JsonFlag = False) -> None:
    """Show each outbox's backlog, its oldest unpublished event, its last publish and relay,
    and whether the broker answers.

    Example: ordtool events status --json
    """
    report = shared.app().events.status()
    if json_output:
        shared.print_json(_status_dict(report))
        return
    rows = [
        [
            s.outbox.source,
            str(s.outbox.backlog),
            _when(s.outbox.oldest_unpublished),
            _when(s.outbox.last_published),
            str(s.outbox.retained),
            s.relay.holder if s.relay else "-",
        ]
        for s in report.sources
    ]
    shared.print_table(
        "outboxes", ["database", "backlog", "oldest unpublished", "last publish", "retained",
                     "relay lease"], rows,
    )
    depths = ", ".join(f"{q} {'-' if d is None else d}" for q, d in report.queue_depths.items())
    reachable = "reachable" if report.broker_reachable else "UNREACHABLE"
    shared.console.print(f"broker: {reachable}; queue depths: {depths}", highlight=False)


def _when(moment: datetime | None) -> str:
    return iso_z(moment) if moment else "-"


def _status_dict(report: EventsStatus) -> dict[str, Any]:
    return {
        "broker_reachable": report.broker_reachable,
        "queue_depths": report.queue_depths,
        "outboxes": [
            {
                "database": s.outbox.source,
                "backlog": s.outbox.backlog,
                "oldest_unpublished": _iso(s.outbox.oldest_unpublished),
                "last_published": _iso(s.outbox.last_published),
                "retained": s.outbox.retained,
                "relay": {"holder": s.relay.holder, "expires_at": iso_z(s.relay.expires_at)}
                if s.relay else None,
            }
            for s in report.sources
        ],
    }


def _iso(moment: datetime | None) -> str | None:
    return iso_z(moment) if moment else None


@cli.command()
def replay(
    since: Annotated[str, typer.Option(metavar="TIME",
                                       help="ISO 8601 with a zone, e.g. 2026-12-01T00:00:00Z.")],
    database: Annotated[
        Database | None, typer.Option(help="Only this database's events (default: both).")
    ] = None,
    json_output: shared.JsonFlag = False,
) -> None:
    """Publish again the retained events that occurred since TIME; consumers drop the ones
    they already handled.

    Example: ordtool events replay --since 2026-12-01T00:00:00Z
    """
    start = _since(since)
    assert start is not None  # the option is required
    events = shared.app().events
    only = _SOURCES[database] if database else None
    with shared.progress_bar("replaying", total=events.replayable(start, only)) as advance:
        sent = events.replay(start, only, advance)
    if json_output:
        shared.print_json({"replayed": sent, "since": iso_z(start)})
    else:
        shared.console.print(f"replayed {sent} events since {iso_z(start)}", highlight=False)


@cli.command()
def verify(
    since: Annotated[str | None, typer.Option(
        metavar="TIME", help="Only events that occurred since then (ISO 8601 with a zone).")
    ] = None,
    wait: Annotated[float, typer.Option(
        min=0, metavar="SECONDS", help="Give the audit consumer this long to catch up.")
    ] = 10.0,
    json_output: shared.JsonFlag = False,
) -> None:
    """Compare the events both databases published with those the audit consumer received;
    exit 4 if any was lost.

    Example: ordtool events verify --wait 30 --json
    """
    result = shared.app().events.verify(_since(since), wait)
    if json_output:
        shared.print_json(result.as_dict())
    else:
        shared.print_record({k: v for k, v in result.as_dict().items() if k != "lost_ids"})
    if not result.ok:
        shown = ", ".join(result.lost_ids)
        raise CheckFailed(
            f"{result.lost} published events never reached the audit consumer: {shown}",
            hint="check the audit consumer (ordtool events audit) and its queue; "
            "ordtool events replay --since TIME sends them again",
        )

"""Event latency (issue 4): from an order's commit to the audit consumer, at a fixed rate.

The stack is the one an operator runs: ``ordtool up --detach`` with ORDTOOL_AMQP_URL set
(customer service, order service, outbox relay, audit consumer) on embedded SQLite (or, with
``--backend postgresql``, fresh PostgreSQL databases), in a fresh data directory and a fresh
RabbitMQ vhost, all removed afterwards. Customers are seeded first
(``ordtool seed --idempotent --count 10000``) and each is ordered once (the order service's
customer cache warm, as in latency_slo.py); then bench/fixed_rate.py sends POST /orders at
RATE/s for DURATION s.

For every order.created event committed during the run, latency = ``audit_events.received_at``
(in the audit database: when the audit consumer recorded it) - ``occurred_at`` (the order's
commit-time stamp, in the orders database's outbox), in an HDR histogram. The outbox's
``published_at`` (stamped once the broker confirmed) splits it:
commit -> marked published is the relay's share. Target: p99 <= 50 ms.
The generator, both services, the relay, the audit consumer and RabbitMQ share 2 cores.

The generator is bench/fixed_rate.py (aiohttp, Python) by default. It needs 0.3-0.7 of the 2
cores at 1,000/s, which the system under test then lacks; ``--generator wrk`` sends the same
orders from wrk (C) instead, paced by bench/post_orders.lua at the same fixed rate (each
thread's k-th request due at start + k / rate, at most ``--connections`` in flight), for
about a tenth of a core. wrk times each request from its actual send, not its intended time.

With the service's default 60 s cache TTL the warmed entries expire during the run and
look-ups go to the customer service again; ``--fresh-s 3600`` keeps them, to measure the
events path apart from that.

    python bench/event_latency.py [--rate 1000 [--rate 500 ...]] [--duration 60]
                                  [--fresh-s 3600] [--backend postgresql]
                                  [--generator wrk]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from _support import (
    REPO_DIR,
    Bench,
    WrkResult,
    base_env,
    bench_dir,
    cpu_seconds,
    customer_ids,
    free_port,
    fresh_pg_databases,
    machine_note,
    ordtool,
    place_each_once,
    run_wrk,
    shown,
    write_ids,
)
from fixed_rate import HIGHEST_US, Result, order_factory, run_sync
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]
from sqlalchemy import Engine, func, select

from ordtool.domain.clock import iso_z, utc_now
from ordtool.store.engine import make_engine
from ordtool.store.tables import audit_events, customers_outbox, orders_outbox

TARGET_P99_MS = 50.0
PERCENTILES = (50.0, 90.0, 99.0)
AMQP_BASE = "amqp://guest:guest@127.0.0.1:5672/"
RESULTS_DIR = REPO_DIR / "bench" / "results"
DRAIN_TIMEOUT_S = 180.0
BUCKET_S = 10  # the latency timeline's resolution


# -- the broker and the stack ---------------------------------------------------------------------


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                            check=False, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


@contextlib.contextmanager
def fresh_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of this run's own that guest may use; deleted with all in it after."""
    name = f"ordtool-bench-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


@dataclass
class EventsStack:
    """A stack started with ``ordtool up --detach`` in its own data directory and vhost."""

    env: dict[str, str]
    vhost: str
    data_dir: Path
    orders_url: str
    admin_key: str
    customer_ids: list[int]
    commands: list[str]
    database_urls: Mapping[str, str]  # "orders", "customers" and "audit"
    orders_db: Engine = field(init=False)
    customers_db: Engine = field(init=False)
    audit_db: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.orders_db = make_engine(self.database_urls["orders"])
        self.customers_db = make_engine(self.database_urls["customers"])
        self.audit_db = make_engine(self.database_urls["audit"])

    def pids(self) -> dict[str, int]:
        """The stack's processes by name (ordtool up's state file)."""
        entries = json.loads((self.data_dir / "stack.json").read_text())
        return {entry["name"]: entry["pid"] for entry in entries}

    def log(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def dispose(self) -> None:
        for engine in (self.orders_db, self.customers_db, self.audit_db):
            engine.dispose()


def _shown_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "ORDTOOL_ENVIRONMENT"}


@contextlib.contextmanager
def events_stack(bench: Bench, customers: int, extra_env: Mapping[str, str] | None = None,
                 pg: Mapping[str, str] | None = None) -> Iterator[EventsStack]:
    """Fresh vhost and data dir, migrate, seed, ``ordtool up --detach``; ``ordtool down`` and
    the vhost deleted however the block ends. ``pg``: the PostgreSQL databases to use."""
    with fresh_vhost() as vhost:
        data_dir = bench.workdir / "data"
        urls = dict(pg or {name: f"sqlite:///{data_dir / f'{name}.db'}"
                           for name in ("orders", "customers", "audit")})
        env = base_env(bench, "data", pg) | {
            "ORDTOOL_AMQP_URL": AMQP_BASE + quote(vhost, safe=""),
            "ORDTOOL_ORDERS_PORT": str(free_port()),
            "ORDTOOL_CUSTOMERS_PORT": str(free_port()),
        } | dict(extra_env or {})
        commands = [f"rabbitmqctl add_vhost {vhost}",
                    f"rabbitmqctl set_permissions -p {vhost} guest '.*' '.*' '.*'"]

        def run(*args: str) -> str:
            commands.append(shown(["ordtool", *args], _shown_env(env)))
            return ordtool(args, env)

        run("db", "upgrade")
        run("seed", "--idempotent", "--count", str(customers))
        stack: EventsStack | None = None
        try:
            run("up", "--detach")
            stack = EventsStack(
                env, vhost, data_dir, f"http://127.0.0.1:{env['ORDTOOL_ORDERS_PORT']}",
                (data_dir / "admin.key").read_text().strip(),
                customer_ids(urls["customers"]), commands, urls,
            )
            yield stack
        finally:
            with contextlib.suppress(RuntimeError):
                run("down")
            commands.append(f"rabbitmqctl delete_vhost {vhost}")
            if stack is not None:
                stack.dispose()


def fresh_env(fresh_s: float | None) -> dict[str, str]:
    """Settings for the customer cache's TTL, when one is asked for."""
    return {} if fresh_s is None else {"ORDTOOL_CUSTOMER_CHECK__CACHE_FRESH_S": f"{fresh_s:g}"}


def backlog(stack: EventsStack) -> tuple[int, int]:
    """(events not yet published, published events the audit consumer has not recorded)."""
    published = unpublished = 0
    for engine, table in ((stack.orders_db, orders_outbox),
                          (stack.customers_db, customers_outbox)):
        with engine.connect() as connection:
            total, marked = connection.execute(
                select(func.count(), func.count(table.c.published_at))).one()
        published += marked
        unpublished += total - marked
    with stack.audit_db.connect() as connection:
        audited = connection.execute(select(func.count()).select_from(audit_events)).scalar_one()
    return unpublished, max(0, published - audited)


def wait_drained(stack: EventsStack, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
    """Wait until every outbox row is published and recorded by the audit consumer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if backlog(stack) == (0, 0):
            return True
        time.sleep(0.5)
    return False


def verify(stack: EventsStack, since: datetime) -> dict[str, Any]:
    """``ordtool events verify``: were all the run's published events received?"""
    args = ["events", "verify", "--since", iso_z(since), "--wait", "60", "--json"]
    stack.commands.append(shown(["ordtool", *args], _shown_env(stack.env)))
    argv = [sys.executable, "-m", "ordtool", *args]
    result = subprocess.run(argv, env=os.environ | stack.env, capture_output=True, text=True,
                            cwd=REPO_DIR, check=False, timeout=180)
    if result.returncode not in (0, 4):
        raise RuntimeError(f"events verify failed ({result.returncode}): {result.stderr}")
    verdict: dict[str, Any] = json.loads(result.stdout)
    return verdict


# -- CPU: who used the 2 cores -------------------------------------------------------------------


def rabbitmq_pid() -> int | None:
    """The broker's Erlang VM, to read its CPU time (read only, never signalled): the oldest
    beam.smp mentioning rabbit (rabbitmqctl runs short-lived ones of its own)."""
    found: list[tuple[int, int]] = []  # (start time in clock ticks, pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                cmdline = (entry / "cmdline").read_bytes()
                if b"beam.smp" in cmdline and b"rabbit" in cmdline:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    found.append((int(stat[19]), int(entry.name)))
    return min(found)[1] if found else None


def cpu_snapshot(stack: EventsStack) -> dict[str, float]:
    pids = stack.pids()
    broker = rabbitmq_pid()
    if broker is not None:
        pids["rabbitmq"] = broker
    snapshot = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            snapshot[name] = cpu_seconds(pid)
    # this process (fixed_rate.py runs in it) and its waited-for children (wrk)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    snapshot["generator"] = time.process_time() + children.ru_utime + children.ru_stime
    return snapshot


def cpu_used(before: Mapping[str, float], after: Mapping[str, float],
             seconds: float) -> dict[str, float]:
    """Cores used on average by each process over ``seconds``."""
    return {name: round((after[name] - before[name]) / seconds, 2)
            for name in after if name in before}


# -- the measurement ----------------------------------------------------------------------------


def _histogram() -> HdrHistogram:
    return HdrHistogram(1, HIGHEST_US, 3)


def _record(histogram: HdrHistogram, start: datetime, end: datetime) -> None:
    micros = int((end - start).total_seconds() * 1e6)
    histogram.record_value(max(1, min(HIGHEST_US, micros)))


def table(histogram: HdrHistogram) -> dict[str, float]:
    row = {f"p{p:g}": histogram.get_value_at_percentile(p) / 1000 for p in PERCENTILES}
    return row | {"max": histogram.get_max_value() / 1000, "count": histogram.get_total_count()}


@dataclass
class EventLatency:
    """The run's order.created events: committed (in the outbox), received (audited)."""

    committed: int = 0
    received: int = 0
    commit_to_audit: HdrHistogram = field(default_factory=_histogram)
    commit_to_marked: HdrHistogram = field(default_factory=_histogram)
    # per BUCKET_S seconds of commit time: its own commit -> audit histogram
    timeline: dict[int, HdrHistogram] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "committed": self.committed, "received": self.received,
            "commit_to_audit_ms": table(self.commit_to_audit),
            "commit_to_published_mark_ms": table(self.commit_to_marked),
            "timeline": {f"{second}s": table(h) for second, h in sorted(self.timeline.items())},
        }


def _window_rows(
    stack: EventsStack, start: datetime, end: datetime
) -> list[tuple[datetime, datetime | None, datetime | None]]:
    """(occurred_at, published_at, received_at) of the window's order.created events: the
    outbox is in the orders database, the audit record in the audit database."""
    outbox, audit = orders_outbox, audit_events
    committed = (
        select(outbox.c.event_id, outbox.c.occurred_at, outbox.c.published_at)
        .where(outbox.c.event_type == "order.created")
        .where(outbox.c.occurred_at >= start, outbox.c.occurred_at <= end)
    )
    audited = (
        select(audit.c.event_id, audit.c.received_at)
        .where(audit.c.event_type == "order.created")
        .where(audit.c.occurred_at >= start, audit.c.occurred_at <= end)
    )
    with stack.orders_db.connect() as connection:
        rows = list(connection.execute(committed))
    with stack.audit_db.connect() as connection:
        received = {row.event_id: row.received_at for row in connection.execute(audited)}
    return [(row.occurred_at, row.published_at, received.get(row.event_id)) for row in rows]


def measure(stack: EventsStack, start: datetime, end: datetime) -> EventLatency:
    """Wait until the window's events have all reached the audit consumer (or the drain
    timeout passed), then read their latencies."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        rows = _window_rows(stack, start, end)
        if all(received is not None for *_, received in rows) or time.monotonic() > deadline:
            break
        time.sleep(1)
    figures = EventLatency(committed=len(rows))
    for occurred, published, received in rows:
        if published is not None:
            _record(figures.commit_to_marked, occurred, published)
        if received is None:
            continue
        figures.received += 1
        _record(figures.commit_to_audit, occurred, received)
        bucket = int((occurred - start).total_seconds()) // BUCKET_S * BUCKET_S
        _record(figures.timeline.setdefault(bucket, _histogram()), occurred, received)
    return figures


@dataclass
class PacedWrk:
    """wrk's figures, shaped as fixed_rate.Result's for RateRun."""

    rate: float
    duration_s: float
    wrk: WrkResult

    @property
    def intended(self) -> int:
        return int(self.rate * self.duration_s)

    @property
    def ok(self) -> int:
        return self.wrk.requests - self.wrk.non_2xx

    def lines(self) -> list[str]:
        w = self.wrk
        latency = "  ".join(f"{k} {v:.1f}" for k, v in w.latency_ms.items())
        return [
            f"wrk paced at {self.rate:g}/s for {self.duration_s:g} s: {w.requests} answered "
            f"({w.rps:.1f}/s), non-2xx {w.non_2xx}, socket errors {w.socket_errors}",
            f"latency ms from each request's actual send (wrk): {latency}",
            f"  {w.command}",
        ]

    def summary(self) -> dict[str, Any]:
        w = self.wrk
        return {"generator": "wrk", "requests": w.requests, "rps": w.rps,
                "non_2xx": w.non_2xx, "socket_errors": w.socket_errors,
                "latency_ms_from_send": w.latency_ms, "command": w.command}


@dataclass
class RateRun:
    rate: float
    result: Result | PacedWrk
    events: EventLatency
    cpu_cores: dict[str, float]
    verify: dict[str, Any]

    @property
    def met(self) -> bool:
        p99 = self.events.commit_to_audit.get_value_at_percentile(99) / 1000
        return p99 <= TARGET_P99_MS and self.events.received == self.events.committed > 0

    def lines(self) -> list[str]:
        e = self.events.summary()

        def fmt(row: Mapping[str, float]) -> str:
            return "  ".join(f"{k} {v:.1f}" for k, v in row.items() if k != "count")

        p99 = e["commit_to_audit_ms"]["p99"]
        return [
            *self.result.lines(),
            f"orders sent {self.result.intended}, accepted (2xx) {self.result.ok}; "
            f"order.created committed {e['committed']}, recorded by the audit consumer "
            f"{e['received']}",
            f"event latency ms, commit -> audit consumer: {fmt(e['commit_to_audit_ms'])}",
            f"event latency ms, commit -> marked published: "
            f"{fmt(e['commit_to_published_mark_ms'])}",
            "commit -> audit by commit second (p99 / max ms): " + ", ".join(
                f"{sec}: {row['p99']:.0f}/{row['max']:.0f}" for sec, row in e["timeline"].items()),
            f"cores used (average over the run): {self.cpu_cores}",
            f"events verify: {({k: v for k, v in self.verify.items() if k != 'lost_ids'})}",
            f"target p99 <= {TARGET_P99_MS:g} ms, every event received: "
            f"{'MET' if self.met else 'NOT MET'} (p99 {p99:.1f} ms)",
        ]

    def summary(self) -> dict[str, Any]:
        return {"rate": self.rate, "http": self.result.summary(),
                "events": self.events.summary(), "cpu_cores": self.cpu_cores,
                "verify": self.verify, "target_met": self.met}


def run_rate(stack: EventsStack, rate: float, args: argparse.Namespace) -> RateRun:
    if not wait_drained(stack):
        print(f"  warning: backlog before the run: {backlog(stack)}", file=sys.stderr)
    ids = list(stack.customer_ids)
    random.Random(7).shuffle(ids)
    before, start, clock = cpu_snapshot(stack), utc_now(), time.monotonic()
    result: Result | PacedWrk
    if args.generator == "wrk":
        result = paced_wrk(stack, rate, args, ids)
    else:
        result = run_sync(stack.orders_url, rate, args.duration,
                          order_factory(stack.admin_key, ids),
                          connections=args.connections, timeout_s=args.timeout)
    cpu = cpu_used(before, cpu_snapshot(stack), time.monotonic() - clock)
    end = utc_now()
    events = measure(stack, start, end)
    return RateRun(rate, result, events, cpu, verify(stack, start))


def paced_wrk(stack: EventsStack, rate: float, args: argparse.Namespace,
              ids: Sequence[int]) -> PacedWrk:
    ids_file = write_ids(stack.data_dir.parent / "paced_ids.txt", ids)
    env = {"BENCH_KEY": stack.admin_key, "BENCH_CUSTOMER_IDS": str(ids_file)}
    result = run_wrk(f"{stack.orders_url}/orders", connections=args.connections,
                     duration_s=int(args.duration), threads=1, env=env,
                     timeout_s=int(args.timeout), rate=rate)
    return PacedWrk(rate, args.duration, result)


def save(runs: Sequence[RateRun], args: argparse.Namespace, notes: Mapping[str, str],
         commands: Sequence[str]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"event_latency-{utc_now().strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps({
        "argv": sys.argv, "duration_s": args.duration, **notes,
        "runs": [r.summary() for r in runs], "commands": list(commands),
    }, indent=2))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, action="append",
                        help="orders per second (repeat for several runs on one stack; "
                        "default 1000)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    parser.add_argument("--customers", type=int, default=10_000, help="generated customers")
    parser.add_argument("--connections", type=int, default=500, help="generator's pool")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s)")
    parser.add_argument("--no-warm", action="store_true",
                        help="skip the one order per customer that warms the cache")
    parser.add_argument("--fresh-s", type=float, metavar="SECONDS",
                        help="the order service's customer cache TTL "
                        "(ORDTOOL_CUSTOMER_CHECK__CACHE_FRESH_S; default the service's 60 s, "
                        "which expires the warmed entries during the run)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the three databases: embedded SQLite files, or fresh PostgreSQL "
                        "databases (dropped afterwards)")
    parser.add_argument("--generator", choices=("aiohttp", "wrk"), default="aiohttp",
                        help="bench/fixed_rate.py, or wrk paced by bench/post_orders.lua")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    rates = args.rate or [1000.0]
    runs: list[RateRun] = []
    notes = {"machine_before": machine_note()}
    print(f"machine before: {notes['machine_before']}")
    databases = (fresh_pg_databases("orders", "customers", "audit") if args.backend == "postgresql"
                 else contextlib.nullcontext(None))
    with bench_dir("events", keep=args.keep) as bench, databases as pg, \
            events_stack(bench, args.customers, fresh_env(args.fresh_s), pg) as stack:
        if not args.no_warm:
            statuses = place_each_once(stack.orders_url, stack.admin_key, stack.customer_ids)
            print(f"one order per customer first: {dict(statuses)}", file=sys.stderr)
        for rate in rates:
            print(f"== {rate:g} orders/s for {args.duration:g} s", file=sys.stderr)
            runs.append(run_rate(stack, rate, args))
            print(f"\n{rate:g} orders/s for {args.duration:g} s "
                  f"(machine now: {machine_note()})")
            print("\n".join("  " + line for line in runs[-1].lines()))
        commands = stack.commands
    notes["machine_after"] = machine_note()
    print(f"machine after: {notes['machine_after']}")
    print(f"results: {save(runs, args, notes, commands)}")
    print("\ncommands:\n  python " + " ".join(sys.argv))
    print("\n".join("  " + c for c in commands))
    return 0 if runs and runs[0].met else 4


if __name__ == "__main__":
    sys.exit(main())

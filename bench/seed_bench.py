"""Seeding benchmark (issue 2): ordtool's bulk seeding against a naive ORM loop.

One run measures, side by side, on a fresh embedded SQLite (the engine settings ordtool uses)
and on a fresh PostgreSQL database:

- bulk: what `ordtool seed --idempotent --count N` does (generate_customers + seed_customers),
  the first run into an empty database and the idempotent re-run;
- naive: one ORM object per row and a commit per row, writing the same customers and the same
  outbox events (it also looks each email up first, as an idempotent loop must);
- cli: `ordtool seed --idempotent --count N --faker-seed 1` end to end with a fresh
  ORDTOOL_DATA_DIR, twice (what an operator runs; SQLite only).

After every run the database is checked to hold exactly the expected customers and one
matching customer.created outbox row each: a benchmark that writes the wrong thing is worthless.

    python bench/seed_bench.py [--count 100000] [--backends sqlite,postgresql]
                               [--naive-count 5000] [--repeat 3] [--no-cli]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy
from _support import REPO_DIR, fresh_pg_databases, shown
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, registry

from ordtool.bootstrap import App, upgrade_databases
from ordtool.config import Settings
from ordtool.domain.clock import utc_now
from ordtool.domain.customers import Customer
from ordtool.domain.events import CUSTOMER_CREATED, customer_created
from ordtool.services.generated_customers import generate_customers
from ordtool.services.seeding import SeedRecord, SeedReport, seed_customers
from ordtool.store.tables import customers, customers_outbox

RESULTS_DIR = REPO_DIR / "bench" / "results"
BACKENDS = ("sqlite", "postgresql")
# The targets, for the SQLite embedded default.
TARGET_FIRST_S = 10.0
TARGET_RERUN_S = 3.0
TARGET_RATIO = 20.0

Expected = dict[str, tuple[str, str]]  # email -> (name, address)


# --- the naive baseline: one ORM object per row, a commit per row --------------------------


class CustomerRow:
    id: int

    def __init__(self, name: str, email: str, address: str, now: datetime) -> None:
        self.name, self.email, self.address = name, email, address
        self.created_at = self.updated_at = now


class OutboxRow:
    def __init__(self, customer: CustomerRow) -> None:
        event = customer_created(
            Customer(
                customer.id,
                customer.name,
                customer.email,
                customer.address,
                customer.created_at,
                customer.updated_at,
            )
        )
        self.event_id = str(event.id)
        self.event_type = event.type
        self.aggregate_id = event.aggregate_id
        self.payload = json.dumps(event.envelope(), separators=(",", ":"))
        self.occurred_at = event.occurred_at


_orm = registry()
_orm.map_imperatively(CustomerRow, customers)
_orm.map_imperatively(OutboxRow, customers_outbox)


def naive_seed(engine: Engine, records: Sequence[SeedRecord]) -> SeedReport:
    """How the old system seeded: look the email up, add, flush for the id, add the event,
    commit; row after row."""
    created = 0
    with Session(engine) as session:
        for record in records:
            wanted = record.customer
            found = session.scalar(select(CustomerRow).where(customers.c.email == wanted.email))
            if found is None:
                row = CustomerRow(wanted.name, wanted.email, wanted.address, utc_now())
                session.add(row)
                session.flush()  # assigns row.id, which the event carries
                session.add(OutboxRow(row))
                created += 1
            session.commit()
    return SeedReport(created, 0, len(records) - created)


# --- fresh databases -------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_app(backend: str) -> Iterator[App]:
    """An App on a brand-new customers database: SQLite in a new data directory (on the same
    disk as the default one), or a new PostgreSQL database migrated like `ordtool db upgrade`."""
    with (
        tempfile.TemporaryDirectory(prefix="ordtool-seed-bench-") as data_dir,
        _customers_url(backend) as url,
    ):
        settings = Settings(
            environment="test", data_dir=Path(data_dir), customers_database_url=url, _env_file=None
        )
        if url is not None:
            upgrade_databases(settings, ("customers",))
        app = App(settings)
        try:
            yield app
        finally:
            app.close()


@contextlib.contextmanager
def _customers_url(backend: str) -> Iterator[str | None]:
    """None for the embedded SQLite; else the URL of a new PostgreSQL database, dropped after."""
    if backend == "sqlite":
        yield None
        return
    with fresh_pg_databases("customers") as urls:
        yield urls["customers"]


# --- verification ----------------------------------------------------------------------------


def verify(engine: Engine, expected: Expected) -> None:
    """The database holds exactly the expected customers, each with exactly one
    customer.created event that describes it; raise if not."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(customers.c.id, customers.c.email, customers.c.name, customers.c.address)
        ).all()
        events = connection.execute(
            select(
                customers_outbox.c.event_id,
                customers_outbox.c.event_type,
                customers_outbox.c.aggregate_id,
                customers_outbox.c.payload,
            )
        ).all()
    stored = {row.email: (row.name, row.address) for row in rows}
    _check(len(rows) == len(expected), f"{len(rows)} customers, expected {len(expected)}")
    _check(stored == expected, "the customers differ from the generated ones")
    by_id = {row.id: row for row in rows}
    _check(len(events) == len(rows), f"{len(events)} outbox rows for {len(rows)} customers")
    _check({e.aggregate_id for e in events} == set(by_id), "outbox rows do not match customer ids")
    _check(len({e.event_id for e in events}) == len(events), "duplicate event ids")
    for event in events:
        envelope = json.loads(event.payload)
        data, customer = envelope["data"], by_id[event.aggregate_id]
        _check(
            event.event_type == envelope["type"] == CUSTOMER_CREATED
            and envelope["id"] == event.event_id
            and (data["id"], data["email"], data["name"], data["address"])
            == (customer.id, customer.email, customer.name, customer.address),
            f"outbox row {event.event_id} does not describe customer {event.aggregate_id}",
        )


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(f"verification failed: {message}")


def count_customers(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(customers)).scalar_one())


# --- measurements ----------------------------------------------------------------------------


@dataclass
class Runs:
    """Wall-clock seconds of each run, and this process's CPU seconds: CPU time hardly moves
    when other work shares the machine, so it shows how much of a slow figure is noise (for
    PostgreSQL it leaves out the server's share)."""

    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.wall_s)


def measure(seed: Callable[[], SeedReport], should_say: SeedReport, runs: Runs) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    report = seed()
    runs.wall_s.append(time.perf_counter() - wall)
    runs.cpu_s.append(time.process_time() - cpu)
    _check(report == should_say, f"the run said {report}, expected {should_say}")


def first_and_rerun(
    engine: Engine,
    seed: Callable[[], SeedReport],
    expected: Expected,
    runs: tuple[Runs, Runs],
) -> None:
    """Seed an empty database, then again; check the database after each."""
    measure(seed, SeedReport(len(expected), 0, 0), runs[0])
    verify(engine, expected)
    measure(seed, SeedReport(0, 0, len(expected)), runs[1])
    verify(engine, expected)


def bench_bulk(
    backend: str, records: Sequence[SeedRecord], expected: Expected, repeat: int
) -> tuple[Runs, Runs]:
    """ordtool's seeding, first run and re-run, on a fresh database ``repeat`` times."""
    runs = Runs(), Runs()
    for _ in range(repeat):
        with fresh_app(backend) as app:
            engine = app.customers_engine  # opened (and migrated) before the clock starts
            seed = partial(seed_customers, app.customers_uow, records, idempotent=True)
            first_and_rerun(engine, seed, expected, runs)
    return runs


def bench_naive(
    backend: str, records: Sequence[SeedRecord], expected: Expected
) -> tuple[Runs, Runs]:
    """The naive loop, first run and re-run, once (it is slow)."""
    runs = Runs(), Runs()
    with fresh_app(backend) as app:
        engine = app.customers_engine
        first_and_rerun(engine, lambda: naive_seed(engine, records), expected, runs)
    return runs


def bench_cli(count: int, faker_seed: int) -> dict[str, Any]:
    """The real CLI in a subprocess with a fresh data directory, run twice."""
    argv = [
        "ordtool",
        "seed",
        "--idempotent",
        "--count",
        str(count),
        "--faker-seed",
        str(faker_seed),
        "--json",
    ]
    runs = []
    with tempfile.TemporaryDirectory(prefix="ordtool-seed-bench-cli-") as data_dir:
        env = os.environ | {"ORDTOOL_DATA_DIR": data_dir}
        for _ in range(2):
            started = time.perf_counter()
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - started
            _check(done.returncode == 0, f"{shown(argv)} failed: {done.stderr.strip()}")
            runs.append({"seconds": seconds, "report": json.loads(done.stdout)})
        total = runs[0]["report"]["created"]
        _check(total >= count, f"the CLI created {total} customers, expected at least {count}")
        _check(runs[1]["report"]["created"] == 0, "the CLI's second run created customers")
        with sqlite3.connect(Path(data_dir) / "customers.db") as db:
            stored = db.execute("SELECT count(*) FROM customers").fetchone()[0]
            events = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        _check(stored == events == total, f"{stored} customers, {events} events, {total} made")
    return {
        "command": f"ORDTOOL_DATA_DIR=<fresh dir> {shown(argv)}",
        "first_s": runs[0]["seconds"],
        "rerun_s": runs[1]["seconds"],
        "customers": total,
    }


# --- the run ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "sqlite": sqlite3.sqlite_version,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=REPO_DIR,
            check=False,
        ).stdout.strip(),
    }


def summarize(
    backend: str, count: int, bulk: tuple[Runs, Runs], naive: tuple[Runs, Runs], naive_count: int
) -> dict[str, Any]:
    first, rerun = bulk[0].median_s, bulk[1].median_s
    naive_first = naive[0].wall_s[0]
    # Per row, so that the naive loop may run on fewer rows than the bulk seeding.
    ratio = (naive_first / naive_count) / (first / count)
    summary: dict[str, Any] = {
        "backend": backend,
        "count": count,
        "first_s": first,
        "rerun_s": rerun,
        "first_cpu_s": statistics.median(bulk[0].cpu_s),
        "bulk_rows_per_s": count / first,
        "naive_count": naive_count,
        "naive_first_s": naive_first,
        "naive_rerun_s": naive[1].wall_s[0],
        "naive_rows_per_s": naive_count / naive_first,
        "ratio_per_row": ratio,
        "runs": {
            "bulk": {"first": asdict(bulk[0]), "rerun": asdict(bulk[1])},
            "naive": {"first": asdict(naive[0]), "rerun": asdict(naive[1])},
        },
    }
    if backend == "sqlite":
        summary["targets"] = {
            f"first run <= {TARGET_FIRST_S:g} s": first <= TARGET_FIRST_S,
            f"re-run <= {TARGET_RERUN_S:g} s": rerun <= TARGET_RERUN_S,
            f">= {TARGET_RATIO:g}x the naive loop": ratio >= TARGET_RATIO,
        }
    return summary


def table(results: list[dict[str, Any]], cli: dict[str, Any] | None) -> str:
    lines = [
        "| backend | customers | first run (CPU) | re-run | bulk rows/s | naive: rows, first run, "
        "re-run | naive rows/s | bulk vs naive, per row |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['count']:,} | {r['first_s']:.2f} s ({r['first_cpu_s']:.2f} s)"
            f" | {r['rerun_s']:.2f} s | {r['bulk_rows_per_s']:,.0f} | {r['naive_count']:,}, "
            f"{r['naive_first_s']:.1f} s, {r['naive_rerun_s']:.1f} s | "
            f"{r['naive_rows_per_s']:,.0f} | {r['ratio_per_row']:.0f}x |"
        )
    if cli:
        lines.append(
            f"\nCLI end to end (SQLite, {cli['customers']:,} customers incl. the shipped seeds): "
            f"first run {cli['first_s']:.2f} s, re-run {cli['rerun_s']:.2f} s"
        )
    for r in results:
        for target, met in r.get("targets", {}).items():
            lines.append(f"{r['backend']} target {target}: {'met' if met else 'MISSED'}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--naive-count",
        type=int,
        default=5_000,
        help="rows for the naive loop (slow: a commit per row); the ratio is per row",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="bulk runs per backend; the median is reported"
    )
    parser.add_argument("--faker-seed", type=int, default=1)
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI end-to-end timing")
    args = parser.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s) {sorted(unknown)}; choose from {BACKENDS}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    started = time.perf_counter()
    records = [
        SeedRecord(customer, f"generated #{index}")
        for index, customer in enumerate(generate_customers(args.count, args.faker_seed), 1)
    ]
    generate_s = time.perf_counter() - started
    expected = {r.customer.email: (r.customer.name, r.customer.address) for r in records}
    naive_records = records[: args.naive_count]
    naive_expected = {r.customer.email: expected[r.customer.email] for r in naive_records}
    results = []
    for backend in args.backends:
        print(f"{backend}: bulk x{args.repeat} ...", file=sys.stderr, flush=True)
        bulk = bench_bulk(backend, records, expected, args.repeat)
        print(f"{backend}: naive on {len(naive_records)} ...", file=sys.stderr, flush=True)
        naive = bench_naive(backend, naive_records, naive_expected)
        results.append(summarize(backend, len(records), bulk, naive, len(naive_records)))
    cli = None if args.no_cli else bench_cli(args.count, args.faker_seed)
    info["loadavg_at_end"] = os.getloadavg()
    print(table(results, cli))
    print(f"(generating {args.count:,} customers: {generate_s:.2f} s, not in the bulk times)")
    out = write_results(args, info, generate_s, results, cli)
    print(f"results: {out.relative_to(REPO_DIR)}")
    return 0 if all(all(r.get("targets", {}).values()) for r in results) else 4


def write_results(
    args: argparse.Namespace,
    info: dict[str, Any],
    generate_s: float,
    results: list[dict[str, Any]],
    cli: dict[str, Any] | None,
) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"seed_bench-{stamp}.json"
    payload = {
        "command": shown([sys.executable, *sys.argv]),
        "args": vars(args),
        "machine": info,
        "generate_s": generate_s,
        "results": results,
        "cli": cli,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    return out


if __name__ == "__main__":
    sys.exit(main())

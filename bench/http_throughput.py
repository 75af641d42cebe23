"""Throughput of POST /orders over HTTP (issue 3), side by side with this stack's ceiling.

In one run, each for the same time at the same concurrency with wrk (bench/post_orders.lua):
  1. the ceiling: bench/ceiling_app.py, a bare FastAPI route validating a similar body and
     doing one SQLite insert, under the same uvicorn settings (one worker);
  2. the order service on SQLite (embedded default), valid admin key, customers checked over
     HTTP against the customer service (in-process cache);
  3. the order service on PostgreSQL (fresh databases for both services);
  4. the ceiling again, to show how much the (shared, noisy) machine drifted during the run.
Each server first gets an unmeasured warm-up (which also fills the order service's customer
cache), then the measured run. wrk, the servers and the customer service share 2 cores.

    python bench/http_throughput.py [--duration 30] [--connections 500] [--customers 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _support import (
    Bench,
    WrkResult,
    base_env,
    bench_dir,
    count_rows,
    cpu_seconds,
    database_url,
    fresh_pg_databases,
    machine_note,
    place_each_once,
    run_wrk,
    start_ceiling,
    start_stack,
    write_ids,
)
from fixed_rate import read_ids

TARGET_RATIO = 0.6


@dataclass(frozen=True)
class Row:
    name: str
    result: WrkResult
    rows: int  # orders in the database afterwards (warm-up included)
    load: float  # 1-minute load average right after the measured run
    cpu_ms: float  # the server process's CPU time per answered request in the measured run


def _measure(url: str, key: str, ids_file: Path, args: argparse.Namespace,
             pid: int) -> tuple[WrkResult, float, float]:
    """Warm up (one order per customer, then wrk unmeasured), then the measured wrk run."""
    warm = place_each_once(url, key, read_ids(ids_file))
    print(f"{url}: one order per customer first: {dict(warm)}", file=sys.stderr)
    env = {"BENCH_KEY": key, "BENCH_CUSTOMER_IDS": str(ids_file)}
    if args.warmup:
        run_wrk(f"{url}/orders", connections=args.connections, duration_s=args.warmup, env=env)
    time.sleep(1)
    cpu_before = cpu_seconds(pid)
    result = run_wrk(f"{url}/orders", connections=args.connections, duration_s=args.duration,
                     env=env)
    cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / max(1, result.requests)
    return result, os.getloadavg()[0], cpu_ms


def ceiling(bench: Bench, args: argparse.Namespace, label: str, run: int) -> Row:
    db_file = bench.workdir / f"ceiling{run}.db"  # a fresh database for each run
    url, proc = start_ceiling(bench, db_file)
    ids = write_ids(bench.workdir / "ceiling_ids.txt", range(1, args.customers + 1))
    try:
        result, load, cpu_ms = _measure(url, "unused", ids, args, proc.pid)
    finally:
        proc.stop()
    return Row(label, result, count_rows(f"sqlite:///{db_file}", "orders"), load, cpu_ms)


def order_service(bench: Bench, args: argparse.Namespace, label: str, pg: bool) -> Row:
    databases: contextlib.AbstractContextManager[dict[str, str]] = (
        fresh_pg_databases("orders", "customers") if pg else contextlib.nullcontext({}))
    with databases as urls:
        env = base_env(bench, "postgresql" if pg else "sqlite", urls)
        stack = start_stack(bench, env, customers=args.customers)
        try:
            assert stack.orders is not None
            result, load, cpu_ms = _measure(stack.orders_url, stack.admin_key, stack.ids_file,
                                            args, stack.orders.pid)
        finally:
            stack.stop()
        rows = count_rows(database_url(env, "orders"), "orders")
        return Row(label, result, rows, load, cpu_ms)


def report(rows: Sequence[Row], args: argparse.Namespace, commands: Sequence[str]) -> bool:
    ceilings = [r.result.rps for r in rows if r.name.startswith("ceiling")]
    reference = sum(ceilings) / len(ceilings)
    print(f"\nPOST /orders, wrk -t2 -c{args.connections} -d{args.duration}s "
          f"(after a {args.warmup} s warm-up), {args.customers} customers; 2 cores shared by "
          "wrk and the servers")
    print(f"{'server':<34}{'req/s':>9}{'non-2xx':>9}{'sock err':>9}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'rows':>9}{'/ceiling':>10}{'load':>6}{'cpu ms/req':>11}")
    ok = True
    for row in rows:
        r = row.result
        ratio = r.rps / reference
        print(f"{row.name:<34}{r.rps:>9.0f}{r.non_2xx:>9}{sum(r.socket_errors.values()):>9}"
              f"{r.latency_ms['p50']:>8.0f}{r.latency_ms['p99']:>8.0f}{row.rows:>9}"
              f"{ratio:>10.2f}{row.load:>6.1f}{row.cpu_ms:>11.2f}")
        if not row.name.startswith("ceiling"):
            ok = ok and ratio >= TARGET_RATIO and r.errors == 0
        if any(r.socket_errors.values()):
            print(f"    socket errors: {r.socket_errors}")
    print("cpu ms/req: the server process's CPU time (user + system) per answered request")
    print(f"ceiling = mean of the ceiling runs = {reference:.0f} req/s; target: order service "
          f">= {TARGET_RATIO} x ceiling with 0 errors: {'MET' if ok else 'NOT MET'}")
    print(f"machine after: {machine_note()}")
    print("\ncommands:\n  python " + " ".join(sys.argv))
    for command in [*commands, rows[0].result.command]:
        print("  " + command)
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="measured seconds per server")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured seconds before")
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--customers", type=int, default=10_000, help="generated customers")
    parser.add_argument("--only", choices=["ceiling", "sqlite", "postgresql"], action="append",
                        help="run only these (default: all, ceiling before and after)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    wanted = args.only or ["ceiling", "sqlite", "postgresql"]
    print(f"machine before: {machine_note()}")
    rows: list[Row] = []
    with bench_dir("throughput", keep=args.keep) as bench:
        if "ceiling" in wanted:
            rows.append(ceiling(bench, args, "ceiling (bare FastAPI + SQLite)", 1))
        if "sqlite" in wanted:
            rows.append(order_service(bench, args, "order service, SQLite", pg=False))
        if "postgresql" in wanted:
            rows.append(order_service(bench, args, "order service, PostgreSQL", pg=True))
        if "ceiling" in wanted and len(wanted) > 1:
            rows.append(ceiling(bench, args, "ceiling again (drift check)", 2))
        if not any(r.name.startswith("ceiling") for r in rows):
            print("no ceiling run: ratios are meaningless", file=sys.stderr)
            return 2
        return 0 if report(rows, args, bench.commands) else 4


if __name__ == "__main__":
    sys.exit(main())

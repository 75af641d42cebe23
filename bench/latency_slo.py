"""Latency of POST /orders at a fixed rate (issue 3), with the customer service healthy and
with it 5 s slow. Open model: bench/fixed_rate.py, latency from each intended send time.

Scenarios (each with a freshly started order service, so an empty in-process cache):
  normal     customers looked up once, then RATE orders/s for DURATION s.
             Target: p99 <= 100 ms.
  slow-cold  the order service reaches the customer service through bench/delay_proxy.py,
             which holds every request 5 s; nothing cached. Orders must be refused fast
             (503), never hang. Target: p99 <= deadline (1 s) + 50 ms.
  slow-warm  every customer looked up once through the proxy while it is fast, then the
             proxy turns slow (SIGUSR1). Target: >= 0.8 of the orders accepted within 100 ms.
The generator, both services and the proxy share the machine's 2 cores.

    python bench/latency_slo.py [--rate 1000] [--duration 60] [--only normal ...]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from _support import (
    BENCH_DIR,
    Bench,
    Proc,
    Stack,
    base_env,
    bench_dir,
    free_port,
    machine_note,
    metric_sum,
    place_each_once,
    scrape,
    start_customers,
)
from fixed_rate import Result, order_factory, run_sync

DEADLINE_MS = 1000.0  # ORDTOOL_CUSTOMER_CHECK__DEADLINE_S default
SLOW_S = 5.0
SCENARIOS = ("normal", "slow-cold", "slow-warm")


@dataclass(frozen=True)
class Outcome:
    scenario: str
    result: Result
    target: str
    met: bool
    figure: str


def _fixed_rate(stack: Stack, args: argparse.Namespace) -> Result:
    ids = list(stack.customer_ids)
    random.Random(7).shuffle(ids)
    return run_sync(stack.orders_url, args.rate, args.duration,
                    order_factory(stack.admin_key, ids), connections=args.connections,
                    timeout_s=args.timeout)


def _warm(stack: Stack) -> None:
    started = time.monotonic()
    statuses = place_each_once(stack.orders_url, stack.admin_key, stack.customer_ids)
    print(f"  one order per customer first: {dict(statuses)} in "
          f"{time.monotonic() - started:.0f} s", file=sys.stderr)


def normal(stack: Stack, args: argparse.Namespace) -> Outcome:
    stack.start_orders()
    _warm(stack)
    result = _fixed_rate(stack, args)
    _cache_report(stack)
    p99 = result.ms(result.latency_all, 99)
    errors = sum(result.errors.values()) + result.answered - result.ok
    return Outcome("normal", result, "p99 <= 100 ms, all 2xx", p99 <= 100 and errors == 0,
                   f"p99 {p99:.1f} ms, {errors} not 2xx or failed")


def _cache_report(stack: Stack) -> None:
    """What the customer cache did, warm-up included: the run outlasts the fresh TTL of the
    warm-up's entries, so they are re-checked (in the background) or missed (in requests)."""
    samples = scrape(f"{stack.orders_url}/metrics", stack.admin_key)
    lookups = {result: metric_sum(samples, "ordtool_customer_cache_lookups_total",
                                  result=result) for result in ("hit", "miss", "stale_hit")}
    refreshes = {labels["outcome"]: value for name, labels, value in samples
                 if name == "ordtool_customer_cache_refreshes_total"}
    print(f"  customer cache look-ups {lookups}; background re-checks {refreshes}",
          file=sys.stderr)


def slow_cold(stack: Stack, args: argparse.Namespace) -> Outcome:
    proxy_url, _ = _proxy(stack, slow_from_start=True)
    stack.start_orders(customer_url=proxy_url)
    result = _fixed_rate(stack, args)
    p99 = result.ms(result.latency_all, 99)
    limit = DEADLINE_MS + 50
    lost = sum(result.errors.values())
    return Outcome("slow-cold", result, f"p99 <= {limit:.0f} ms (answers, 503 included), "
                   "no request without an answer", p99 <= limit and lost == 0,
                   f"p99 {p99:.1f} ms, max {result.latency_all.get_max_value() / 1000:.1f} ms, "
                   f"{lost} without an answer")


def slow_warm(stack: Stack, args: argparse.Namespace) -> Outcome:
    proxy_url, proxy = _proxy(stack, slow_from_start=False)
    stack.start_orders(customer_url=proxy_url)
    _warm(stack)
    proxy.process.send_signal(signal.SIGUSR1)  # now 5 s slow
    time.sleep(0.5)
    result = _fixed_rate(stack, args)
    share = result.share_within(result.latency_2xx, 100, result.intended)
    return Outcome("slow-warm", result, ">= 0.8 of orders accepted (2xx) within 100 ms",
                   share >= 0.8, f"{share:.3f} accepted within 100 ms")


def _proxy(stack: Stack, *, slow_from_start: bool) -> tuple[str, Proc]:
    """Start bench/delay_proxy.py in front of the customer service."""
    port = free_port()
    upstream = stack.customers_url.rsplit(":", 1)[1]
    argv = [sys.executable, str(BENCH_DIR / "delay_proxy.py"), "--listen", str(port), "--upstream",
            upstream, "--slow", str(SLOW_S)]
    proc = stack.bench.spawn("proxy", [*argv, "--start-slow"] if slow_from_start else argv)
    deadline = time.monotonic() + 10
    while "proxy 127.0.0.1" not in proc.tail() and time.monotonic() < deadline:
        time.sleep(0.1)
    return f"http://127.0.0.1:{port}", proc


def _stop_proxy(bench: Bench) -> None:
    for proc in [p for p in bench.procs if p.name == "proxy"]:
        proc.stop()
        bench.procs.remove(proc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="orders per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    parser.add_argument("--customers", type=int, default=10_000, help="generated customers")
    parser.add_argument("--connections", type=int, default=500, help="generator's pool")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s)")
    parser.add_argument("--only", choices=SCENARIOS, action="append")
    parser.add_argument("--json", action="store_true", help="also print each summary as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    runs = {"normal": normal, "slow-cold": slow_cold, "slow-warm": slow_warm}
    outcomes: list[Outcome] = []
    print(f"machine before: {machine_note()}")
    with bench_dir("latency", keep=args.keep) as bench:
        stack = start_customers(bench, base_env(bench, "sqlite"), customers=args.customers)
        for name in args.only or SCENARIOS:
            print(f"== {name}", file=sys.stderr)
            outcome = runs[name](stack, args)
            _stop_proxy(bench)
            outcomes.append(outcome)
            print(f"\n{name}: {args.rate:g} orders/s for {args.duration:g} s")
            print("\n".join("  " + line for line in outcome.result.lines()))
            print(f"  target {outcome.target}: {'MET' if outcome.met else 'NOT MET'} "
                  f"({outcome.figure})")
            if args.json:
                print(json.dumps({"scenario": name} | outcome.result.summary()))
        commands = bench.commands
    print(f"machine after: {machine_note()}")
    print("\ncommands:\n  python " + " ".join(sys.argv))
    print("\n".join("  " + c for c in commands))
    return 0 if all(o.met for o in outcomes) else 4


if __name__ == "__main__":
    sys.exit(main())

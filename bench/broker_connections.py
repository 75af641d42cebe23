"""Broker connections under steady load (issue 4): the count must stay flat.

The old system opened a RabbitMQ connection per message and ran out of them at 100+
orders/s. Here the same stack as bench/event_latency.py (``ordtool up --detach`` with a
broker, on SQLite, a fresh data directory and a fresh vhost, both removed afterwards) takes
POST /orders at a fixed RATE (150/s) for DURATION (10 min) from bench/fixed_rate.py, while
the vhost's connections are listed every INTERVAL seconds (``rabbitmqctl list_connections
--formatter json vhost name client_properties``, kept where vhost = VHOST: the command lists
every vhost's whatever ``-p`` says). One entry per connection, labelled with the name the
client gave and its own port, so a connection closed and opened again shows even when the
count does not change; and the relay's log is
read for how often it connected. Target: the count stays flat (max = min over the run), the
same connections throughout, the relay never reconnects, and ``ordtool events verify`` finds
no event lost.

    python bench/broker_connections.py [--rate 150] [--duration 600] [--interval 10]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from _support import bench_dir, machine_note, place_each_once
from event_latency import (
    RESULTS_DIR,
    EventsStack,
    events_stack,
    fresh_env,
    rabbitmqctl,
    verify,
    wait_drained,
)
from fixed_rate import Result, order_factory, run_sync

from ordtool.domain.clock import utc_now

RELAY_CONNECTED = "connected to the broker"  # what the relay logs on every (re)connect
CONSUMER_RECONNECTING = "reconnecting"  # what a consumer logs when its connection failed


@dataclass(frozen=True)
class Sample:
    second: float  # since the load started
    names: tuple[str, ...]  # one per connection
    relay_connects: int  # so far, from the relay's log

    @property
    def count(self) -> int:
        return len(self.names)


@dataclass
class Sampler:
    """Lists the vhost's connections every ``interval`` seconds in a thread."""

    stack: EventsStack
    interval: float
    samples: list[Sample] = field(default_factory=list)
    start: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> Sample:
        # list_connections lists every vhost's connections whatever -p says: filter here.
        listed = rabbitmqctl("list_connections", "--formatter", "json", "vhost", "name",
                             "client_properties")
        names = tuple(sorted(_label(entry) for entry in json.loads(listed or "[]")
                             if entry.get("vhost") == self.stack.vhost))
        taken = Sample(round(time.monotonic() - self.start, 1), names,
                       log_lines(self.stack, "relay", RELAY_CONNECTED))
        self.samples.append(taken)
        return taken

    def run(self) -> None:
        self.start = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            taken = self.sample()
            print(f"  {taken.second:6.1f} s: {taken.count} connections", file=sys.stderr)
            self._stop.wait(self.interval - (time.monotonic() - self.start) % self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
        self.sample()  # one more after the load


def _label(connection: dict[str, Any]) -> str:
    """'ordtool relay 127.0.0.1:41546': the name the client gave and its own end (a connection
    opened again would show a new port)."""
    given = next((value for key, _kind, value in connection.get("client_properties", [])
                  if key == "connection_name"), "unnamed")
    return f"{given} {connection['name'].split(' -> ')[0]}"


def log_lines(stack: EventsStack, process: str, needle: str) -> int:
    """How many lines of a stack process's log mention ``needle``."""
    try:
        text = stack.log(process).read_text(errors="replace")
    except OSError:
        return 0
    return sum(needle in line for line in text.splitlines())


@dataclass
class Outcome:
    result: Result
    samples: list[Sample]
    relay_connects_before: int
    consumer_reconnects: dict[str, int]
    verify: dict[str, Any]

    @property
    def counts(self) -> list[int]:
        return [s.count for s in self.samples]

    @property
    def relay_reconnects(self) -> int:
        return self.samples[-1].relay_connects - self.relay_connects_before

    @property
    def same_connections(self) -> bool:
        return len({s.names for s in self.samples}) == 1

    @property
    def met(self) -> bool:
        return (min(self.counts) == max(self.counts) and self.same_connections
                and self.relay_reconnects == 0 and self.verify.get("lost") == 0)

    def summary(self) -> dict[str, Any]:
        names = Counter(name for s in self.samples for name in set(s.names))
        return {
            "http": self.result.summary(),
            "connections": {"min": min(self.counts), "max": max(self.counts),
                            "same_throughout": self.same_connections,
                            "series": [[s.second, s.count] for s in self.samples],
                            "names_seen_in_samples": dict(names)},
            "relay_reconnects_during_run": self.relay_reconnects,
            "consumer_reconnect_warnings_during_run": self.consumer_reconnects,
            "verify": self.verify, "target_met": self.met,
        }

    def lines(self) -> list[str]:
        s = self.summary()
        c = s["connections"]
        series = ", ".join(f"{sec:g}s:{n}" for sec, n in c["series"])
        return [
            *self.result.lines()[:3],
            f"orders sent {self.result.intended}, accepted (2xx) {self.result.ok}",
            f"broker connections in the vhost: min {c['min']}, max {c['max']} over "
            f"{len(self.samples)} samples; the same ones throughout: {c['same_throughout']}",
            f"series (seconds since the load started: connections; the first at rest, just "
            f"before): {series}",
            f"connections (samples that saw each): {c['names_seen_in_samples']}",
            f"relay (re)connects during the run: {self.relay_reconnects}; consumer reconnect "
            f"warnings: {self.consumer_reconnects}",
            f"events verify: {({k: v for k, v in self.verify.items() if k != 'lost_ids'})}",
            f"target flat connection count, the same connections, no relay reconnect, "
            f"nothing lost: "
            f"{'MET' if self.met else 'NOT MET'}",
        ]


def measure(stack: EventsStack, args: argparse.Namespace) -> Outcome:
    ids = list(stack.customer_ids)
    random.Random(7).shuffle(ids)
    # At rest first: the relay has published the seeded customers' events, the audit
    # consumer has recorded them, every long-lived connection is open.
    if not wait_drained(stack):
        print("  warning: the seeded events did not drain", file=sys.stderr)
    consumers = ("audit", "orders")
    warned = {name: log_lines(stack, name, CONSUMER_RECONNECTING) for name in consumers}
    sampler = Sampler(stack, args.interval)
    relay_before = sampler.sample().relay_connects  # the connections at rest, before the load
    started_at = utc_now()
    sampler.run()
    try:
        result = run_sync(stack.orders_url, args.rate, args.duration,
                          order_factory(stack.admin_key, ids), timeout_s=args.timeout)
    finally:
        sampler.stop()
    reconnects = {name: log_lines(stack, name, CONSUMER_RECONNECTING) - warned[name]
                  for name in consumers}
    return Outcome(result, sampler.samples, relay_before, reconnects, verify(stack, started_at))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=150.0, help="orders per second")
    parser.add_argument("--duration", type=float, default=600.0,
                        help="seconds of load (600 = the issue's 10 minutes; 60 for a check)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--customers", type=int, default=10_000, help="generated customers")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s)")
    parser.add_argument("--no-warm", action="store_true",
                        help="skip the one order per customer that warms the cache")
    parser.add_argument("--fresh-s", type=float, metavar="SECONDS",
                        help="the order service's customer cache TTL (default the service's)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    before = machine_note()
    print(f"machine before: {before}")
    with bench_dir("connections", keep=args.keep) as bench, \
            events_stack(bench, args.customers, fresh_env(args.fresh_s)) as stack:
        print(f"== {args.rate:g} orders/s for {args.duration:g} s, connections every "
              f"{args.interval:g} s", file=sys.stderr)
        if not args.no_warm:
            statuses = place_each_once(stack.orders_url, stack.admin_key, stack.customer_ids)
            print(f"one order per customer first: {dict(statuses)}", file=sys.stderr)
        outcome = measure(stack, args)
        commands = stack.commands
    after = machine_note()
    print(f"\n{args.rate:g} orders/s for {args.duration:g} s")
    print("\n".join("  " + line for line in outcome.lines()))
    print(f"machine after: {after}")
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"broker_connections-{utc_now().strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps({"argv": sys.argv, "machine_before": before,
                                "machine_after": after, **outcome.summary(),
                                "commands": commands}, indent=2))
    print(f"results: {path}")
    print("\ncommands:\n  python " + " ".join(sys.argv))
    print("\n".join("  " + c for c in commands))
    return 0 if outcome.met else 4


if __name__ == "__main__":
    sys.exit(main())

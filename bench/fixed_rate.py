"""An open-model, fixed-rate HTTP load generator (until ordtool's own load test replaces it).

Request ``i`` has an intended send time ``start + i / rate``, fixed before the run. Its latency
is its completion time minus that intended time, so a slow server (or a generator that fell
behind) cannot hide queueing: coordinated omission is counted, not omitted. Latencies go into
HDR histograms (microseconds, 3 significant digits).

Bounds: at most ``connections`` requests on the wire (the pool), at most ``max_outstanding``
started and unfinished (beyond that a request is counted as the error ``backlog_full``
instead of piling up), a per-request timeout, and a hard stop ``grace_s`` after the last
intended send, when whatever is unfinished is cancelled and counted as ``unfinished``.

The client is aiohttp (keep-alive pool, C parser), not httpx.AsyncClient, which failed at
500 users on this machine (design.md section 8).

    BENCH_KEY=... python bench/fixed_rate.py http://127.0.0.1:8000 --rate 1000 --duration 60 \
        --customers-file ids.txt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

HIGHEST_US = 300_000_000  # 300 s: above any timeout this generator allows
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
SLOW_MS = 100.0  # the timeline counts requests slower than this


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


RequestFactory = Callable[[int], Request]
ResponseHook = Callable[[int, int, bytes], None]


def _histogram() -> HdrHistogram:
    return HdrHistogram(1, HIGHEST_US, 3)


@dataclass
class Result:
    rate: float
    duration_s: float
    intended: int = 0
    status: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # every request that got an answer or failed in transport, from its intended send time
    latency_all: HdrHistogram = field(default_factory=_histogram)
    latency_2xx: HdrHistogram = field(default_factory=_histogram)
    # how late the generator itself started each request (its own share of the latency)
    send_lag: HdrHistogram = field(default_factory=_histogram)
    # per second of intended send time: [requests, slower than SLOW_MS, slowest ms]
    timeline: dict[int, list[float]] = field(default_factory=dict)
    wall_s: float = 0.0

    def note(self, second: int, latency_ms: float) -> None:
        row = self.timeline.setdefault(second, [0, 0, 0.0])
        row[0] += 1
        row[1] += latency_ms > SLOW_MS
        row[2] = max(row[2], latency_ms)

    @property
    def answered(self) -> int:
        return sum(self.status.values())

    @property
    def ok(self) -> int:
        return sum(n for code, n in self.status.items() if 200 <= code < 300)

    def ms(self, histogram: HdrHistogram, percentile: float) -> float:
        return float(histogram.get_value_at_percentile(percentile)) / 1000

    def share_within(self, histogram: HdrHistogram, limit_ms: float, of: int) -> float:
        """Share of ``of`` requests recorded in ``histogram`` at or below ``limit_ms``."""
        if of == 0:
            return 0.0
        within: int = sum(item.count_added_in_this_iter_step
                     for item in histogram.get_recorded_iterator()
                     if item.value_iterated_to <= limit_ms * 1000)
        return within / of

    def summary(self) -> dict[str, Any]:
        def table(h: HdrHistogram) -> dict[str, float]:
            row = {f"p{p:g}": self.ms(h, p) for p in PERCENTILES}
            return row | {"max": float(h.get_max_value()) / 1000, "count": h.get_total_count()}

        return {
            "rate": self.rate, "duration_s": self.duration_s, "intended": self.intended,
            "answered": self.answered, "ok_2xx": self.ok, "wall_s": round(self.wall_s, 2),
            "achieved_rps": round(self.answered / self.wall_s, 1) if self.wall_s else 0.0,
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "errors": dict(self.errors),
            "latency_ms_all": table(self.latency_all),
            "latency_ms_2xx": table(self.latency_2xx),
            "generator_send_lag_ms": table(self.send_lag),
        }

    def lines(self) -> list[str]:
        s = self.summary()

        def fmt(row: dict[str, float]) -> str:
            return "  ".join(f"{k} {v:.1f}" for k, v in row.items() if k != "count")

        return [
            f"intended {s['intended']} at {s['rate']:g}/s for {s['duration_s']:g} s; answered "
            f"{s['answered']} ({s['achieved_rps']}/s over {s['wall_s']} s), 2xx {s['ok_2xx']}",
            f"status {s['status']}  errors {s['errors'] or 'none'}",
            f"latency ms, all answers: {fmt(s['latency_ms_all'])}",
            f"latency ms, 2xx only:    {fmt(s['latency_ms_2xx'])}",
            f"generator send lag ms:   {fmt(s['generator_send_lag_ms'])}",
            f"seconds with requests > {SLOW_MS:g} ms (second: count, slowest ms): "
            + self.slow_seconds(),
        ]

    def slow_seconds(self, limit: int = 12) -> str:
        slow = [(sec, int(n), row[2]) for sec, row in sorted(self.timeline.items())
                if (n := row[1])]
        shown = ", ".join(f"{sec}s: {n}, {worst:.0f}" for sec, n, worst in slow[:limit])
        return (shown + (f", ... ({len(slow)} seconds in all)" if len(slow) > limit else "")
                or "none")


def _error_kind(exc: BaseException) -> str:
    """One low-level error, one kind name (the generator's errors, not the server's)."""
    kinds: Sequence[tuple[type[BaseException], str]] = (
        (TimeoutError, "timeout"),
        (aiohttp.ClientConnectorError, "connect"),
        (aiohttp.ServerDisconnectedError, "disconnected"),
        (aiohttp.ClientPayloadError, "bad_payload"),
        (aiohttp.ClientResponseError, "bad_response"),
        (aiohttp.ClientOSError, "socket"),
    )
    return next((name for cls, name in kinds if isinstance(exc, cls)), type(exc).__name__)


class _Run:
    def __init__(self, session: aiohttp.ClientSession, factory: RequestFactory,
                 result: Result, hook: ResponseHook | None) -> None:
        self.session, self.factory, self.result, self.hook = session, factory, result, hook
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()

    async def one(self, index: int, intended: float) -> None:
        result = self.result
        result.send_lag.record_value(max(1, int((self.loop.time() - intended) * 1e6)))
        request = self.factory(index)
        try:
            async with self.session.request(request.method, request.path, data=request.body,
                                            headers=request.headers) as response:
                body = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            result.errors[_error_kind(exc)] += 1
            self.record_all(intended)
            return
        result.status[response.status] += 1
        self.record_all(intended)
        if 200 <= response.status < 300:
            self.record(result.latency_2xx, intended)
        if self.hook is not None:
            self.hook(index, response.status, body)

    def record(self, histogram: HdrHistogram, intended: float) -> None:
        histogram.record_value(max(1, min(HIGHEST_US, int((self.loop.time() - intended) * 1e6))))

    def record_all(self, intended: float) -> None:
        """Into the all-requests histogram and the timeline."""
        self.record(self.result.latency_all, intended)
        self.result.note(int(intended - self.start), (self.loop.time() - intended) * 1000)


async def run(
    base_url: str, rate: float, duration_s: float, factory: RequestFactory, *,
    connections: int = 500, max_outstanding: int = 20_000, timeout_s: float = 10.0,
    grace_s: float = 15.0, hook: ResponseHook | None = None,
) -> Result:
    """Send ``rate * duration_s`` requests at their intended times; return the figures."""
    result = Result(rate=rate, duration_s=duration_s, intended=int(rate * duration_s))
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections,
                                     use_dns_cache=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:
        state = _Run(session, factory, result, hook)
        loop = state.loop
        start = state.start = loop.time() + 0.05
        hard_stop = start + duration_s + grace_s
        started: dict[asyncio.Task[None], float] = {}
        index = 0
        while index < result.intended and loop.time() < hard_stop:
            # Start every request whose intended time has come (a batch when we woke late).
            due = min(result.intended, int((loop.time() - start) * rate) + 1)
            for i in range(index, due):
                intended = start + i / rate
                if len(started) >= max_outstanding:
                    result.errors["backlog_full"] += 1
                    continue
                task = loop.create_task(state.one(i, intended))
                started[task] = intended
                task.add_done_callback(started.pop)
            index = max(index, due)
            await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
        if started:
            left = max(0.0, hard_stop - loop.time())
            _, pending = await asyncio.wait(list(started), timeout=left)
            for task in pending:
                result.errors["unfinished"] += 1
                state.record_all(started[task])
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        result.wall_s = loop.time() - start
    return result


def run_sync(*args: Any, **kwargs: Any) -> Result:
    """``run`` on uvloop when it is installed (it is, with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(run(*args, **kwargs))
    return uvloop.run(run(*args, **kwargs))


def order_factory(key: str, customer_ids: Sequence[int]) -> RequestFactory:
    """POST /orders, customer ids taken in the given sequence (cycled)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def make(index: int) -> Request:
        body = {"customer_id": customer_ids[index % len(customer_ids)],
                "sku": f"BENCH-{index % 100}", "quantity": index % 5 + 1}
        return Request("POST", "/orders", json.dumps(body).encode(), headers)

    return make


def read_ids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url", help="e.g. http://127.0.0.1:8000 (127.0.0.1 only)")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds of sending")
    parser.add_argument("--customers-file", type=Path, required=True,
                        help="one customer id a line; the key comes from $BENCH_KEY")
    parser.add_argument("--shuffle", action="store_true", help="random order of customer ids")
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if not args.base_url.startswith(("http://127.0.0.1", "http://localhost")):
        parser.error("this generator only targets 127.0.0.1")
    ids = read_ids(args.customers_file)
    if args.shuffle:
        random.Random(1).shuffle(ids)
    factory = order_factory(os.environ.get("BENCH_KEY", ""), ids)
    result = run_sync(args.base_url, args.rate, args.duration, factory,
                      connections=args.connections, timeout_s=args.timeout)
    print(json.dumps(result.summary(), indent=2) if args.json else "\n".join(result.lines()))
    print("command: " + " ".join(["python", *sys.argv]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The customer look-up cache under a skewed stream (issue 3), through the real order service.

N orders whose customers are drawn Zipf (exponent S) from C seeded customers, sent at a fixed
rate (bench/fixed_rate.py) to a freshly started order service (empty cache), which checks each
customer against the real customer service over HTTP. An ideal cache misses only each
customer's first look-up; everything above that is a miss the cache should not have had.
Counted from both sides:
  - the order service's ``ordtool_customer_cache_lookups_total`` (hit / miss / stale_hit),
  - the customer service's own count of ``GET /customers/{customer_id}`` requests.
Target: misses beyond first look-ups <= 1% of requests.

The fresh TTL (default 60 s) is shorter than the run at 1,000 orders/s (100 s), so refreshes
of expired entries are misses too; ``--fresh-s`` sets it (run both to separate TTL expiry
from the cache's own behaviour).

    python bench/cache_zipf.py [--orders 100000] [--rate 1000] [--fresh-s 60] [--redis]
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence

import numpy as np
from _support import Stack, base_env, bench_dir, machine_note, metric_sum, scrape, start_customers
from fixed_rate import order_factory, run_sync

LOOKUPS = "ordtool_customer_cache_lookups_total"
REQUESTS = "ordtool_http_request_duration_seconds_count"
TARGET = 0.01


def zipf_stream(ids: Sequence[int], count: int, exponent: float, seed: int) -> list[int]:
    """``count`` draws over ``ids``: the customer of rank k (a seeded shuffle of the ids)
    drawn with probability proportional to k ** -exponent."""
    rng = np.random.default_rng(seed)
    ranked = rng.permutation(np.array(ids))
    weights = np.arange(1, len(ranked) + 1, dtype=float) ** -exponent
    drawn = rng.choice(len(ranked), size=count, p=weights / weights.sum())
    return [int(x) for x in ranked[drawn]]


def counters(stack: Stack) -> dict[str, float]:
    orders = scrape(f"{stack.orders_url}/metrics", stack.admin_key)
    customers = scrape(f"{stack.customers_url}/metrics", stack.admin_key)
    return {
        "hit": metric_sum(orders, LOOKUPS, result="hit"),
        "miss": metric_sum(orders, LOOKUPS, result="miss"),
        "stale_hit": metric_sum(orders, LOOKUPS, result="stale_hit"),
        "customer_gets": metric_sum(customers, REQUESTS, route="/customers/{customer_id}",
                                    method="GET"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=10_000, help="generated customers")
    parser.add_argument("--exponent", type=float, default=1.1)
    parser.add_argument("--rate", type=float, default=1000.0, help="orders per second")
    parser.add_argument("--fresh-s", type=float, default=60.0, help="cache fresh TTL")
    parser.add_argument("--redis", metavar="URL", nargs="?", const="redis://127.0.0.1:6379/0",
                        help="use the Redis cache (own key prefix) instead of in-process")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    print(f"machine before: {machine_note()}")
    with bench_dir("cache", keep=args.keep) as bench:
        stack = start_customers(bench, base_env(bench, "sqlite"), customers=args.customers)
        population = stack.customer_ids[-args.customers:]  # the generated ones
        stream = zipf_stream(population, args.orders, args.exponent, args.seed)
        distinct = len(set(stream))
        cache_env = {"ORDTOOL_CUSTOMER_CHECK__CACHE_FRESH_S": str(args.fresh_s)}
        if args.redis:
            cache_env |= {"ORDTOOL_REDIS_URL": args.redis,
                          "ORDTOOL_CUSTOMER_CHECK__CACHE_KEY_PREFIX":
                              f"ordtool-bench-{uuid.uuid4().hex[:8]}:customer:"}
        stack.start_orders(extra_env=cache_env)
        before = counters(stack)
        result = run_sync(stack.orders_url, args.rate, args.orders / args.rate,
                          order_factory(stack.admin_key, stream), timeout_s=10.0)
        after = counters(stack)
        commands = bench.commands
    delta = {k: after[k] - before[k] for k in after}
    n = args.orders
    beyond = delta["miss"] - distinct
    beyond_gets = delta["customer_gets"] - distinct
    print(f"\n{n} orders, customers Zipf(s={args.exponent}) over {args.customers} "
          f"(seed {args.seed}), {args.rate:g}/s, cache "
          f"{'Redis' if args.redis else 'in-process'}, fresh TTL {args.fresh_s:g} s")
    print("\n".join("  " + line for line in result.lines()))
    print(f"  distinct customers in the stream: {distinct}; ideal hit ratio "
          f"{1 - distinct / n:.2%}")
    print(f"  order service cache: hit {delta['hit']:.0f}, miss {delta['miss']:.0f}, "
          f"stale_hit {delta['stale_hit']:.0f}; hit ratio {delta['hit'] / n:.2%}")
    print(f"  customer service GET /customers/{{id}}: {delta['customer_gets']:.0f}")
    print(f"  misses beyond first look-ups: {beyond:.0f} = {beyond / n:.2%} of requests "
          f"(by the customer service's count: {beyond_gets:.0f} = {beyond_gets / n:.2%})")
    met = beyond / n <= TARGET and result.ok == n
    print(f"  target <= {TARGET:.0%} and every order accepted: {'MET' if met else 'NOT MET'}")
    print(f"machine after: {machine_note()}")
    print("\ncommands:\n  python " + " ".join(sys.argv))
    print("\n".join("  " + c for c in commands))
    return 0 if met else 4


if __name__ == "__main__":
    sys.exit(main())

"""Interpreter settings for ordtool's long-running processes: the two services, the outbox
relay and the audit consumer. One-shot commands and the tests keep Python's defaults.

- The GIL switch interval: a server runs its event loop beside worker threads (the orders
  writer, customer checks on a cache miss). A thread back from I/O (each SQLite step releases
  the GIL) waits for the GIL until the switch interval, 5 ms by default, makes the busy loop
  yield, so under load a batch of inserts took many times its CPU and every order waited.
- ``gc.freeze()`` after start-up: the modules, routes and schemas (nearly the whole heap) are
  moved out of the cycle collector's sight. Its full collections scanned them all and paused
  the order service 120-160 ms every few seconds at 1,000 orders/s (bench/latency_slo.py).
- A young-generation threshold of 50,000 instead of 700: objects freed by reference counting
  leave the young generation at once, so a young collection costs what is still alive then
  (the requests in flight), whatever the threshold. At 700 the order service collected
  hundreds of times a second; each time it promoted whatever was in flight, and those
  promotions set off a full collection every 2 s, 10-25 ms each (bench/event_latency.py, with
  gc.callbacks timing them). Cycles of garbage now wait longer to be found: a few MB at most.
"""

from __future__ import annotations

import gc
import sys

SWITCH_INTERVAL_S = 0.0005
YOUNG_THRESHOLD = 50_000


def tune_for_serving() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)

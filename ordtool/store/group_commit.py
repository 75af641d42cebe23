"""Group commit: many callers' writes, one transaction.

SQLite lets one writer in at a time and PostgreSQL flushes its log at every commit, so under
load a transaction per order spends most of its time on BEGIN/COMMIT and on threads queueing
for the lock. Here one writer thread takes everything queued since its last commit and writes
it with one call of ``write`` (one transaction), as databases do with their own log: at low
load a batch is a single item and nobody waits longer than before; under load the commits
are shared. A caller gets its result only once its item has committed, so an order that got
a 201 exists after any crash.

Callers on an event loop ``await submit(item)`` (one wake-up of their loop per batch, not per
item); other threads call ``submit_blocking(item)``.

On SQLite the writer can also leave a gap after each commit (``gap_s``). SQLite's write lock
has no queue: a writer that finds it taken retries on a timer, and the order writer, with
orders always queued, took the lock again within microseconds of each commit. The relay
marking events published (another process, same database) waited up to 64 ms for a free
moment at 1,000 orders/s, and so did the audit consumer until it got a database of its own.
A gap of a few ms lets the relay in between two commits; the orders that arrive meanwhile
only join the next, larger batch (the database's own group commit delays work the same way:
PostgreSQL's ``commit_delay``).

If a batch fails because the database could not be used (unreachable, locked past the busy
timeout), every item in it fails with that error; any other error is taken to be one item's
fault, so the items are written again one at a time and only the faulty one fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import OperationalError

from ordtool.errors import DependencyUnavailable

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 500
CLOSE_TIMEOUT_S = 30.0

log = logging.getLogger(__name__)

# What a job ends with: its result, or the exception it failed with.
_Outcome = tuple[Any, BaseException | None]


@dataclass(slots=True)
class _Job(Generic[T]):
    item: T
    future: asyncio.Future[Any] | Future[Any]
    loop: asyncio.AbstractEventLoop | None  # None: a concurrent Future, settled directly


class GroupCommit(Generic[T, R]):
    """``write`` takes a batch of items and returns their results in the same order."""

    def __init__(
        self,
        write: Callable[[Sequence[T]], Sequence[R]],
        *,
        name: str,
        max_batch: int = MAX_BATCH,
        gap_s: float = 0.0,
    ) -> None:
        self._write = write
        self._name = name
        self._max_batch = max_batch
        self._gap_s = gap_s
        self._jobs: queue.SimpleQueue[_Job[T] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._enqueue(_Job(item, future, loop))
        return await future

    def submit_blocking(self, item: T) -> R:
        future: Future[R] = Future()
        self._enqueue(_Job(item, future, None))
        return future.result()

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._jobs.put(None)
            thread.join(CLOSE_TIMEOUT_S)

    def _enqueue(self, job: _Job[T]) -> None:
        with self._lock:
            if self._closed:
                raise DependencyUnavailable(
                    f"the {self._name} is shutting down", hint="retry against a running service"
                )
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._jobs.put(job)

    def _run(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                _settle(batch, self._outcomes([job.item for job in batch]))
            if stop:
                return
            if batch and self._gap_s:
                time.sleep(self._gap_s)  # the write lock free for other processes' writers

    def _next_batch(self) -> tuple[list[_Job[T]], bool]:
        """Wait for a job, then take whatever else is already queued (up to max_batch)."""
        first = self._jobs.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _outcomes(self, items: list[T]) -> list[_Outcome]:
        try:
            results = self._write(items)
        except (DependencyUnavailable, OperationalError) as exc:
            return [(None, exc)] * len(items)
        except Exception as exc:
            if len(items) == 1:
                return [(None, exc)]
            log.warning(
                "%s: a batch of %d failed; writing them one at a time",
                self._name,
                len(items),
                exc_info=True,
            )
            return [outcome for item in items for outcome in self._outcomes([item])]
        if len(results) != len(items):  # a bug in write: fail loudly, never hang a caller
            error = RuntimeError(f"{self._name}: {len(results)} results for {len(items)} items")
            return [(None, error)] * len(items)
        return [(result, None) for result in results]


def _settle(batch: list[_Job[Any]], outcomes: list[_Outcome]) -> None:
    """Hand each job its outcome: concurrent futures at once, each event loop's futures in
    one callback on that loop."""
    by_loop: defaultdict[asyncio.AbstractEventLoop, list[tuple[Any, _Outcome]]] = defaultdict(
        list
    )
    for job, outcome in zip(batch, outcomes, strict=True):
        if job.loop is None:
            _resolve(job.future, outcome)
        else:
            by_loop[job.loop].append((job.future, outcome))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve_all, settled)


def _resolve_all(settled: list[tuple[Any, _Outcome]]) -> None:
    for future, outcome in settled:
        _resolve(future, outcome)


def _resolve(future: asyncio.Future[Any] | Future[Any], outcome: _Outcome) -> None:
    if future.cancelled():
        return  # the caller gave up; its item was still written
    result, error = outcome
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)

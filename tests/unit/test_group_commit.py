"""store.group_commit: one writer thread, many callers, one write per batch."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from ordtool.errors import DependencyUnavailable
from ordtool.store.group_commit import GroupCommit


class Recorder:
    """A ``write`` that doubles each item, records its batches, and can be made slow, wrong
    or failing."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay_s = delay_s
        self.poison: set[int] = set()
        self.database_down = False
        self.started = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.started.set()
        self.batches.append(list(items))
        time.sleep(self.delay_s)
        if self.database_down:
            raise DependencyUnavailable("cannot reach the database")
        if self.poison & set(items):
            raise ValueError(f"bad item in {list(items)}")
        return [item * 2 for item in items]


def test_each_blocking_caller_gets_its_own_result_and_batches_are_shared() -> None:
    write = Recorder(delay_s=0.02)  # while one batch writes, the others queue up
    writer = GroupCommit(write, name="test writer")
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(writer.submit_blocking, range(200)))
    writer.close()
    assert results == [item * 2 for item in range(200)]
    assert sorted(item for batch in write.batches for item in batch) == list(range(200))
    assert len(write.batches) < 50, "concurrent callers should share transactions"


def test_event_loop_callers_await_their_results() -> None:
    write = Recorder(delay_s=0.01)
    writer = GroupCommit(write, name="test writer")

    async def many() -> list[int]:
        return await asyncio.gather(*(writer.submit(item) for item in range(300)))

    assert asyncio.run(many()) == [item * 2 for item in range(300)]
    writer.close()
    assert max(len(batch) for batch in write.batches) > 1


def test_a_batch_never_exceeds_max_batch() -> None:
    write = Recorder(delay_s=0.01)
    writer = GroupCommit(write, name="test writer", max_batch=7)

    async def many() -> list[int]:
        return await asyncio.gather(*(writer.submit(item) for item in range(100)))

    asyncio.run(many())
    writer.close()
    assert max(len(batch) for batch in write.batches) == 7


def test_one_bad_item_fails_alone() -> None:
    write = Recorder(delay_s=0.01)
    write.poison = {13}
    writer = GroupCommit(write, name="test writer")

    async def many() -> list[int | BaseException]:
        return await asyncio.gather(
            *(writer.submit(item) for item in range(40)), return_exceptions=True
        )

    outcomes = asyncio.run(many())
    writer.close()
    assert isinstance(outcomes[13], ValueError)
    assert [o for i, o in enumerate(outcomes) if i != 13] == [i * 2 for i in range(40) if i != 13]


def test_an_unusable_database_fails_the_whole_batch_without_retrying_each() -> None:
    write = Recorder(delay_s=0.01)
    write.database_down = True
    writer = GroupCommit(write, name="test writer")

    async def many() -> list[int | BaseException]:
        return await asyncio.gather(
            *(writer.submit(item) for item in range(50)), return_exceptions=True
        )

    outcomes = asyncio.run(many())
    writer.close()
    assert all(isinstance(o, DependencyUnavailable) for o in outcomes)
    assert sum(len(batch) for batch in write.batches) == 50, "each item written exactly once"


def test_a_write_returning_too_few_results_fails_its_callers_instead_of_hanging() -> None:
    writer = GroupCommit(lambda items: [1], name="test writer")

    async def two() -> list[int | BaseException]:
        return await asyncio.gather(writer.submit(1), writer.submit(2), return_exceptions=True)

    outcomes = asyncio.run(asyncio.wait_for(two(), timeout=5))
    writer.close()
    # Both landed in one batch (an error each), or in two (the second is fine).
    assert isinstance(outcomes[0], RuntimeError) or outcomes == [1, 1]


def test_close_writes_what_is_queued_then_refuses_new_items() -> None:
    write = Recorder(delay_s=0.05)
    writer = GroupCommit(write, name="test writer")

    async def queued_then_closed() -> list[int]:
        first = asyncio.ensure_future(writer.submit(0))
        await asyncio.to_thread(write.started.wait, 5)  # item 0's batch is being written
        # submit() queues its item before its first await, so once each task has run up to
        # that await the seven are queued behind that write (threads calling submit_blocking
        # give no such guarantee: one may not have queued yet when close() runs, and is then
        # rightly refused).
        queued = [asyncio.ensure_future(writer.submit(item)) for item in range(1, 8)]
        await asyncio.sleep(0)
        writer.close()  # blocks this loop; the writer settles the rest through it afterwards
        return list(await asyncio.wait_for(asyncio.gather(first, *queued), timeout=5))

    assert asyncio.run(queued_then_closed()) == [item * 2 for item in range(8)]
    assert sorted(item for batch in write.batches for item in batch) == list(range(8))
    with pytest.raises(DependencyUnavailable, match="shutting down"):
        writer.submit_blocking(1)


def test_a_caller_that_gives_up_does_not_stop_the_others() -> None:
    write = Recorder(delay_s=0.05)
    writer = GroupCommit(write, name="test writer")

    async def one_cancelled() -> list[int]:
        doomed = asyncio.ensure_future(writer.submit(1))
        others = [asyncio.ensure_future(writer.submit(item)) for item in (2, 3)]
        await asyncio.sleep(0.01)
        doomed.cancel()
        return list(await asyncio.gather(*others))

    assert asyncio.run(one_cancelled()) == [4, 6]
    writer.close()
    assert sorted(item for batch in write.batches for item in batch) == [1, 2, 3]


def test_a_gap_after_each_commit_delays_the_next_batch_not_the_answer() -> None:
    """``gap_s``: the write lock stays free between two commits for other processes' writers;
    the committed batch's callers are answered before the gap, and what arrives meanwhile
    joins the next batch."""
    gap_s = 0.2
    started: list[float] = []
    write = Recorder()

    def timed(items: Sequence[int]) -> list[int]:
        started.append(time.monotonic())
        return write(items)

    writer = GroupCommit(timed, name="test writer", gap_s=gap_s)
    begun = time.monotonic()
    assert writer.submit_blocking(1) == 2
    answered_s = time.monotonic() - begun
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(writer.submit_blocking, range(10, 18))) == list(range(20, 36, 2))
    writer.close()
    assert answered_s < gap_s / 2, "the first caller waited for the gap"
    assert all(b - a >= gap_s for a, b in itertools.pairwise(started))
    assert write.batches[0] == [1] and len(write.batches) <= 3, "the gap's arrivals batched"

"""web.live.LiveHub: the feed runs while pages are connected, over a fake feed."""

from __future__ import annotations

import asyncio

from ordtool.messaging.feed import FeedMode, Sink
from ordtool.web.live import LiveHub


class FakeFeed:
    def __init__(self, runs: list[FakeFeed], mode: FeedMode = "broker") -> None:
        self.mode: FeedMode = mode
        self.connected = False
        self.started = self.stopped = False
        self.sink: Sink | None = None
        runs.append(self)

    def start(self, sink: Sink) -> None:
        self.started, self.sink = True, sink
        self.connected = True

    def stop(self) -> None:
        self.stopped, self.connected = True, False


def hub_with(runs: list[FakeFeed], idle_stop_s: float = 0.05) -> LiveHub:
    return LiveHub(lambda: FakeFeed(runs), idle_stop_s=idle_stop_s)


def started(runs: list[FakeFeed]) -> list[FakeFeed]:
    return [feed for feed in runs if feed.started]


def test_no_feed_until_a_page_connects_and_one_feed_for_many() -> None:
    runs: list[FakeFeed] = []

    async def scenario() -> None:
        hub = hub_with(runs)
        await hub.start()
        assert started(runs) == [] and hub.broker_connected is None  # nothing held, nothing told
        with hub.subscription(), hub.subscription():
            assert len(started(runs)) == 1
            assert hub.broker_connected is True
            assert await hub.until_following(0.5)
        await hub.stop()

    asyncio.run(scenario())
    assert started(runs)[0].stopped


def test_the_feed_stops_after_the_idle_time_unless_a_page_returns() -> None:
    runs: list[FakeFeed] = []

    async def scenario() -> None:
        hub = hub_with(runs, idle_stop_s=0.05)
        await hub.start()
        with hub.subscription():
            pass
        await asyncio.sleep(0.02)
        with hub.subscription():  # back within the idle time: the same feed goes on
            await asyncio.sleep(0.1)
            assert len(started(runs)) == 1 and not started(runs)[0].stopped
        await asyncio.sleep(0.2)
        assert started(runs)[0].stopped and not hub.following
        with hub.subscription():  # a later page gets a new feed
            assert len(started(runs)) == 2
        await hub.stop()

    asyncio.run(scenario())


def test_events_reach_every_page() -> None:
    runs: list[FakeFeed] = []

    async def scenario() -> list[str | None]:
        hub = hub_with(runs)
        await hub.start()
        with hub.subscription() as first, hub.subscription() as second:
            sink = started(runs)[0].sink
            assert sink is not None
            sink({"type": "order.created", "data": {"id": 1}})  # from the feed's thread
            return [await asyncio.wait_for(s.next(), 1) for s in (first, second)]

    texts = asyncio.run(scenario())
    assert texts == ['{"type":"order.created","data":{"id":1}}'] * 2


def test_waiting_for_a_feed_that_cannot_connect_gives_up() -> None:
    class Unreachable(FakeFeed):
        def start(self, sink: Sink) -> None:
            self.started = True  # never connected: the broker is down

    runs: list[FakeFeed] = []

    async def scenario() -> bool:
        hub = LiveHub(lambda: Unreachable(runs))
        await hub.start()
        with hub.subscription():
            return await hub.until_following(0.05)

    assert asyncio.run(scenario()) is False

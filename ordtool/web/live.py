"""The live orders page: its shell at ``/``, WebSocket tickets, and the hub behind
``/ws/orders`` that fans order events out to every connected page of this replica.

Every replica runs its own hub fed by ``messaging.feed`` (its own queue on the broker, or its
database's outbox without one), so every page sees every event, whichever replica or CLI
placed the order. The order app calls ``mount_live(fastapi_app, app)`` once.

The hub follows its feed only while a page is connected (and ``IDLE_STOP_S`` after the last
one leaves, so a reload does not reconnect). Following the broker means receiving, decoding
and acknowledging every order event in the order service's process: at 1,000 orders/s that
took enough of its interpreter to push the orders' own p99 from 0.36 s to 1.8-4.6 s and the
events' commit -> audit p99 from 76 ms to 460-554 ms (bench/event_latency.py), for nobody.
A page's socket is accepted once the feed is following, so no event falls between the page's
first list and its first event.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ordtool import metrics
from ordtool.bootstrap import App
from ordtool.domain.commands import MAX_PAGE_SIZE, OrderQuery
from ordtool.domain.events import order_data
from ordtool.messaging.feed import Envelope, Feed
from ordtool.services import orders as use_cases
from ordtool.web.auth import Caller, require
from ordtool.web.service import also_during_lifespan
from ordtool.web.tickets import TicketStore

log = logging.getLogger(__name__)

CLIENT_QUEUE = 1_000  # events buffered per page; a page that falls further behind is dropped
IDLE_STOP_S = 30.0  # the feed stops this long after the last page left
READY_WAIT_S = 3.0  # longest a page's socket waits for the feed (a broker outage: then live)
READY_POLL_S = 0.01
# WebSocket close codes: 1008 policy violation (bad ticket), 1012 service restart, 1013 try later.
CLOSE_BAD_TICKET = 1008
CLOSE_RESTART = 1012
CLOSE_TOO_SLOW = 1013

# The page is one HTML file plus same-origin JS and CSS: nothing inline, nothing from elsewhere.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
STATIC_DIR = Path(__file__).parent / "static"
ASSETS = {"live.js": "text/javascript", "live.css": "text/css"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class Subscription:
    """One page's queue of serialized events; closing it ends that page's socket."""

    def __init__(self, size: int) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(size)
        self.close_code: int | None = None

    def offer(self, text: str) -> None:
        if self.close_code is not None:
            return
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            # Too slow to keep up: drop it rather than buffer without bound; the page
            # reconnects and asks for a snapshot.
            self.close(CLOSE_TOO_SLOW)

    def close(self, code: int) -> None:
        if self.close_code is not None:
            return
        self.close_code = code
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def next(self) -> str | None:
        return await self._queue.get()


class LiveHub:
    """Fans each order event out to every page connected to this process, from a feed that
    runs while pages are connected."""

    def __init__(
        self,
        feeds: Callable[[], Feed],
        *,
        queue_size: int = CLIENT_QUEUE,
        idle_stop_s: float = IDLE_STOP_S,
    ) -> None:
        self._feeds = feeds  # a new feed for each run (a feed starts once)
        self._mode = feeds().mode
        self._queue_size = queue_size
        self._idle_stop_s = idle_stop_s
        self._feed: Feed | None = None
        self._idle_stop: asyncio.TimerHandle | None = None
        self._subscriptions: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def following(self) -> bool:
        return self._feed is not None

    @property
    def broker_connected(self) -> bool | None:
        """The hub's broker connection (for /readyz); None when it holds none (no broker, or
        no page connected)."""
        if self._mode != "broker" or self._feed is None:
            return None
        return self._feed.connected

    @property
    def clients(self) -> int:
        return len(self._subscriptions)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        log.info("live hub ready (%s feed, followed while pages are connected)", self._mode)

    async def stop(self) -> None:
        self._cancel_idle_stop()
        for subscription in list(self._subscriptions):
            subscription.close(CLOSE_RESTART)
        feed, self._feed = self._feed, None
        if feed is not None:
            await asyncio.to_thread(feed.stop)

    async def until_following(self, timeout_s: float = READY_WAIT_S) -> bool:
        """Wait until the feed receives events (True), or give up after ``timeout_s``."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not (self._feed is not None and self._feed.connected):
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(READY_POLL_S)
        return True

    def _from_feed_thread(self, envelope: Envelope) -> None:
        # The feed runs in its own thread; asyncio objects may only be touched on the loop.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.publish, envelope)

    def publish(self, envelope: Envelope) -> None:
        text = json.dumps(envelope, separators=(",", ":"))  # once, not once per page
        for subscription in list(self._subscriptions):
            subscription.offer(text)

    @contextmanager
    def subscription(self) -> Iterator[Subscription]:
        """On the event loop: a page's queue; the first one starts the feed."""
        subscription = Subscription(self._queue_size)
        self._subscriptions.add(subscription)
        metrics.LIVE_CLIENTS.inc()
        self._cancel_idle_stop()
        if self._feed is None:
            self._feed = self._feeds()
            self._feed.start(self._from_feed_thread)
            log.info("live hub: following the %s feed", self._mode)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            metrics.LIVE_CLIENTS.dec()
            if not self._subscriptions and self._loop is not None:
                self._idle_stop = self._loop.call_later(self._idle_stop_s, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._idle_stop = None
        feed = self._feed
        if self._subscriptions or feed is None or self._loop is None:
            return
        self._feed = None
        log.info("live hub: no page for %g s; the feed stops", self._idle_stop_s)
        self._loop.run_in_executor(None, feed.stop)  # it joins its thread: not on the loop

    def _cancel_idle_stop(self) -> None:
        if self._idle_stop is not None:
            self._idle_stop.cancel()
            self._idle_stop = None


router = APIRouter()


@router.get("/", include_in_schema=False)
def page() -> HTMLResponse:
    """The data-free shell of the live orders page (no auth: it holds no data)."""
    html = _asset("index.html")
    headers = SECURITY_HEADERS | {"Content-Security-Policy": CONTENT_SECURITY_POLICY}
    return HTMLResponse(html, headers=headers)


@router.get("/static/{name}", include_in_schema=False)
def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        return Response(status_code=404)
    return Response(_asset(name), media_type=media_type, headers=SECURITY_HEADERS)


@router.post("/ws-ticket", tags=["live"], summary="Trade an API key for a WebSocket ticket")
def ws_ticket(
    request: Request, caller: Annotated[Caller, Depends(require("orders:read"))]
) -> dict[str, Any]:
    """A single-use ticket, valid for a few seconds, to open `/ws/orders?ticket=...`."""
    store: TicketStore[Caller] = request.app.state.tickets
    return {"ticket": store.issue(caller), "expires_in": int(store.ttl_s)}


@router.websocket("/ws/orders")
async def orders_socket(websocket: WebSocket, ticket: str = "", snapshot: int = 0) -> None:
    """Order events as they happen, one JSON envelope per message. ``snapshot=N`` first sends
    the newest N orders (a reconnecting page uses it to catch up on what it missed)."""
    store: TicketStore[Caller] = websocket.app.state.tickets
    if store.redeem(ticket) is None:
        await websocket.close(code=CLOSE_BAD_TICKET)  # before accept: the handshake gets 403
        return
    hub: LiveHub = websocket.app.state.live_hub
    # Subscribed, and the feed following, before the page learns it is connected (it then
    # loads its first list), so no event falls in between.
    with hub.subscription() as subscription:
        try:
            await hub.until_following()
            await websocket.accept()
            if snapshot > 0:
                app: App = websocket.app.state.app
                await websocket.send_text(await _snapshot(app, min(snapshot, MAX_PAGE_SIZE)))
            await _pump(websocket, subscription)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the page went away mid-send


async def _snapshot(app: App, limit: int) -> str:
    found = await run_in_threadpool(use_cases.list_orders, app.orders_uow, OrderQuery(limit=limit))
    return json.dumps({"type": "snapshot", "orders": [order_data(order) for order in found]})


async def _pump(websocket: WebSocket, subscription: Subscription) -> None:
    """Send the subscription's events until the page leaves or the hub drops the page."""
    watcher = asyncio.create_task(_until_disconnect(websocket, subscription))
    try:
        while (text := await subscription.next()) is not None:
            await websocket.send_text(text)
    finally:
        page_left = watcher.done()
        watcher.cancel()
    if not page_left and websocket.application_state == WebSocketState.CONNECTED:
        # The hub dropped this page (too slow, or shutting down): say why, so it reconnects.
        await websocket.close(code=subscription.close_code or CLOSE_RESTART)


async def _until_disconnect(websocket: WebSocket, subscription: Subscription) -> None:
    # The page sends nothing we need, but reading is how a closed socket is noticed.
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        subscription.close(CLOSE_RESTART)


@cache
def _asset(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def mount_live(fastapi_app: FastAPI, app: App) -> LiveHub:
    """Add the page, the ticket endpoint and the WebSocket to the order app, and run the hub
    for as long as the app runs (wrapping whatever lifespan the app already has)."""
    hub = LiveHub(app.live_feed)
    fastapi_app.state.live_hub = hub
    fastapi_app.state.tickets = TicketStore[Caller]()
    # Not a readiness probe: a broker outage must not take every replica out of rotation
    # (orders still commit to the outbox); /readyz may report hub.broker_connected as info.
    fastapi_app.include_router(router)

    @asynccontextmanager
    async def running_hub() -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    also_during_lifespan(fastapi_app, running_hub)
    return hub

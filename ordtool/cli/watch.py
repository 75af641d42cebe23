"""ordtool orders watch: the live orders table in the terminal.

The same two sources as the live page (``messaging.feed``): the broker when ``amqp_url`` is set,
else the orders database's outbox. The table is loaded once, then changes only with events.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterable
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ordtool.cli import shared
from ordtool.domain.commands import OrderQuery, parse_input
from ordtool.domain.events import ORDER_CREATED, ORDER_STATUS_CHANGED, order_data
from ordtool.domain.orders import OrderStatus, allowed_values
from ordtool.messaging.feed import Envelope, Feed
from ordtool.services import orders as use_cases

FRESH_S = 3.0  # how long a new or changed row stays highlighted
READY_WAIT_S = 3.0  # how long to wait for the feed before loading (so no event falls between)
TICK_S = 0.25
COLUMNS = ("id", "customer", "sku", "qty", "status", "created_at", "updated_at")
NUMERIC = {"id", "customer", "qty"}
TERMINAL = {str(OrderStatus.COMPLETED), str(OrderStatus.FAILED)}


class OrderBoard:
    """The newest ``limit`` orders (optionally of one status), kept up to date by events.

    Events may come twice or late: a finished order never goes back to PENDING.
    """

    def __init__(self, limit: int, status: str | None = None) -> None:
        self.limit = limit
        self.status = status
        self.events = 0
        self._orders: dict[int, dict[str, Any]] = {}
        self._touched: dict[int, float] = {}

    def load(self, orders: Iterable[dict[str, Any]]) -> None:
        for order in orders:
            self._upsert(order, highlight=False)

    def apply(self, envelope: Envelope, now: float | None = None) -> bool:
        """Apply one event; True when the table changed."""
        if envelope.get("type") not in (ORDER_CREATED, ORDER_STATUS_CHANGED):
            return False
        self.events += 1
        return self._upsert(envelope["data"], highlight=True, now=now)

    def rows(self) -> list[dict[str, Any]]:
        return [self._orders[order_id] for order_id in sorted(self._orders, reverse=True)]

    def is_fresh(self, order_id: int, now: float) -> bool:
        return now - self._touched.get(order_id, -FRESH_S) < FRESH_S

    def _upsert(self, order: dict[str, Any], *, highlight: bool, now: float | None = None) -> bool:
        order_id = order.get("id")
        if not isinstance(order_id, int):
            return False
        known = self._orders.get(order_id)
        if known is not None and (
            known["status"] == order["status"]
            or (known["status"] in TERMINAL and order["status"] not in TERMINAL)
        ):
            return False
        if self.status is not None and order["status"] != self.status:
            # It no longer matches the filter (or never did).
            return self._orders.pop(order_id, None) is not None
        self._orders[order_id] = order
        if highlight:
            self._touched[order_id] = time.monotonic() if now is None else now
        self._trim()
        return order_id in self._orders

    def _trim(self) -> None:
        for order_id in sorted(self._orders)[: max(0, len(self._orders) - self.limit)]:
            del self._orders[order_id]
            self._touched.pop(order_id, None)


def render(board: OrderBoard, feed: Feed, now: float) -> RenderableType:
    title = "Orders, live" + (f" ({board.status})" if board.status else "")
    table = Table(title=title, title_justify="left", expand=False)
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in NUMERIC else "left", overflow="fold")
    for order in board.rows():
        status = OrderStatus(order["status"])
        table.add_row(
            str(order["id"]),
            str(order["customer_id"]),
            order["sku"],
            str(order["quantity"]),
            Text(str(status), style=shared.STATUS_STYLE[status]),
            order["created_at"],
            order["updated_at"],
            style="bold reverse" if board.is_fresh(order["id"], now) else None,
        )
    source = "broker" if feed.mode == "broker" else "orders outbox"
    state = (
        Text("● live", style="green")
        if feed.connected
        else Text("○ reconnecting", style="yellow")
    )
    footer = Text.assemble(
        state, f" · {source} · {board.events} events · {len(board.rows())} shown · Ctrl-C to stop"
    )
    return Group(table, footer)


def watch(
    status: Annotated[
        str | None,
        typer.Option(metavar="|".join(allowed_values()), help="Only orders with this status."),
    ] = None,
    limit: Annotated[
        str, typer.Option(metavar="N", help="Show the newest N orders (1-500).")
    ] = "20",
    timeout: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", min=0.1, help="Stop by itself after this many seconds."),
    ] = None,
) -> None:
    """Show the newest orders in a table that updates in place as orders are placed and change
    status (from the broker when ORDTOOL_AMQP_URL is set, else from the orders database).

    Example: ordtool orders watch --status PENDING --limit 30
    """
    raw = {"limit": limit} | ({"status": status} if status is not None else {})
    query = parse_input(OrderQuery, raw)
    board = OrderBoard(query.limit, str(query.status) if query.status else None)
    app = shared.app()
    events: queue.Queue[Envelope] = queue.Queue()
    feed = app.live_feed()
    feed.start(events.put)
    try:
        _wait_ready(feed)
        board.load(order_data(o) for o in use_cases.list_orders(app.orders_uow, query))
        _follow(board, feed, events, time.monotonic() + timeout if timeout else None)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends: exit 0, the table stays on screen
    finally:
        feed.stop()


def _wait_ready(feed: Feed) -> None:
    # Start following before loading the table, so an order placed in between is not lost.
    deadline = time.monotonic() + READY_WAIT_S
    while not feed.connected and time.monotonic() < deadline:
        time.sleep(0.05)


def _follow(
    board: OrderBoard, feed: Feed, events: queue.Queue[Envelope], deadline: float | None
) -> None:
    with Live(
        render(board, feed, time.monotonic()), console=shared.console, auto_refresh=False
    ) as live:
        while deadline is None or time.monotonic() < deadline:
            try:
                board.apply(events.get(timeout=TICK_S))
                while not events.empty():  # a burst renders once
                    board.apply(events.get_nowait())
            except queue.Empty:
                pass
            # Re-render on every tick too: highlights fade and the connection state changes.
            live.update(render(board, feed, time.monotonic()), refresh=True)

"""The live table's pure parts: WebSocket tickets, the outbox cursor, the per-page queue and
the terminal board's merge rules."""

from __future__ import annotations

import asyncio
import base64

from ordtool.cli.watch import OrderBoard
from ordtool.messaging.feed import GAP_WAIT_S, MAX_GAPS, OutboxCursor
from ordtool.web.live import CLOSE_TOO_SLOW, Subscription
from ordtool.web.tickets import TicketStore


def test_a_ticket_works_once_for_its_subject() -> None:
    store: TicketStore[str] = TicketStore(ttl_s=30)
    ticket = store.issue("key:abc")
    assert store.redeem(ticket) == "key:abc"
    assert store.redeem(ticket) is None


def test_a_ticket_expires() -> None:
    now = [1000.0]
    store: TicketStore[str] = TicketStore(ttl_s=30, clock=lambda: now[0])
    ticket = store.issue("key:abc")
    now[0] += 30.01
    assert store.redeem(ticket) is None


def test_unknown_and_empty_tickets_are_refused() -> None:
    store: TicketStore[str] = TicketStore()
    store.issue("key:abc")
    assert store.redeem("") is None
    assert store.redeem("not-a-ticket") is None


def test_tickets_are_256_random_bits_and_stored_only_as_hashes() -> None:
    store: TicketStore[str] = TicketStore()
    tickets = {store.issue("s") for _ in range(100)}
    assert len(tickets) == 100
    for ticket in tickets:
        assert len(base64.urlsafe_b64decode(ticket + "=")) == 32
    assert not tickets & set(store._tickets)  # the keys are digests, not the tickets


def test_expired_tickets_are_purged_when_new_ones_are_issued() -> None:
    now = [1000.0]
    store: TicketStore[str] = TicketStore(ttl_s=30, clock=lambda: now[0])
    for _ in range(5):
        store.issue("s")
    now[0] += 31
    store.issue("s")
    assert len(store) == 1


def test_cursor_follows_ids_and_remembers_gaps() -> None:
    cursor = OutboxCursor(last=10)
    cursor.advance([11, 12, 15], now=0.0)
    assert cursor.last == 15
    assert set(cursor.gaps) == {13, 14}
    # 13 commits late: it is read through the gap list and leaves it.
    cursor.advance([13], now=1.0)
    assert set(cursor.gaps) == {14}
    assert cursor.last == 15


def test_cursor_gives_up_a_gap_after_the_wait() -> None:
    cursor = OutboxCursor(last=0)
    cursor.advance([2], now=0.0)
    assert set(cursor.gaps) == {1}
    cursor.advance([], now=GAP_WAIT_S + 0.1)
    assert cursor.gaps == {}


def test_cursor_ignores_rows_it_has_seen_and_bounds_the_gaps() -> None:
    cursor = OutboxCursor(last=5)
    cursor.advance([3, 5], now=0.0)
    assert cursor.last == 5
    assert cursor.gaps == {}
    cursor.advance([5 + 3 * MAX_GAPS], now=0.0)
    assert len(cursor.gaps) == MAX_GAPS
    assert max(cursor.gaps) == 5 + 3 * MAX_GAPS - 1


def test_a_page_that_falls_behind_is_dropped_not_buffered() -> None:
    async def scenario() -> tuple[int | None, str | None]:
        subscription = Subscription(size=3)
        for number in range(10):
            subscription.offer(f"event {number}")
        return subscription.close_code, await subscription.next()

    close_code, first = asyncio.run(scenario())
    assert close_code == CLOSE_TOO_SLOW
    assert first is None  # the queue was emptied: the page gets a close, then a snapshot


def _order(order_id: int, status: str = "PENDING") -> dict[str, object]:
    return {
        "id": order_id,
        "customer_id": 1,
        "sku": "BOOK-1",
        "quantity": 1,
        "status": status,
        "created_at": "2026-12-03T10:00:00Z",
        "updated_at": "2026-12-03T10:00:00Z",
    }


def _event(kind: str, order_id: int, status: str = "PENDING") -> dict[str, object]:
    return {"id": f"e{order_id}{status}", "type": kind, "data": _order(order_id, status)}


def test_board_adds_created_orders_newest_first_and_keeps_the_limit() -> None:
    board = OrderBoard(limit=2)
    board.load([_order(1)])
    assert board.apply(_event("order.created", 2), now=0.0)
    assert board.apply(_event("order.created", 3), now=0.0)
    assert [row["id"] for row in board.rows()] == [3, 2]
    assert board.is_fresh(3, now=1.0)
    assert not board.is_fresh(3, now=10.0)


def test_board_updates_status_in_place_and_never_goes_back_to_pending() -> None:
    board = OrderBoard(limit=10)
    board.load([_order(1)])
    assert board.apply(_event("order.status_changed", 1, "COMPLETED"))
    # A late duplicate of the creation must not undo the change.
    assert not board.apply(_event("order.created", 1, "PENDING"))
    assert board.rows()[0]["status"] == "COMPLETED"


def test_board_with_a_status_filter_drops_orders_that_leave_it() -> None:
    board = OrderBoard(limit=10, status="PENDING")
    board.load([_order(1)])
    assert board.apply(_event("order.status_changed", 1, "FAILED"))
    assert board.rows() == []
    assert not board.apply(_event("customer.created", 5))

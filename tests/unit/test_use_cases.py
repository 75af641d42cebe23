"""Use cases of ordtool/services over in-memory fakes of the ports (tests/unit/fakes.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ordtool.domain.commands import (
    ChangeOrderStatus,
    CreateCustomer,
    OrderQuery,
    Page,
    PlaceOrder,
    parse_input,
)
from ordtool.domain.events import CUSTOMER_CREATED, ORDER_CREATED, ORDER_STATUS_CHANGED
from ordtool.domain.orders import Order, OrderStatus
from ordtool.errors import (
    AlreadyExists,
    DependencyUnavailable,
    ForbiddenTransition,
    NotFound,
    UnknownCustomer,
)
from ordtool.services import customers, orders
from tests.unit.fakes import (
    FakeCustomerDirectory,
    FakeDatabase,
    customers_uow_factory,
    orders_uow_factory,
)

PENDING, COMPLETED, FAILED = OrderStatus.PENDING, OrderStatus.COMPLETED, OrderStatus.FAILED


@pytest.fixture
def orders_db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def customers_db() -> FakeDatabase:
    return FakeDatabase()


def place(
    db: FakeDatabase, directory: FakeCustomerDirectory, customer_id: int = 1, quantity: int = 2
) -> orders.PlacedOrder:
    command = PlaceOrder(customer_id=customer_id, sku="BOOK-42", quantity=quantity)
    return orders.place_order(orders_uow_factory(db), directory, command, correlation_id="req-1")


def set_status(db: FakeDatabase, order_id: int, status: str) -> orders.StatusChange:
    command = parse_input(ChangeOrderStatus, {"order_id": order_id, "status": status})
    return orders.change_status(orders_uow_factory(db), command)


def assert_envelope(envelope: dict[str, object], event_type: str) -> None:
    assert set(envelope) == {"id", "type", "version", "occurred_at", "correlation_id", "data"}
    assert envelope["type"] == event_type
    assert envelope["version"] == 1
    uuid.UUID(str(envelope["id"]))
    assert str(envelope["occurred_at"]).endswith("Z")


# --- placing orders -------------------------------------------------------------------------


def test_place_order_commits_a_pending_order_and_its_event(orders_db: FakeDatabase) -> None:
    before = datetime.now(UTC)
    placed = place(orders_db, FakeCustomerDirectory({1}, orders_db=orders_db))
    order = placed.order
    assert (order.customer_id, order.sku, order.quantity, order.status) == (
        1,
        "BOOK-42",
        2,
        PENDING,
    )
    assert order.created_at == order.updated_at
    assert order.created_at.tzinfo is not None and order.created_at.utcoffset() == timedelta(0)
    assert before <= order.created_at <= datetime.now(UTC)
    assert placed.customer_check_stale is False
    assert orders_db.committed.orders == {order.id: order}
    assert orders_db.commits == 1
    [event] = orders_db.committed.outbox
    envelope = event.envelope()
    assert_envelope(envelope, ORDER_CREATED)
    assert envelope["correlation_id"] == "req-1"
    assert envelope["data"] == {
        "id": order.id,
        "customer_id": 1,
        "sku": "BOOK-42",
        "quantity": 2,
        "status": "PENDING",
        "created_at": order.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": order.updated_at.isoformat().replace("+00:00", "Z"),
    }
    assert event.aggregate_id == order.id


def test_unknown_customer_is_refused_and_nothing_is_written(orders_db: FakeDatabase) -> None:
    directory = FakeCustomerDirectory({1})
    with pytest.raises(UnknownCustomer) as caught:
        place(orders_db, directory, customer_id=99)
    assert caught.value.exit_code == 2
    assert "customer 99 does not exist" in str(caught.value)
    assert directory.lookups == [99]
    assert orders_db.committed.orders == {} and orders_db.committed.outbox == []
    assert orders_db.commits == 0


def test_directory_down_is_a_dependency_error_and_nothing_is_written(
    orders_db: FakeDatabase,
) -> None:
    with pytest.raises(DependencyUnavailable) as caught:
        place(orders_db, FakeCustomerDirectory({1}, down=True))
    assert caught.value.exit_code == 3
    assert orders_db.commits == 0 and orders_db.committed.outbox == []


def test_customer_check_happens_outside_the_transaction(orders_db: FakeDatabase) -> None:
    directory = FakeCustomerDirectory({1}, orders_db=orders_db)
    place(orders_db, directory)
    assert directory.lookups == [1]
    assert directory.lookups_inside_transaction == 0


def test_a_stale_customer_answer_is_reported(orders_db: FakeDatabase) -> None:
    placed = place(orders_db, FakeCustomerDirectory({1}, stale=True))
    assert placed.customer_check_stale is True
    assert orders_db.commits == 1


def test_each_order_gets_its_own_id_and_event(orders_db: FakeDatabase) -> None:
    directory = FakeCustomerDirectory({1, 2})
    ids = [place(orders_db, directory, customer_id=c).order.id for c in (1, 2, 1)]
    assert len(set(ids)) == 3
    events = orders_db.committed.outbox
    assert [e.aggregate_id for e in events] == ids
    assert len({e.id for e in events}) == 3


# --- changing status ------------------------------------------------------------------------


@pytest.fixture
def pending(orders_db: FakeDatabase) -> Order:
    return place(orders_db, FakeCustomerDirectory({1})).order


@pytest.mark.parametrize("target", [COMPLETED, FAILED])
def test_change_status_from_pending_writes_the_change_and_one_event(
    orders_db: FakeDatabase, pending: Order, target: OrderStatus
) -> None:
    change = set_status(orders_db, pending.id, target.value.lower())
    assert change.changed is True
    assert change.order.status is target
    assert change.order.created_at == pending.created_at
    assert change.order.updated_at >= pending.updated_at
    assert orders_db.committed.orders[pending.id] == change.order
    created, changed = orders_db.committed.outbox
    assert created.type == ORDER_CREATED
    envelope = changed.envelope()
    assert_envelope(envelope, ORDER_STATUS_CHANGED)
    data = envelope["data"]
    assert isinstance(data, dict)
    assert data["status"] == target.value and data["previous_status"] == "PENDING"
    assert changed.occurred_at == change.order.updated_at


@pytest.mark.parametrize("status", [PENDING, COMPLETED, FAILED])
def test_setting_the_same_status_again_is_a_no_op(
    orders_db: FakeDatabase, pending: Order, status: OrderStatus
) -> None:
    if status is not PENDING:
        set_status(orders_db, pending.id, status.value)
    before_commits, before_events = orders_db.commits, list(orders_db.committed.outbox)
    current = orders_db.committed.orders[pending.id]
    change = set_status(orders_db, pending.id, status.value)
    assert change.changed is False
    assert change.order == current
    assert orders_db.commits == before_commits
    assert orders_db.committed.outbox == before_events


@pytest.mark.parametrize(
    ("first", "then"),
    [(COMPLETED, PENDING), (COMPLETED, FAILED), (FAILED, PENDING), (FAILED, COMPLETED)],
)
def test_forbidden_transition_changes_nothing(
    orders_db: FakeDatabase, pending: Order, first: OrderStatus, then: OrderStatus
) -> None:
    set_status(orders_db, pending.id, first.value)
    snapshot = (dict(orders_db.committed.orders), list(orders_db.committed.outbox))
    with pytest.raises(ForbiddenTransition):
        set_status(orders_db, pending.id, then.value)
    assert (orders_db.committed.orders, orders_db.committed.outbox) == snapshot


def test_change_status_of_a_missing_order_is_not_found(orders_db: FakeDatabase) -> None:
    with pytest.raises(NotFound) as caught:
        set_status(orders_db, 404, "COMPLETED")
    assert caught.value.exit_code == 1 and caught.value.http_status == 404
    assert "order 404 does not exist" in str(caught.value)
    assert orders_db.commits == 0


# --- reading orders -------------------------------------------------------------------------


def test_get_order_and_not_found(orders_db: FakeDatabase, pending: Order) -> None:
    uow = orders_uow_factory(orders_db)
    assert orders.get_order(uow, pending.id) == pending
    with pytest.raises(NotFound):
        orders.get_order(uow, pending.id + 1)
    assert orders_db.write_units == 1  # only the placing; reads take no write lock


def test_list_orders_passes_filters_and_page(orders_db: FakeDatabase) -> None:
    directory = FakeCustomerDirectory({1, 2})
    placed = [place(orders_db, directory, customer_id=c).order for c in (1, 2, 1, 1)]
    set_status(orders_db, placed[0].id, "COMPLETED")
    uow = orders_uow_factory(orders_db)

    def ids(**raw: object) -> list[int]:
        query = parse_input(OrderQuery, raw)
        return [o.id for o in orders.list_orders(uow, query)]

    all_ids = [o.id for o in reversed(placed)]
    assert ids() == all_ids  # newest first
    assert ids(customer_id=1) == [placed[3].id, placed[2].id, placed[0].id]
    assert ids(status="COMPLETED") == [placed[0].id]
    assert ids(limit=2) == all_ids[:2]
    assert ids(limit=2, cursor=all_ids[1]) == all_ids[2:]


# --- customers ------------------------------------------------------------------------------


def new_customer(email: str = "ada@example.com", name: str = "Ada") -> CreateCustomer:
    return parse_input(CreateCustomer, {"name": name, "email": email, "address": "1 Rd"})


def test_create_customer_writes_the_customer_and_one_event(customers_db: FakeDatabase) -> None:
    customer = customers.create_customer(
        customers_uow_factory(customers_db), new_customer("Ada@Example.com"), "req-9"
    )
    assert customer.email == "ada@example.com"
    assert customer.created_at.utcoffset() == timedelta(0)
    assert customers_db.committed.customers == {customer.id: customer}
    [event] = customers_db.committed.outbox
    envelope = event.envelope()
    assert_envelope(envelope, CUSTOMER_CREATED)
    assert envelope["correlation_id"] == "req-9"
    data = envelope["data"]
    assert isinstance(data, dict)
    assert (data["id"], data["email"], data["name"]) == (customer.id, "ada@example.com", "Ada")


def test_an_existing_email_is_refused_and_nothing_is_written(customers_db: FakeDatabase) -> None:
    uow = customers_uow_factory(customers_db)
    customers.create_customer(uow, new_customer())
    with pytest.raises(AlreadyExists) as caught:
        customers.create_customer(uow, new_customer("ADA@example.com", name="Other Ada"))
    assert "ada@example.com" in str(caught.value)
    assert caught.value.exit_code == 2 and caught.value.http_status == 409
    assert len(customers_db.committed.customers) == 1
    assert len(customers_db.committed.outbox) == 1
    assert customers_db.commits == 1


def test_get_and_list_customers(customers_db: FakeDatabase) -> None:
    uow = customers_uow_factory(customers_db)
    made = [customers.create_customer(uow, new_customer(f"c{i}@example.com")) for i in range(5)]
    assert customers.get_customer(uow, made[2].id) == made[2]
    with pytest.raises(NotFound) as caught:
        customers.get_customer(uow, 999)
    assert "customer 999 does not exist" in str(caught.value)
    newest_first = [c.id for c in reversed(made)]
    first = customers.list_customers(uow, Page(limit=3))
    assert [c.id for c in first] == newest_first[:3]
    rest = customers.list_customers(uow, Page(limit=3, cursor=first[-1].id))
    assert [c.id for c in rest] == newest_first[3:]

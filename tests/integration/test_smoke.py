from ordtool.bootstrap import App
from ordtool.domain.commands import CreateCustomer, PlaceOrder
from ordtool.services import customers, orders


def test_place_order_round_trip(any_app: App) -> None:
    customer = customers.create_customer(
        any_app.customers_uow, CreateCustomer(name="Ada", email="ada@example.com", address="1 Rd")
    )
    placed = orders.place_order(
        any_app.orders_uow,
        any_app.customer_directory,
        PlaceOrder(customer_id=customer.id, sku="BOOK-1", quantity=2),
    )
    assert orders.get_order(any_app.orders_uow, placed.order.id) == placed.order
    assert placed.order.created_at.tzinfo is not None

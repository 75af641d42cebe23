"""ordtool orders: place orders, change their status, show and list them."""

from __future__ import annotations

from typing import Annotated

import typer

from ordtool.cli import shared
from ordtool.cli.watch import watch
from ordtool.domain.commands import ById, ChangeOrderStatus, OrderQuery, PlaceOrder, parse_input
from ordtool.domain.events import order_data
from ordtool.domain.orders import Order, allowed_values
from ordtool.services import orders as use_cases

cli = typer.Typer(
    help="Place orders, change their status, show and list them.", no_args_is_help=True
)

STATUSES = "|".join(allowed_values())


@cli.command()
def create(
    customer_id: Annotated[str, typer.Option(metavar="ID", help="An existing customer's id.")],
    sku: Annotated[str, typer.Option(help="Stock-keeping unit, e.g. BOOK-42.")],
    quantity: Annotated[str, typer.Option(metavar="N", help="Whole number from 1 to 10000.")],
    json_output: shared.JsonFlag = False,
) -> None:
    """Place an order for an existing customer; it starts PENDING.

    Example: ordtool orders create --customer-id 1 --sku BOOK-42 --quantity 2
    """
    command = parse_input(
        PlaceOrder, {"customer_id": customer_id, "sku": sku, "quantity": quantity}
    )
    app = shared.app()
    placed = use_cases.place_order(app.orders_uow, app.customer_directory, command)
    if placed.customer_check_stale:
        shared.note("customer service unreachable: the customer was accepted from cache")
    _show(placed.order, json_output)


@cli.command("set-status")
def set_status(
    order_id: Annotated[str, typer.Argument(metavar="ID", help="The order's id.")],
    status: Annotated[str, typer.Argument(metavar=STATUSES, help="The new status.")],
    json_output: shared.JsonFlag = False,
) -> None:
    """Move an order to COMPLETED or FAILED (only from PENDING); the same status is a no-op.

    Example: ordtool orders set-status 7 COMPLETED
    """
    command = parse_input(ChangeOrderStatus, {"order_id": order_id, "status": status})
    change = use_cases.change_status(shared.app().orders_uow, command)
    if not change.changed:
        shared.note(f"order {change.order.id} is already {change.order.status}: nothing to do")
    _show(change.order, json_output)


@cli.command()
def show(
    order_id: Annotated[str, typer.Argument(metavar="ID", help="The order's id.")],
    json_output: shared.JsonFlag = False,
) -> None:
    """Show one order.

    Example: ordtool orders show 7 --json
    """
    wanted = parse_input(ById, {"id": order_id})
    _show(use_cases.get_order(shared.app().orders_uow, wanted.id), json_output)


@cli.command("list")
def list_(
    customer_id: Annotated[
        str | None, typer.Option(metavar="ID", help="Only this customer's.")
    ] = None,
    status: Annotated[str | None, typer.Option(metavar=STATUSES, help="Only this status.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Created at or after (ISO 8601, with zone).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Created before (ISO 8601, with zone).")] = None,
    limit: Annotated[str, typer.Option(metavar="N", help="At most N orders (1-500).")] = "50",
    cursor: Annotated[
        str | None, typer.Option(metavar="ID", help="Continue after this id.")
    ] = None,
    json_output: shared.JsonFlag = False,
) -> None:
    """List orders, newest first, with filters and pagination.

    Example: ordtool orders list --status PENDING --since 2026-12-01T00:00:00Z --limit 20
    """
    raw = {
        "customer_id": customer_id,
        "status": status,
        "since": since,
        "until": until,
        "limit": limit,
        "cursor": cursor,
    }
    query = parse_input(OrderQuery, {key: value for key, value in raw.items() if value is not None})
    found = use_cases.list_orders(shared.app().orders_uow, query)
    next_cursor = found[-1].id if len(found) == query.limit else None
    if json_output:
        shared.print_json({"items": [order_data(o) for o in found], "next_cursor": next_cursor})
        return
    shared.print_table(
        "Orders",
        ["id", "customer", "sku", "qty", "status", "created_at"],
        [_row(order) for order in found],
    )
    if next_cursor:
        shared.note(f"more: add --cursor {next_cursor}")


def _row(order: Order) -> list[str]:
    data = order_data(order)
    badge = f"[{shared.STATUS_STYLE[order.status]}]{order.status}[/]"
    return [
        str(order.id),
        str(order.customer_id),
        order.sku,
        str(order.quantity),
        badge,
        data["created_at"],
    ]


def _show(order: Order, json_output: bool) -> None:
    data = order_data(order)
    shared.print_json(data) if json_output else shared.print_record(data)


cli.command()(watch)  # ordtool orders watch: the live table (cli/watch.py)

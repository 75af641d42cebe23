"""ordtool customers: create, list and show customers."""

from __future__ import annotations

from typing import Annotated

import typer

from ordtool.cli import shared
from ordtool.domain.commands import ById, CreateCustomer, Page, parse_input
from ordtool.domain.customers import Customer
from ordtool.domain.events import customer_data
from ordtool.services import customers as use_cases

cli = typer.Typer(help="Create, list and show customers.", no_args_is_help=True)


@cli.command()
def create(
    name: Annotated[str, typer.Option(help="Full name.")],
    email: Annotated[str, typer.Option(help="Email; unique, stored in lower case.")],
    address: Annotated[str, typer.Option(help="Postal address.")],
    json_output: shared.JsonFlag = False,
) -> None:
    """Create a customer.

    Example: ordtool customers create --name "Ada Lovelace" --email ada@example.com
    --address "12 St James's Square, London"
    """
    command = parse_input(CreateCustomer, {"name": name, "email": email, "address": address})
    customer = use_cases.create_customer(shared.app().customers_uow, command)
    _show(customer, json_output)


@cli.command("list")
def list_(
    limit: Annotated[str, typer.Option(metavar="N", help="At most N customers (1-500).")] = "50",
    cursor: Annotated[
        str | None, typer.Option(metavar="ID", help="Continue after this id (from a last page).")
    ] = None,
    json_output: shared.JsonFlag = False,
) -> None:
    """List customers, newest first.

    Example: ordtool customers list --limit 20 --json
    """
    page = parse_input(Page, {"limit": limit, "cursor": cursor})
    found = use_cases.list_customers(shared.app().customers_uow, page)
    next_cursor = found[-1].id if len(found) == page.limit else None
    if json_output:
        shared.print_json({"items": [customer_data(c) for c in found], "next_cursor": next_cursor})
        return
    shared.print_table(
        "Customers",
        ["id", "name", "email", "address", "created_at"],
        [[str(c.id), c.name, c.email, c.address, customer_data(c)["created_at"]] for c in found],
    )
    if next_cursor:
        shared.note(f"more: ordtool customers list --cursor {next_cursor}")


@cli.command()
def show(
    customer_id: Annotated[str, typer.Argument(metavar="ID", help="The customer's id.")],
    json_output: shared.JsonFlag = False,
) -> None:
    """Show one customer.

    Example: ordtool customers show 1
    """
    wanted = parse_input(ById, {"id": customer_id})
    _show(use_cases.get_customer(shared.app().customers_uow, wanted.id), json_output)


def _show(customer: Customer, json_output: bool) -> None:
    data = customer_data(customer)
    shared.print_json(data) if json_output else shared.print_record(data)

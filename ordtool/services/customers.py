"""Customer use cases."""

from __future__ import annotations

from ordtool.domain.clock import utc_now
from ordtool.domain.commands import CreateCustomer, Page
from ordtool.domain.customers import Customer
from ordtool.domain.events import customer_created
from ordtool.errors import AlreadyExists, NotFound
from ordtool.services.ports import CustomersUowFactory


def create_customer(
    uow_factory: CustomersUowFactory, command: CreateCustomer, correlation_id: str | None = None
) -> Customer:
    with uow_factory(write=True) as uow:
        if uow.customers.by_emails([command.email]):
            raise AlreadyExists(
                f"a customer with email {command.email} already exists",
                hint="use another email, or look it up with ordtool customers list",
            )
        customer = uow.customers.add(command, utc_now())
        uow.outbox.add([customer_created(customer, correlation_id)])
        uow.commit()
    return customer


def get_customer(uow_factory: CustomersUowFactory, customer_id: int) -> Customer:
    with uow_factory() as uow:
        customer = uow.customers.get(customer_id)
    if customer is None:
        raise NotFound(
            f"customer {customer_id} does not exist", hint="list them: ordtool customers list"
        )
    return customer


def list_customers(uow_factory: CustomersUowFactory, page: Page) -> list[Customer]:
    with uow_factory() as uow:
        return uow.customers.list(page)

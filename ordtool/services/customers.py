"""Customer use cases."""

from __future__ import annotations

from dataclasses import replace

from ordtool.domain.clock import utc_now
from ordtool.domain.commands import CreateCustomer, Page, UpdateCustomer
from ordtool.domain.customers import Customer
from ordtool.domain.events import customer_created, customer_deleted, customer_updated
from ordtool.errors import AlreadyExists, InvalidInput, NotFound
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


def update_customer(
    uow_factory: CustomersUowFactory,
    customer_id: int,
    command: UpdateCustomer,
    correlation_id: str | None = None,
) -> Customer:
    """Change the name and/or address. Values equal to the current ones change nothing and
    emit no event, so a retried update is harmless."""
    if command.name is None and command.address is None:
        raise InvalidInput("nothing to update", hint="give a new name and/or address")
    with uow_factory(write=True) as uow:
        current = uow.customers.get(customer_id, for_update=True)
        if current is None:
            raise _customer_not_found(customer_id)
        wanted = (command.name or current.name, command.address or current.address)
        if wanted == (current.name, current.address):
            return current
        updated = replace(current, name=wanted[0], address=wanted[1], updated_at=utc_now())
        uow.customers.update_many([updated])
        uow.outbox.add([customer_updated(updated, correlation_id)])
        uow.commit()
    return updated


def delete_customer(
    uow_factory: CustomersUowFactory, customer_id: int, correlation_id: str | None = None
) -> Customer:
    """Delete the customer and return it as it was; its orders stay (another service's data)."""
    with uow_factory(write=True) as uow:
        current = uow.customers.get(customer_id, for_update=True)
        if current is None or not uow.customers.delete(customer_id):
            raise _customer_not_found(customer_id)
        uow.outbox.add([customer_deleted(current, utc_now(), correlation_id)])
        uow.commit()
    return current


def get_customer(uow_factory: CustomersUowFactory, customer_id: int) -> Customer:
    with uow_factory() as uow:
        customer = uow.customers.get(customer_id)
    if customer is None:
        raise _customer_not_found(customer_id)
    return customer


def list_customers(uow_factory: CustomersUowFactory, page: Page) -> list[Customer]:
    with uow_factory() as uow:
        return uow.customers.list(page)


def _customer_not_found(customer_id: int) -> NotFound:
    return NotFound(
        f"customer {customer_id} does not exist", hint="list them: ordtool customers list"
    )

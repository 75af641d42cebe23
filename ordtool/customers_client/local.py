"""Customer directory over the local customers database: the CLI's default when no customer
service URL is configured."""

from __future__ import annotations

from ordtool.services.ports import CustomerLookup, CustomersUowFactory


class LocalCustomerDirectory:
    def __init__(self, uow_factory: CustomersUowFactory) -> None:
        self._uow_factory = uow_factory

    def lookup(self, customer_id: int, *, request_id: str | None = None) -> CustomerLookup:
        with self._uow_factory() as uow:
            return CustomerLookup(exists=uow.customers.exists(customer_id))

    def lookup_in_memory(self, customer_id: int) -> CustomerLookup | None:
        return None  # every answer is a database query

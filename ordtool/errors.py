"""The one error hierarchy of ordtool.

Every error a user can meet says what went wrong and how to fix it, and knows the CLI exit code
and HTTP status it maps to, so that adapters never have to guess::

    OrdtoolError                      exit 1, HTTP 500  the operation failed
    ├── InvalidInput                  exit 2, HTTP 422  the input is wrong; the message says how
    │   ├── UnknownCustomer           exit 2, HTTP 422  no customer with that id
    │   └── SeedFileError             exit 2, HTTP 422  a seed file is malformed (names file:line)
    ├── NotFound                      exit 1, HTTP 404  no such order or customer
    ├── Conflict                      exit 2, HTTP 409  the input clashes with what exists
    │   ├── ForbiddenTransition       exit 2, HTTP 409  e.g. COMPLETED -> PENDING
    │   └── AlreadyExists             exit 2, HTTP 409  e.g. a customer with that email
    ├── ConfigurationError            exit 2, HTTP 500  a setting is wrong (unwritable data dir...)
    ├── DependencyUnavailable         exit 3, HTTP 503  a database, broker or service is down
    └── CheckFailed                   exit 4, HTTP 500  a check found a problem (SLO, verify, chaos)

This module imports nothing, so every layer (the domain included) may raise these.
"""

from __future__ import annotations


class OrdtoolError(Exception):
    """Root of every error ordtool raises on purpose."""

    exit_code = 1
    http_status = 500
    title = "Operation failed"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class InvalidInput(OrdtoolError):
    exit_code = 2
    http_status = 422
    title = "Invalid input"


class UnknownCustomer(InvalidInput):
    title = "Unknown customer"

    def __init__(self, customer_id: int) -> None:
        super().__init__(
            f"customer {customer_id} does not exist",
            hint="create it first (ordtool customers create) or check the id",
        )
        self.customer_id = customer_id


class SeedFileError(InvalidInput):
    title = "Malformed seed file"


class NotFound(OrdtoolError):
    exit_code = 1
    http_status = 404
    title = "Not found"


class Conflict(OrdtoolError):
    exit_code = 2
    http_status = 409
    title = "Conflict"


class ForbiddenTransition(Conflict):
    title = "Forbidden status transition"


class AlreadyExists(Conflict):
    title = "Already exists"


class ConfigurationError(OrdtoolError):
    exit_code = 2
    http_status = 500
    title = "Configuration error"


class DependencyUnavailable(OrdtoolError):
    exit_code = 3
    http_status = 503
    title = "Dependency unavailable"

    def __init__(
        self, message: str, *, hint: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class CheckFailed(OrdtoolError):
    exit_code = 4
    http_status = 500
    title = "Check failed"

"""The key files in the data directory, made on first start.

- ``admin.key``: an admin key that ``ordtool up`` prints once, for the operator and the CLI on
  this machine.
- ``service.key``: the order service's own key (scope customers:read) for calling the customer
  service, unless ``ORDTOOL_CUSTOMER_SERVICE_KEY`` supplies one.

Both are mode 0600 and created atomically (O_EXCL): of two processes starting at once, only one
makes the key.
"""

from __future__ import annotations

import time
from pathlib import Path

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.errors import ConfigurationError
from ordtool.services.keys import ADMIN_SCOPES, ensure_key_file, read_key_file

SERVICE_SCOPES = frozenset({"customers:read"})


def admin_key_path(settings: Settings) -> Path:
    return settings.data_dir / "admin.key"


def service_key_path(settings: Settings) -> Path:
    return settings.data_dir / "service.key"


def ensure_admin_key(app: App, path: Path | None = None) -> str | None:
    """On first start: create an admin key valid on both services, store it at ``path``
    (default ``<data dir>/admin.key``) and return it, to be printed once. Later: None."""
    target = path or admin_key_path(app.settings)
    return ensure_key_file(app.api_key_stores(), target, "admin", ADMIN_SCOPES)


def service_key_for(app: App, path: Path | None = None) -> str:
    """The key the order service sends to the customer service.

    The setting wins; otherwise the key in ``path`` (default ``<data dir>/service.key``),
    created on first use and written to both databases.
    """
    configured = app.settings.customer_service_key
    if configured is not None:
        return configured.get_secret_value()
    target = path or service_key_path(app.settings)
    created = ensure_key_file(app.api_key_stores(), target, "order-service", SERVICE_SCOPES)
    return created if created is not None else _read_written(target)


def _read_written(path: Path, wait_s: float = 5.0) -> str:
    # Another process may have just created the file and not yet written the key into it.
    deadline = time.monotonic() + wait_s
    while True:
        key = read_key_file(path)
        if key is not None:
            return key
        if time.monotonic() >= deadline:
            raise ConfigurationError(
                f"the key file {path} is empty",
                hint="delete it and start again, or set ORDTOOL_CUSTOMER_SERVICE_KEY",
            )
        time.sleep(0.05)

"""ASGI factories for uvicorn: ``uvicorn --factory ordtool.web.asgi:orders`` (or :customers).

Each builds its App from the environment (``ORDTOOL_*``) and sets up logging after uvicorn
did its own, so every line (uvicorn's included) comes out in ordtool's format, redacted, and
without uvicorn's access log.
"""

from __future__ import annotations

import gc
import sys

from fastapi import FastAPI

from ordtool.bootstrap import App
from ordtool.config import load_settings
from ordtool.logs import configure_logging

# Each factory imports only its own service, so a customer-service process never loads the
# order service's modules (the live page, the event feed).


def customers() -> FastAPI:
    from ordtool.web import customers_app

    return _served(customers_app.create_app(_app()))


def orders() -> FastAPI:
    from ordtool.web import orders_app

    return _served(orders_app.create_app(_app()))


def _app() -> App:
    settings = load_settings()
    configure_logging(settings)
    return App(settings)


# A server process runs its event loop beside worker threads (the orders writer, customer
# checks on a cache miss). A thread back from I/O (each SQLite step releases the GIL) waits
# for the GIL until the switch interval, 5 ms by default, makes the busy loop yield, so under
# load a batch of inserts took many times its CPU and every order waited on it.
SWITCH_INTERVAL_S = 0.0005


def _served(api: FastAPI) -> FastAPI:
    """Tune the interpreter for serving: shorter GIL hand-offs, and the start-up objects
    (modules, routes, schemas: nearly the whole heap) moved out of the cycle collector's
    sight. Its full collections scanned them all and paused the process 120-160 ms every few
    seconds at 1,000 orders/s (bench/latency_slo.py). Only the uvicorn factories call this:
    the tests' in-process apps leave their interpreter alone."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    return api

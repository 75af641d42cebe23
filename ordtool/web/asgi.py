"""ASGI factories for uvicorn: ``uvicorn --factory ordtool.web.asgi:orders`` (or :customers).

Each builds its App from the environment (``ORDTOOL_*``) and sets up logging after uvicorn
did its own, so every line (uvicorn's included) comes out in ordtool's format, redacted, and
without uvicorn's access log.
"""

from __future__ import annotations

from fastapi import FastAPI

from ordtool.bootstrap import App
from ordtool.config import load_settings
from ordtool.interpreter import tune_for_serving
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


def _served(api: FastAPI) -> FastAPI:
    """Only the uvicorn factories call this: the tests' in-process apps leave their
    interpreter alone."""
    tune_for_serving()
    return api

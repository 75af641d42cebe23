"""Connections to RabbitMQ: parameters from the settings, and the one place that turns pika's
errors into ordtool's (like httpx's ``_exceptions`` mapping).

Every connection has heartbeats (a dead peer is noticed within two intervals), a
``blocked_connection_timeout`` (a broker that blocks publishers on a resource alarm for too
long gets the connection closed and re-opened instead of hanging forever), a connect timeout
and a name that shows in ``rabbitmqctl list_connections``.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit, urlunsplit

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError
from sqlalchemy.exc import SQLAlchemyError

from ordtool.config import EventsSettings
from ordtool.errors import DependencyUnavailable

# What a broken or unreachable broker raises: pika's own errors and the socket's.
BROKER_ERRORS: tuple[type[BaseException], ...] = (AMQPError, OSError, socket.gaierror)
# What a relay or consumer pass may fail with and still be worth retrying after a backoff:
# the broker, or the database (mapped or raw).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    DependencyUnavailable,
    SQLAlchemyError,
    *BROKER_ERRORS,
)


def parameters(url: str, events: EventsSettings, name: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.heartbeat = events.heartbeat_s
    params.blocked_connection_timeout = events.blocked_connection_timeout_s
    params.socket_timeout = events.connect_timeout_s
    params.stack_timeout = events.connect_timeout_s * 2
    params.connection_attempts = 1  # reconnecting is the caller's loop, with its backoff
    params.client_properties = {"connection_name": name, "product": "ordtool"}
    return params


def redacted(url: str) -> str:
    """The URL without its password, fit for a message or a log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def unavailable(url: str, exc: BaseException) -> DependencyUnavailable:
    detail = str(exc).strip() or type(exc).__name__
    return DependencyUnavailable(
        f"cannot reach the message broker at {redacted(url)} ({type(exc).__name__}: {detail})",
        hint="check that RabbitMQ is running and ORDTOOL_AMQP_URL is right",
        retry_after=5,
    )


@contextmanager
def blocking_channel(params: pika.URLParameters) -> Iterator[BlockingChannel]:
    """A short-lived connection and channel for declarations and reads; broker errors become
    ``DependencyUnavailable``."""
    url = params_url(params)
    try:
        connection = pika.BlockingConnection(params)
    except BROKER_ERRORS as exc:
        raise unavailable(url, exc) from exc
    try:
        yield connection.channel()
    except BROKER_ERRORS as exc:
        raise unavailable(url, exc) from exc
    finally:
        if connection.is_open:
            # closing a connection the broker already dropped
            with suppress(*BROKER_ERRORS):
                connection.close()


def params_url(params: pika.connection.Parameters) -> str:
    vhost = params.virtual_host
    return f"amqp://{params.host}:{params.port}/{'%2F' if vhost == '/' else vhost}"


def reachable(params: pika.URLParameters) -> bool:
    try:
        with blocking_channel(params):
            return True
    except DependencyUnavailable:
        return False


def reconnect_delays(cap_s: float, first_s: float = 0.2) -> Iterator[float]:
    """Jittered exponential backoff, forever: 0.2 s, 0.4 s, ... up to ``cap_s``. The jitter
    keeps a fleet of relays and consumers from reconnecting in lockstep after an outage."""
    delay = first_s
    while True:
        yield random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not cryptography
        delay = min(cap_s, delay * 2)

"""Short-lived, single-use tickets that let a browser open the orders WebSocket.

A browser cannot put an ``Authorization`` header on a WebSocket handshake, and an API key in a
URL would end up in histories and proxies. So the page trades its key (``POST /ws-ticket``) for
a ticket that works once, within seconds, and means nothing afterwards.

The store is in-process: a ticket is redeemed by the replica that issued it (the page asks for
one right before connecting, through the same address). Only the SHA-256 of a ticket is kept.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

Subject = TypeVar("Subject")

TICKET_TTL_S = 30.0
MAX_TICKETS = 10_000  # a bound on memory if someone asks for tickets and never uses them


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


class TicketStore(Generic[Subject]):
    def __init__(
        self, ttl_s: float = TICKET_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._tickets: dict[str, tuple[float, Subject]] = {}  # digest -> (expires, subject)

    def issue(self, subject: Subject) -> str:
        """A new ticket (256 random bits) for ``subject``, valid for ``ttl_s`` seconds."""
        ticket = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._purge(now)
            if len(self._tickets) >= MAX_TICKETS:
                # Evict the oldest (dicts keep insertion order): at worst a slow page retries.
                del self._tickets[next(iter(self._tickets))]
            self._tickets[_digest(ticket)] = (now + self.ttl_s, subject)
        return ticket

    def redeem(self, ticket: str) -> Subject | None:
        """The subject the ticket was issued to, once; None if unknown, used or expired."""
        if not ticket:
            return None
        with self._lock:
            entry = self._tickets.pop(_digest(ticket), None)
        if entry is None:
            return None
        expires, subject = entry
        return subject if self._clock() < expires else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._tickets)

    def _purge(self, now: float) -> None:
        for digest in [d for d, (expires, _) in self._tickets.items() if expires <= now]:
            del self._tickets[digest]

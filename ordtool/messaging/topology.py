"""The broker's shape, declared idempotently by whoever starts first (relay, consumer, tail).

::

    ordtool.events (topic, durable) --#--> ordtool.events.audit (quorum) --> audit consumer
          |  routing key = event type  --customer.#--> ordtool.events.<consumer> (quorum) ...
          v
    consumers' queues dead-letter to ordtool.events.dlx (fanout) --> ordtool.events.dead-letter

Quorum queues replicate and survive a node's loss; they count deliveries, so
``x-delivery-limit`` dead-letters a message that keeps failing (or keeps killing its
consumer) instead of redelivering it forever. The relay declares the audit queue before its
first publish, so no event is published before something keeps it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker
from pika.exchange_type import ExchangeType

from ordtool.errors import ConfigurationError

PRECONDITION_FAILED = 406
EVERYTHING = "#"
# By value: pika's type hints see the members themselves as plain str.
TOPIC, FANOUT = ExchangeType("topic"), ExchangeType("fanout")


@dataclass(frozen=True, slots=True)
class Topology:
    exchange: str
    max_attempts: int

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.exchange}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.exchange}.dead-letter"

    @property
    def audit_queue(self) -> str:
        return f"{self.exchange}.audit"

    def queue_for(self, consumer: str) -> str:
        return f"{self.exchange}.{consumer}"

    def consumer_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-delivery-limit": self.max_attempts,
        }

    def declare(self, channel: BlockingChannel) -> None:
        """Exchanges, the dead-letter queue and the audit queue; safe to repeat."""
        with _explained(self):
            channel.exchange_declare(self.exchange, exchange_type=TOPIC, durable=True)
            channel.exchange_declare(
                self.dead_letter_exchange, exchange_type=FANOUT, durable=True
            )
            channel.queue_declare(
                self.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
            )
            channel.queue_bind(self.dead_letter_queue, self.dead_letter_exchange)
        self.declare_queue(channel, self.audit_queue, [EVERYTHING])

    def declare_queue(self, channel: BlockingChannel, queue: str, patterns: Sequence[str]) -> None:
        """A durable consumer queue bound to ``patterns`` (topic patterns over event types)."""
        with _explained(self):
            channel.queue_declare(queue, durable=True, arguments=self.consumer_arguments())
            for pattern in patterns:
                channel.queue_bind(queue, self.exchange, routing_key=pattern)


@contextmanager
def _explained(topology: Topology) -> Iterator[None]:
    """A queue or exchange that exists with other arguments makes the broker close the channel
    (406 PRECONDITION_FAILED); that is a configuration problem, so say how to fix it."""
    try:
        yield
    except ChannelClosedByBroker as exc:
        if exc.reply_code != PRECONDITION_FAILED:
            raise
        raise ConfigurationError(
            f"the broker's {topology.exchange} topology differs from ordtool's: {exc.reply_text}",
            hint="delete the named queue or exchange (rabbitmqctl delete_queue ...) or use "
            "another ORDTOOL_EVENTS__EXCHANGE",
        ) from exc

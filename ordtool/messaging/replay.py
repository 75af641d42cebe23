"""``ordtool events replay``: publish retained outbox rows again, in id order, with confirms.

Consumers drop what they already handled (inbox), so a replay repairs a consumer that lost
events (say, a queue deleted by mistake) without harming the others. It leaves
``published_at`` alone: the rows were published already.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from ordtool.messaging.outbox import OutboxSource, fetch_published
from ordtool.messaging.publisher import ConfirmingPublisher
from ordtool.messaging.relay import PublishFailed


def replay(
    sources: Sequence[OutboxSource],
    publisher: ConfirmingPublisher,
    since: datetime,
    *,
    batch_size: int,
    confirm_timeout_s: float,
    progress: Callable[[int], None] = lambda _sent: None,
) -> int:
    """Send every published row that occurred at or after ``since``; return how many. The
    publisher must be open; a batch the broker does not fully confirm stops the replay."""
    sent = 0
    for source in sources:
        after_id = 0
        while rows := fetch_published(source, since, after_id, batch_size):
            verdicts = publisher.publish([row.outgoing() for row in rows], confirm_timeout_s)
            if not all(verdicts):
                raise PublishFailed(
                    f"the broker did not confirm {verdicts.count(False)} replayed "
                    f"{source.name} events ({sent} sent before them)",
                    hint="run the replay again; consumers drop what they already have",
                )
            sent += len(rows)
            after_id = rows[-1].id
            progress(len(rows))
    return sent

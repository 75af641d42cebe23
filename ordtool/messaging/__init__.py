"""Events leave the databases through the outbox and reach RabbitMQ (design.md section 4).

- ``codec``: the envelope every consumer receives, validated as untrusted input.
- ``broker``: connection parameters and the one place that maps pika's errors.
- ``topology``: exchanges and queues, declared idempotently before anything is published.
- ``publisher``: one long-lived connection publishing with confirms kept in flight.
- ``outbox`` / ``lease``: the relay's queries and its one-active-relay-per-outbox lease.
- ``relay``: outbox rows -> broker, marked published only after their confirm.
- ``consumer``: prefetch, handler + inbox row in one transaction, ack after commit,
  bounded retries, then the dead-letter queue. ``audit``: the audit consumer and verification.
- ``runtime``: what the CLI and the services ask for, wired by ``bootstrap``.
"""

"""Settings: ``ORDTOOL_*`` environment variables, a ``.env`` file and a secrets directory.

Nothing here touches the disk or the network at import; ``load_settings()`` reads once.
Nested groups use ``__``: ``ORDTOOL_CUSTOMER_CHECK__DEADLINE_S=0.5``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("ordtool", appauthor=False))


class CustomerCheckSettings(BaseModel):
    """How the order service asks the customer service whether a customer exists."""

    deadline_s: float = Field(1.0, gt=0, description="one deadline over the whole check")
    attempt_timeout_s: float = Field(0.4, gt=0, description="timeout of one HTTP attempt")
    max_retries: int = Field(2, ge=0, le=5)
    backoff_base_s: float = Field(0.05, ge=0)
    pool_size: int = Field(100, ge=1, description="max pooled connections to the service")
    cache_fresh_s: float = Field(60.0, ge=0)
    cache_stale_s: float = Field(3600.0, ge=0, description="stale-if-error window")
    cache_revalidate_s: float = Field(
        300.0, ge=0, description="after fresh: answer while a background request re-checks"
    )
    cache_refresh_workers: int = Field(2, ge=1, le=64, description="background re-checks")
    cache_refresh_rate: float = Field(50.0, gt=0, description="re-checks per second at most")
    cache_max_entries: int = Field(100_000, ge=1)
    breaker_window: int = Field(20, ge=1, description="calls in the sliding window")
    breaker_failure_rate: float = Field(0.5, gt=0, le=1)
    breaker_min_calls: int = Field(10, ge=1)
    breaker_open_s: float = Field(5.0, gt=0)
    breaker_half_open_probes: int = Field(1, ge=1, description="trial calls after the interval")
    cache_key_prefix: str = Field("ordtool:customer:", description="Redis keys of the cache")
    cache_timeout_s: float = Field(0.05, gt=0, description="Redis gives up after; then a miss")


class EventsSettings(BaseModel):
    """The outbox relay, the broker topology and the event consumers (docs/events.md)."""

    exchange: str = Field(
        "ordtool.events",
        min_length=1,
        max_length=200,
        description="topic exchange; the audit, dead-letter and consumer queues are named after it",
    )
    batch_size: int = Field(1000, ge=1, le=10_000, description="outbox rows per publish batch")
    poll_interval_s: float = Field(0.02, gt=0, le=10, description="idle wait between outbox polls")
    confirm_timeout_s: float = Field(30.0, gt=0, description="longest wait for a batch's confirms")
    retention_hours: float = Field(
        72.0, ge=0, description="keep published outbox rows this long (the audit record 1 h more)"
    )
    purge_interval_s: float = Field(60.0, gt=0)
    lease_ttl_s: float = Field(10.0, gt=0, description="a dead relay's outbox is taken over after")
    heartbeat_s: int = Field(30, ge=1, le=600)
    blocked_connection_timeout_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0, description="longest backoff between reconnects")
    prefetch: int = Field(200, ge=1, le=65_535, description="unacked messages per consumer")
    max_attempts: int = Field(5, ge=1, le=100, description="deliveries before dead-lettering")


JwtAlgorithm = Literal[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"
]


class AuthSettings(BaseModel):
    """API keys are always on; JWTs from an external issuer only when jwt_key is set."""

    jwt_algorithm: JwtAlgorithm = Field("RS256", description="the one algorithm accepted")
    jwt_key: SecretStr | None = Field(
        None, description="PEM public key (RS/ES/PS/EdDSA) or HMAC secret (HS); None = JWTs off"
    )
    jwt_issuer: str | None = Field(None, description="required `iss` when JWTs are on")
    jwt_audience: str | None = Field(None, description="required `aud` when JWTs are on")
    jwt_leeway_s: float = Field(10.0, ge=0, le=300, description="clock skew allowed on exp/nbf")
    key_cache_s: float = Field(
        5.0, ge=0, le=60, description="a verified key is trusted this long; a revoke waits it out"
    )
    rate_limit_per_s: float | None = Field(
        None, gt=0, description="requests per second per caller; None = no limit"
    )
    rate_limit_burst: int = Field(50, ge=1, description="requests a caller may send at once")
    idempotency_ttl_s: float = Field(86_400.0, gt=0, description="how long a response is kept")
    idempotency_lock_s: float = Field(
        60.0, gt=0, description="a request still running after this is presumed dead"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ORDTOOL_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
    )

    environment: Environment = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    # Database URLs may hold passwords, so they are secrets; None = SQLite in data_dir.
    orders_database_url: SecretStr | None = None
    customers_database_url: SecretStr | None = None
    # The audit consumer's record (what `ordtool events verify` checks); None = SQLite too.
    audit_database_url: SecretStr | None = None
    customer_service_url: str | None = None
    # Where `ordtool up` / `ordtool serve` listen.
    host: str = "127.0.0.1"
    orders_port: int = Field(8000, ge=1, le=65535)
    customers_port: int = Field(8001, ge=1, le=65535)
    redis_url: SecretStr | None = None
    amqp_url: SecretStr | None = None
    orders_commit_gap_ms: float = Field(
        4.0, ge=0, le=100,
        description="SQLite only: the order writer leaves the write lock free this long after "
        "each commit, for the relay's marks",
    )
    customer_check: CustomerCheckSettings = Field(default_factory=CustomerCheckSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    # The order service's key for the customer service; None = made on first start.
    customer_service_key: SecretStr | None = None

    @property
    def log_level(self) -> str:
        return "DEBUG" if self.environment == "development" else "INFO"

    @property
    def log_format(self) -> Literal["text", "json"]:
        return "json" if self.environment == "production" else "text"

    def database_url(self, name: Literal["orders", "customers", "audit"]) -> str:
        configured: SecretStr | None = getattr(self, f"{name}_database_url")
        if configured is not None:
            return configured.get_secret_value()
        return f"sqlite:///{self.data_dir / f'{name}.db'}"


def load_settings() -> Settings:
    """Read the settings; ``ORDTOOL_SECRETS_DIR`` names a directory of one-file-per-secret
    (Kubernetes Secrets, Vault agent), used only when it exists."""
    secrets_dir = os.environ.get("ORDTOOL_SECRETS_DIR")
    if secrets_dir and Path(secrets_dir).is_dir():
        return Settings(_secrets_dir=secrets_dir)
    return Settings()

"""Configuration: one pydantic-settings class; every setting is a ``DUKENET_*`` variable."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from platformdirs import user_data_path
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """Per-user data directory (``~/.local/share/dukenet`` on Linux)."""
    return user_data_path("dukenet", appauthor=False)


class Settings(BaseSettings):
    """All DukeNET settings. Unset URLs mean "start the embedded server in ``data_dir``"."""

    model_config = SettingsConfigDict(env_prefix="DUKENET_", extra="ignore")

    database_url: str | None = Field(None, description="PostgreSQL URL of the primary")
    database_replica_urls: str = Field(
        "", description="Comma-separated PostgreSQL URLs of read replicas (lag-tolerant reads)"
    )
    pgbouncer: bool = Field(False, description="Disable server-side prepared statement caching")
    pool_min_size: int = Field(2, ge=0, description="Minimum connections per PostgreSQL pool")
    pool_max_size: int = Field(20, ge=1, description="Maximum connections per PostgreSQL pool")
    redis_url: str | None = Field(None, description="Redis URL")
    redis_prefix: str = Field("", description="Prefix for every Redis key this process writes")
    ipfs_api: str | None = Field(None, description="Kubo RPC API URL to publish audit blocks to")
    data_dir: Path = Field(default_factory=default_data_dir, description="Embedded data directory")
    network_key: str | None = Field(
        None, description="Network Ed25519 private key (PEM or base64 raw); generated if unset"
    )
    admin_token: str | None = Field(None, description="Bearer token for operator routes")
    platform_fee_rate: Decimal = Field(
        Decimal("0.025"), ge=0, lt=1, description="Platform fee rate on settled transactions"
    )
    refund_window_seconds: int = Field(
        604_800, ge=0, description="Seconds after completion during which a refund is accepted"
    )
    transaction_expiry_seconds: int = Field(
        86_400, ge=1, description="Seconds a PENDING transaction may wait before it fails"
    )
    idempotency_retention_seconds: int = Field(
        86_400, ge=60, description="Seconds an Idempotency-Key's response is kept for repeats"
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted request body")
    opentelemetry: bool = Field(
        False,
        description="Emit FastAPI's native OpenTelemetry spans, metrics and logs through the "
        "globally configured providers (off: Prometheus /metrics only, and no per-request "
        "OpenTelemetry checks)",
    )
    heartbeat_ttl: int = Field(90, ge=1, description="Seconds a heartbeat keeps an agent fresh")
    session_ttl: int = Field(3600, ge=60, description="Seconds a session token lives")
    search_cache_ttl: int = Field(
        30, ge=0, description="Seconds a cached search result may be served (0 disables)"
    )
    rate_limits: str = Field(
        "",
        description="Per route family request limits overriding the defaults, e.g. "
        "'register=300/minute,auth=60/minute,read=1200/minute,write=300/minute,"
        "heartbeat=60/minute' ('none' disables a family)",
    )
    host: str = Field("127.0.0.1", description="Address the API server binds")
    port: int = Field(8080, ge=0, le=65535, description="Port the API server binds")
    workers: int = Field(1, ge=1, description="Number of API server processes")
    embedded_worker: bool = Field(True, description="Run a subtask worker inside `dukenet serve`")
    worker_concurrency: int = Field(
        16, ge=1, le=1024, description="Agent calls a worker runs at once"
    )
    worker_batch_size: int = Field(
        32, ge=1, le=256, description="Most subtasks claimed per query (at most the concurrency)"
    )
    worker_lease_seconds: float = Field(
        30.0, gt=0, description="Lease of a claimed attempt, renewed every third of it in a call"
    )
    worker_poll_interval: float = Field(
        2.0, gt=0, description="Seconds between polls when no NOTIFY arrives (jittered)"
    )
    worker_shutdown_grace: float = Field(
        10.0, ge=0, description="Seconds a stopping worker lets in-flight calls finish"
    )
    maintenance_interval: float = Field(
        1.0, gt=0, description="Seconds between sweeps for expired leases and passed deadlines"
    )
    attempt_timeout_floor: float = Field(
        2.0, gt=0, description="Shortest per-attempt timeout (seconds), whatever the declared p99"
    )
    attempt_timeout_cap: float = Field(
        300.0, gt=0, description="Longest per-attempt timeout when the task sets no timeout_seconds"
    )
    retry_base_delay: float = Field(1.0, ge=0, description="Backoff base delay in seconds")
    retry_max_delay: float = Field(300.0, ge=0, description="Longest backoff delay in seconds")
    # Trust and reputation (README "Trust and reputation"): the score's weights sum to 1.
    trust_weight_reputation: float = Field(0.35, ge=0, le=1, description="Weight of ratings")
    trust_weight_delivery: float = Field(0.30, ge=0, le=1, description="Weight of delivery")
    trust_weight_uptime: float = Field(0.10, ge=0, le=1, description="Weight of 30-day uptime")
    trust_weight_latency: float = Field(0.15, ge=0, le=1, description="Weight of latency SLO")
    trust_weight_signer: float = Field(0.10, ge=0, le=1, description="Weight of verified signer")
    trust_half_life_days: float = Field(
        180.0, gt=0, description="Half-life of ratings and attempts in the trust score (days)"
    )
    trust_fraud_flag_penalty: float = Field(
        15.0, ge=0, le=100, description="Trust points taken per open fraud flag (at most 3 count)"
    )
    trust_selection_threshold: Decimal = Field(
        Decimal("25"), ge=0, le=100, description="Agents below this trust are not selected"
    )
    trust_eigentrust_pretrust_weight: float = Field(
        0.15, gt=0, lt=1, description="EigenTrust damping: trust share restarting at pre-trust"
    )
    trust_rating_window_days: int = Field(
        30, ge=1, description="Days after a task's completion during which it can be rated"
    )
    trust_recompute_interval: int = Field(
        3600, ge=0, description="Seconds between full trust recomputations (0 disables the job)"
    )
    log_level: str = Field("info", description="Log level")

    @field_validator("database_url", "redis_url", "ipfs_api", "network_key", "admin_token")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def replica_urls(self) -> list[str]:
        """Replica URLs as a list (empty when none are configured)."""
        return [url.strip() for url in self.database_replica_urls.split(",") if url.strip()]

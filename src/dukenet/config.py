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
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted request body")
    heartbeat_ttl: int = Field(90, ge=1, description="Seconds a heartbeat keeps an agent fresh")
    session_ttl: int = Field(3600, ge=60, description="Seconds a session token lives")
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
    log_level: str = Field("info", description="Log level")

    @field_validator("database_url", "redis_url", "ipfs_api", "network_key", "admin_token")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def replica_urls(self) -> list[str]:
        """Replica URLs as a list (empty when none are configured)."""
        return [url.strip() for url in self.database_replica_urls.split(",") if url.strip()]

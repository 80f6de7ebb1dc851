"""Registry resources as returned by the API (and parsed by the SDK).

Field names are the column names of DATABASE-SCHEMA.md. Money is a decimal string;
timestamps are RFC 3339 UTC. Unknown fields are ignored so older SDKs read newer servers.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_serializer

AgentStatus = Literal["ACTIVE", "INACTIVE", "SUSPENDED"]


class Resource(BaseModel):
    """Base of API resources: lenient on input, so clients tolerate fields added later."""

    model_config = ConfigDict(extra="ignore")


class Agent(Resource):
    """A registered agent with its tags and uptime (percent over 30 days, 90 days, all time)."""

    agent_id: str
    public_key: str
    display_name: str | None
    description: str | None
    endpoint_url: str | None
    status: AgentStatus
    status_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    last_heartbeat: datetime | None
    owner_address: str | None
    avatar_url: str | None
    trust_score: float
    version: str | None
    metadata: dict[str, Any] | None
    tags: list[str]
    uptime_30d: float
    uptime_90d: float
    uptime_all_time: float
    audit_cid: str | None = None


class Capability(Resource):
    """A published capability. ``capability_id`` is sha256 of ``agent_id:name:version``."""

    capability_id: str
    agent_id: str
    name: str
    version: str
    description: str | None
    input_schema: dict[str, Any] | bool
    output_schema: dict[str, Any] | bool
    deprecated: bool
    pricing_model: Literal["per_call", "subscription", "free"]
    price: Decimal
    currency: str
    latency_p99_ms: int | None
    availability_percent: float | None
    created_at: datetime
    updated_at: datetime

    @field_serializer("price")
    def _price_text(self, price: Decimal) -> str:
        return f"{price:.4f}"


class AgentPage(Resource):
    """One page of agents; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[Agent]
    next_cursor: str | None


class CapabilityPage(Resource):
    """One page of capabilities."""

    items: list[Capability]
    next_cursor: str | None


class Tags(Resource):
    """An agent's tag set, sorted."""

    agent_id: str
    tags: list[str]


class Challenge(Resource):
    """A single-use login challenge: sign ``{"agent_id", "challenge"}`` before ``expires_at``."""

    challenge: str
    expires_at: datetime


class Session(Resource):
    """A bearer token for ``Authorization: Bearer <token>`` and when it stops working."""

    token: str
    expires_at: datetime


class Heartbeat(Resource):
    """The result of a heartbeat: the agent's status and until when it counts as fresh."""

    agent_id: str
    status: AgentStatus
    last_heartbeat: datetime
    fresh_until: datetime


class SignedRegistration(Resource):
    """The signed registration payload exactly as the agent sent it."""

    agent_id: str
    payload: dict[str, Any]
    received_at: datetime
    audit_cid: str | None = None

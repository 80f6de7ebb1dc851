"""Trust resources as the API returns them (field names are the schema's column names)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

FlagKind = Literal["RATING_RING", "SELF_DEALING", "FAILURE_BURST"]


class Rating(BaseModel):
    """One rating of an agent for a task."""

    rating_id: int
    agent_id: str
    rater_agent_id: str
    task_id: UUID
    rating: float = Field(description="0-5, two decimals")
    review: str | None
    created_at: datetime
    task_value: str | None = Field(description="What the rated agent was paid for the task")
    audit_cid: str | None = Field(description="CID of the rating's audit record")


class RatingPage(BaseModel):
    """A page of ratings, newest first."""

    items: list[Rating]
    next_cursor: str | None


class FraudFlag(BaseModel):
    """A fraud signal raised against an agent."""

    flag_id: int
    agent_id: str
    kind: FlagKind
    reason: str
    evidence: dict[str, Any]
    created_at: datetime
    cleared_at: datetime | None
    cleared_reason: str | None


class FlaggedAgent(BaseModel):
    """An agent with its fraud flags."""

    agent_id: str
    display_name: str | None
    status: str
    trust_score: float
    owner_address: str | None
    flags: list[FraudFlag]


class FlaggedAgentPage(BaseModel):
    """Flagged agents by agent_id."""

    items: list[FlaggedAgent]
    next_cursor: str | None


class TrustRecord(BaseModel):
    """One row of an agent's trust history (``trust_records``)."""

    record_id: int
    agent_id: str
    trust_score: float
    reputation_score: float | None
    rating: float | None
    total_ratings: int
    successful_transactions: int
    failed_transactions: int
    uptime_30d: float | None
    uptime_90d: float | None
    uptime_all_time: float | None
    avg_latency_ms: int | None
    p99_latency_ms: int | None
    success_rate: float | None
    verified_signer: bool
    rate_limited: bool
    fraud_flags: int
    last_audit: datetime | None
    updated_at: datetime
    reason: str | None


class TrustHistory(BaseModel):
    """Trust records, newest first."""

    items: list[TrustRecord]
    next_cursor: str | None


class NetworkTrust(BaseModel):
    """The agent's standing in the latest EigenTrust run."""

    global_trust: float
    rater_weight: float
    pre_trusted: bool
    computed_at: datetime | None


class TrustBreakdown(BaseModel):
    """The current trust score with each component, its weight and inputs."""

    agent_id: str
    trust_score: float = Field(description="agents.trust_score, what selection and search use")
    computed_score: float = Field(description="The formula evaluated now, from the evidence below")
    computed_at: datetime
    formula: str
    base_points: float
    components: dict[str, Any]
    penalties: dict[str, Any]
    fraud_flags: list[FraudFlag]
    network: NetworkTrust | None
    selection_threshold: float
    history: TrustHistory | None = None


class OwnerProof(BaseModel):
    """An EIP-191 proof that the agent's owner address signed for it."""

    agent_id: str
    owner_address: str
    message: str
    signature: str
    proven_at: datetime
    current: bool = Field(description="Whether it names the agent's current owner_address")


class OwnerProofChallenge(BaseModel):
    """What the owner address must sign (EIP-191 personal_sign) to prove ownership."""

    agent_id: str
    owner_address: str | None
    message: str | None
    proof: OwnerProof | None

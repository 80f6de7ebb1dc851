"""Registry operations of the SDK: register, log in, profile, tags, capabilities, heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet import crypto
from dukenet.registry.inputs import CapabilitySpec
from dukenet.registry.models import (
    Agent,
    AgentPage,
    Capability,
    CapabilityPage,
    Heartbeat,
    Session,
    SignedRegistration,
    Tags,
)
from dukenet.sdk.base import ApiRequest, BaseClient, Flow, operation


class _Unset(Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Default of optional update arguments: leave the field as it is (``None`` clears it)."""


def build_registration(
    key: Ed25519PrivateKey,
    display_name: str,
    *,
    timestamp: datetime | None = None,
    **profile: Any,
) -> dict[str, Any]:
    """A signed registration payload: profile fields, ``public_key``, ``timestamp``, ``signature``.

    ``profile`` takes ``description``, ``endpoint_url``, ``owner_address``, ``avatar_url``,
    ``version``, ``metadata``, ``tags`` and ``capabilities``; ``None`` values are left out.
    """
    payload: dict[str, Any] = {k: v for k, v in profile.items() if v is not None}
    if "capabilities" in payload:
        payload["capabilities"] = [_capability_json(c) for c in payload["capabilities"]]
    payload.update(
        public_key=crypto.public_key_b64(key),
        display_name=display_name,
        timestamp=(timestamp or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
    )
    return crypto.sign_payload(key, payload)


def _capability_json(spec: CapabilitySpec | dict[str, Any]) -> dict[str, Any]:
    if isinstance(spec, CapabilitySpec):
        return spec.model_dump(mode="json", exclude_unset=True)
    return dict(spec)


def _changes(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not UNSET}


class RegistryOperations(BaseClient):
    """Agent registry operations (mixin of ``Client`` and ``AsyncClient``)."""

    @operation
    def register(
        self,
        display_name: str,
        *,
        description: str | None = None,
        endpoint_url: str | None = None,
        owner_address: str | None = None,
        avatar_url: str | None = None,
        version: str | None = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        capabilities: list[CapabilitySpec | dict[str, Any]] | None = None,
    ) -> Flow[Agent]:
        """Register this client's key as an agent (a signed, timestamped payload)."""
        payload = build_registration(
            self._require_key(),
            display_name,
            description=description,
            endpoint_url=endpoint_url,
            owner_address=owner_address,
            avatar_url=avatar_url,
            version=version,
            metadata=metadata,
            tags=tags,
            capabilities=capabilities,
        )
        response = yield ApiRequest("POST", "/v1/agents", json=payload)
        return Agent.model_validate_json(response.content)

    @operation
    def login(self) -> Flow[Session]:
        """Open a session now (authenticated calls also do this on their own)."""
        return (yield from self._login())

    @operation
    def logout(self) -> Flow[None]:
        """Close the session; the token stops working."""
        if self.session is not None:
            yield ApiRequest(
                "DELETE",
                "/v1/auth/session",
                headers={"authorization": f"Bearer {self.session.token}"},
            )
            self.session = None

    @operation
    def get_agent(self, agent_id: str | None = None) -> Flow[Agent]:
        """An agent (this client's own when ``agent_id`` is omitted)."""
        response = yield ApiRequest("GET", f"/v1/agents/{agent_id or self.agent_id}")
        return Agent.model_validate_json(response.content)

    @operation
    def list_agents(
        self,
        *,
        status: str | None = None,
        tags: list[str] | None = None,
        min_trust: float | str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Flow[AgentPage]:
        """One page of agents, newest first; pass ``next_cursor`` back as ``cursor``."""
        params: list[tuple[str, Any]] = [("limit", limit)]
        params += [("status", status)] if status else []
        params += [("tag", t) for t in tags or []]
        params += [("min_trust", str(min_trust))] if min_trust is not None else []
        params += [("cursor", cursor)] if cursor else []
        response = yield ApiRequest("GET", "/v1/agents", params=params)
        return AgentPage.model_validate_json(response.content)

    @operation
    def update_agent(
        self,
        *,
        display_name: str | _Unset = UNSET,
        description: str | _Unset | None = UNSET,
        endpoint_url: str | _Unset | None = UNSET,
        owner_address: str | _Unset | None = UNSET,
        avatar_url: str | _Unset | None = UNSET,
        version: str | _Unset | None = UNSET,
        metadata: dict[str, Any] | _Unset | None = UNSET,
    ) -> Flow[Agent]:
        """Change this agent's profile: given fields change, ``None`` clears, others stay."""
        body = _changes(
            display_name=display_name,
            description=description,
            endpoint_url=endpoint_url,
            owner_address=owner_address,
            avatar_url=avatar_url,
            version=version,
            metadata=metadata,
        )
        response = yield ApiRequest("PATCH", f"/v1/agents/{self.agent_id}", json=body, auth=True)
        return Agent.model_validate_json(response.content)

    @operation
    def set_tags(self, tags: list[str]) -> Flow[Tags]:
        """Replace this agent's tags."""
        response = yield ApiRequest(
            "PUT", f"/v1/agents/{self.agent_id}/tags", json={"tags": tags}, auth=True
        )
        return Tags.model_validate_json(response.content)

    @operation
    def heartbeat(self) -> Flow[Heartbeat]:
        """Tell the network this agent is alive (call at least every heartbeat TTL)."""
        response = yield ApiRequest("POST", f"/v1/agents/{self.agent_id}/heartbeat", auth=True)
        return Heartbeat.model_validate_json(response.content)

    @operation
    def deregister(self) -> Flow[None]:
        """Deregister this agent (its key cannot register again)."""
        yield ApiRequest("DELETE", f"/v1/agents/{self.agent_id}", auth=True)
        self.session = None

    @operation
    def get_registration(self, agent_id: str | None = None) -> Flow[SignedRegistration]:
        """The signed registration payload an agent registered with."""
        response = yield ApiRequest("GET", f"/v1/agents/{agent_id or self.agent_id}/registration")
        return SignedRegistration.model_validate_json(response.content)

    @operation
    def add_capability(self, spec: CapabilitySpec | dict[str, Any]) -> Flow[Capability]:
        """Publish a capability of this agent."""
        response = yield ApiRequest(
            "POST",
            f"/v1/agents/{self.agent_id}/capabilities",
            json=_capability_json(spec),
            auth=True,
        )
        return Capability.model_validate_json(response.content)

    @operation
    def list_capabilities(
        self,
        agent_id: str | None = None,
        *,
        include_deprecated: bool = True,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Flow[CapabilityPage]:
        """An agent's capabilities (this client's own when ``agent_id`` is omitted)."""
        params: dict[str, Any] = {
            "include_deprecated": str(include_deprecated).lower(),
            "limit": limit,
        }
        if cursor:
            params["cursor"] = cursor
        response = yield ApiRequest(
            "GET", f"/v1/agents/{agent_id or self.agent_id}/capabilities", params=params
        )
        return CapabilityPage.model_validate_json(response.content)

    @operation
    def get_capability(self, capability_id: str) -> Flow[Capability]:
        """One capability."""
        response = yield ApiRequest("GET", f"/v1/capabilities/{capability_id}")
        return Capability.model_validate_json(response.content)

    @operation
    def update_capability(self, /, capability_id: str, **changes: Any) -> Flow[Capability]:
        """Change fields of this agent's capability (description, schemas, pricing, SLO...)."""
        response = yield ApiRequest(
            "PATCH", f"/v1/capabilities/{capability_id}", json=changes, auth=True
        )
        return Capability.model_validate_json(response.content)

    @operation
    def deprecate_capability(self, capability_id: str) -> Flow[Capability]:
        """Deprecate this agent's capability: kept, but no longer selected for new work."""
        response = yield ApiRequest(
            "PATCH", f"/v1/capabilities/{capability_id}", json={"deprecated": True}, auth=True
        )
        return Capability.model_validate_json(response.content)

    @operation
    def delete_capability(self, capability_id: str) -> Flow[None]:
        """Remove this agent's capability."""
        yield ApiRequest("DELETE", f"/v1/capabilities/{capability_id}", auth=True)

    @operation
    def suspend_agent(self, agent_id: str, reason: str) -> Flow[Agent]:
        """Operator: suspend an agent (needs ``admin_token``)."""
        response = yield ApiRequest(
            "POST", f"/v1/admin/agents/{agent_id}/suspend", json={"reason": reason}, admin=True
        )
        return Agent.model_validate_json(response.content)

    @operation
    def reinstate_agent(self, agent_id: str, reason: str) -> Flow[Agent]:
        """Operator: lift a suspension (needs ``admin_token``)."""
        response = yield ApiRequest(
            "POST", f"/v1/admin/agents/{agent_id}/reinstate", json={"reason": reason}, admin=True
        )
        return Agent.model_validate_json(response.content)

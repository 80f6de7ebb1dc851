"""Registry errors: the ``dukenet.errors`` tree with resource-specific codes."""

from __future__ import annotations

from dukenet.errors import AlreadyExists, Forbidden, NotFound, Unauthorized


class AgentNotFound(NotFound):
    """No registered agent has this id (never registered, or deregistered)."""

    code = "AGENT_NOT_FOUND"
    title = "Agent not found"


class CapabilityNotFound(NotFound):
    """No capability has this id."""

    code = "CAPABILITY_NOT_FOUND"
    title = "Capability not found"


class AgentExists(AlreadyExists):
    """An agent with this public key is (or was) registered; identities are never reused."""

    code = "AGENT_EXISTS"
    title = "Agent exists"


class CapabilityExists(AlreadyExists):
    """This agent already published a capability with the same name and version."""

    code = "CAPABILITY_EXISTS"
    title = "Capability exists"


class AgentSuspended(Forbidden):
    """An operator suspended this agent: it cannot log in or act until reinstated."""

    code = "AGENT_SUSPENDED"
    title = "Agent suspended"


class InvalidChallenge(Unauthorized):
    """The login challenge is unknown, expired, already used, or was issued to another agent."""

    code = "INVALID_CHALLENGE"
    title = "Invalid challenge"

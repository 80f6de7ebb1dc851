"""The DukeNET Python SDK: ``Client`` (blocking) and ``AsyncClient`` on httpx.

Results are typed (``Agent``, ``Capability``, ...), and every API error is raised as an
``APIError`` subclass chosen by its problem+json ``code`` (see ``dukenet.sdk.errors``).
"""

from __future__ import annotations

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
from dukenet.sdk import errors
from dukenet.sdk.agent_server import AgentServer, CapabilityError, Invocation, Result
from dukenet.sdk.base import ApiRequest, Flow, operation
from dukenet.sdk.client import AsyncClient, Client
from dukenet.sdk.errors import APIError
from dukenet.sdk.registry import UNSET, build_registration
from dukenet.sdk.tasks import NetworkInfo, Subtask, Task, TaskEvent

__all__ = [
    "UNSET",
    "APIError",
    "Agent",
    "AgentPage",
    "AgentServer",
    "ApiRequest",
    "AsyncClient",
    "Capability",
    "CapabilityError",
    "CapabilityPage",
    "CapabilitySpec",
    "Client",
    "Flow",
    "Heartbeat",
    "Invocation",
    "NetworkInfo",
    "Result",
    "Session",
    "SignedRegistration",
    "Subtask",
    "Tags",
    "Task",
    "TaskEvent",
    "build_registration",
    "errors",
    "operation",
]

"""The SDK's one exception tree, built from the API's problem+json ``code``.

    APIError (any non-2xx answer; ``status``, ``code``, ``detail``, ``field``, ``problem``)
    ├── BadRequest (400)
    ├── Unauthorized (401)
    │   ├── InvalidSignature (INVALID_SIGNATURE)
    │   └── InvalidChallenge (INVALID_CHALLENGE)
    ├── PaymentRequired (402)
    ├── Forbidden (403)
    │   └── AgentSuspended (AGENT_SUSPENDED)
    ├── NotFound (404)
    │   ├── AgentNotFound (AGENT_NOT_FOUND)
    │   └── CapabilityNotFound (CAPABILITY_NOT_FOUND)
    ├── Conflict (409)
    │   ├── AgentExists (AGENT_EXISTS)
    │   ├── CapabilityExists (CAPABILITY_EXISTS)
    │   └── InvalidState (INVALID_STATE)
    ├── PayloadTooLarge (413)
    ├── ValidationFailed (422; ``field`` is a JSON Pointer)
    │   ├── SchemaInvalid (SCHEMA_INVALID)
    │   └── CostLimitExceeded (COST_LIMIT_EXCEEDED)
    ├── RateLimited (429; ``retry_after`` seconds)
    └── ServiceUnavailable (503)

Other modules add codes with ``register_code`` so every error keeps one root.
"""

from __future__ import annotations

from typing import Any

import httpx


class APIError(Exception):
    """A DukeNET API error: HTTP status, stable ``code`` and the full problem document."""

    status: int = 0

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code: str = str(problem.get("code") or "HTTP_ERROR")
        self.title: str = str(problem.get("title") or "")
        self.detail: str = str(problem.get("detail") or self.title or f"HTTP {status}")
        field = problem.get("field")
        self.field: str | None = None if field is None else str(field)
        where = f" (field {self.field})" if self.field is not None else ""
        super().__init__(f"{status} {self.code}: {self.detail}{where}")


class BadRequest(APIError):
    """The request could not be parsed."""


class Unauthorized(APIError):
    """No valid credentials: log in (again)."""


class InvalidSignature(Unauthorized):
    """A signature did not verify, or its timestamp was outside the allowed window."""


class InvalidChallenge(Unauthorized):
    """The login challenge was unknown, expired or already used."""


class PaymentRequired(APIError):
    """The balance does not cover the amount."""


class Forbidden(APIError):
    """Authenticated, but not allowed (e.g. another agent's resource)."""


class AgentSuspended(Forbidden):
    """An operator suspended this agent."""


class NotFound(APIError):
    """The resource does not exist."""


class AgentNotFound(NotFound):
    """No registered agent with this id."""


class CapabilityNotFound(NotFound):
    """No capability with this id."""


class Conflict(APIError):
    """The request conflicts with the current state."""


class AgentExists(Conflict):
    """This key is already registered."""


class CapabilityExists(Conflict):
    """This name and version are already published by the agent."""


class InvalidState(Conflict):
    """The resource is not in a state that allows this."""


class PayloadTooLarge(APIError):
    """The request body is too large."""


class ValidationFailed(APIError):
    """A value was refused; ``field`` points at it."""


class SchemaInvalid(ValidationFailed):
    """A JSON Schema is invalid, or a document does not match one."""


class CostLimitExceeded(ValidationFailed):
    """The cheapest plan costs more than the task's limit."""


class RateLimited(APIError):
    """Too many requests; wait ``retry_after`` seconds."""

    def __init__(self, status: int, problem: dict[str, Any], retry_after: int = 1) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


class ServiceUnavailable(APIError):
    """A backing store is down; retry later."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    402: PaymentRequired,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}
_BY_CODE: dict[str, type[APIError]] = {
    "INVALID_SIGNATURE": InvalidSignature,
    "INVALID_CHALLENGE": InvalidChallenge,
    "AGENT_SUSPENDED": AgentSuspended,
    "AGENT_NOT_FOUND": AgentNotFound,
    "CAPABILITY_NOT_FOUND": CapabilityNotFound,
    "AGENT_EXISTS": AgentExists,
    "CAPABILITY_EXISTS": CapabilityExists,
    "INVALID_STATE": InvalidState,
    "SCHEMA_INVALID": SchemaInvalid,
    "COST_LIMIT_EXCEEDED": CostLimitExceeded,
}


def register_code(code: str, exception: type[APIError]) -> None:
    """Map another problem ``code`` to an exception class (a subclass of a status class)."""
    _BY_CODE[code] = exception


def error_from_response(response: httpx.Response) -> APIError:
    """The typed exception for a non-2xx response (problem+json, or any other body)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    problem: dict[str, Any] = (
        body
        if isinstance(body, dict)
        else {"title": response.reason_phrase, "detail": response.text[:500]}
    )
    code = str(problem.get("code") or "")
    cls = _BY_CODE.get(code) or _BY_STATUS.get(response.status_code) or APIError
    if issubclass(cls, RateLimited):
        try:
            retry_after = int(response.headers.get("retry-after", "1"))
        except ValueError:
            retry_after = 1
        return cls(response.status_code, problem, retry_after)
    return cls(response.status_code, problem)

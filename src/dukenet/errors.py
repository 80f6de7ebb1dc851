"""One exception tree for DukeNET. Every error carries a stable ``code`` and an HTTP status.

    DukenetError (500 INTERNAL_ERROR)
    ├── InvalidInput (422 VALIDATION_FAILED; ``field`` is a JSON Pointer to the culprit)
    │   ├── SchemaInvalid (422 SCHEMA_INVALID)
    │   └── CostLimitExceeded (422 COST_LIMIT_EXCEEDED)
    ├── BadRequest (400 BAD_REQUEST)
    ├── Unauthorized (401 UNAUTHORIZED)
    │   └── InvalidSignature (401 INVALID_SIGNATURE)
    ├── PaymentRequired (402 INSUFFICIENT_FUNDS)
    ├── Forbidden (403 FORBIDDEN)
    ├── NotFound (404 NOT_FOUND; subclasses name the resource, e.g. AGENT_NOT_FOUND)
    ├── Conflict (409 CONFLICT)
    │   ├── AlreadyExists (409 ALREADY_EXISTS, e.g. AGENT_EXISTS)
    │   └── InvalidState (409 INVALID_STATE)
    ├── PayloadTooLarge (413 PAYLOAD_TOO_LARGE)
    ├── RateLimited (429 RATE_LIMITED; ``retry_after`` seconds)
    └── StoreError (503 STORE_UNAVAILABLE; raised at the store boundary for driver failures)
        ├── DatabaseUnavailable (503 DATABASE_UNAVAILABLE)
        └── CacheUnavailable (503 CACHE_UNAVAILABLE)

Driver exceptions (asyncpg, redis) are translated into this tree in ``dukenet.store``;
domain code never sees a driver's exception types.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DukenetError(Exception):
    """Base of every DukeNET error: a stable machine code, an HTTP status and a message."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.instance_code = code or self.code
        self.field = field
        self.extra = extra or {}

    def to_problem(self) -> dict[str, Any]:
        """Render as an RFC 9457 problem details object."""
        problem: dict[str, Any] = {
            "type": f"https://dukenet.dev/problems/{self.instance_code.lower().replace('_', '-')}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.instance_code,
        }
        if self.field is not None:
            problem["field"] = self.field
        problem.update(self.extra)
        return problem


class InvalidInput(DukenetError):
    """The request is well-formed but a value is unacceptable; ``field`` points at it."""

    code = "VALIDATION_FAILED"
    status = 422
    title = "Invalid input"


class SchemaInvalid(InvalidInput):
    """A JSON Schema is not valid, or a document does not validate against one."""

    code = "SCHEMA_INVALID"
    title = "Schema invalid"


class CostLimitExceeded(InvalidInput):
    """The cheapest feasible plan costs more than the task's ``cost_limit``."""

    code = "COST_LIMIT_EXCEEDED"
    title = "Cost limit exceeded"


class BadRequest(DukenetError):
    """The request cannot be parsed (malformed JSON, bad header)."""

    code = "BAD_REQUEST"
    status = 400
    title = "Bad request"


class Unauthorized(DukenetError):
    """No valid credentials were presented."""

    code = "UNAUTHORIZED"
    status = 401
    title = "Unauthorized"


class InvalidSignature(Unauthorized):
    """A signature does not verify, or the signed timestamp is outside the allowed window."""

    code = "INVALID_SIGNATURE"
    title = "Invalid signature"


class PaymentRequired(DukenetError):
    """The payer's available balance does not cover the amount."""

    code = "INSUFFICIENT_FUNDS"
    status = 402
    title = "Insufficient funds"


class Forbidden(DukenetError):
    """Authenticated, but not allowed to act on this resource."""

    code = "FORBIDDEN"
    status = 403
    title = "Forbidden"


class NotFound(DukenetError):
    """The resource does not exist."""

    code = "NOT_FOUND"
    status = 404
    title = "Not found"


class Conflict(DukenetError):
    """The request conflicts with the current state."""

    code = "CONFLICT"
    status = 409
    title = "Conflict"


class AlreadyExists(Conflict):
    """A resource with the same identity already exists."""

    code = "ALREADY_EXISTS"
    title = "Already exists"


class InvalidState(Conflict):
    """The resource is not in a state that allows this transition."""

    code = "INVALID_STATE"
    title = "Invalid state"


class PayloadTooLarge(DukenetError):
    """The request body is larger than the configured limit."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413
    title = "Payload too large"


class RateLimited(DukenetError):
    """Too many requests for this agent and route family."""

    code = "RATE_LIMITED"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str = "", *, retry_after: int = 1) -> None:
        super().__init__(detail, extra={"retry_after": retry_after})
        self.retry_after = retry_after


class StoreError(DukenetError):
    """A backing store failed in a way the caller cannot fix."""

    code = "STORE_UNAVAILABLE"
    status = 503
    title = "Store unavailable"


class DatabaseUnavailable(StoreError):
    """PostgreSQL could not be reached or refused the operation."""

    code = "DATABASE_UNAVAILABLE"
    title = "Database unavailable"


class CacheUnavailable(StoreError):
    """Redis could not be reached."""

    code = "CACHE_UNAVAILABLE"
    title = "Cache unavailable"

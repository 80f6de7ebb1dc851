"""Calling agents: ``POST {endpoint_url}`` signed by the network (RFC 9421), and what the
answer means.

The client is one shared ``aiohttp.ClientSession`` per worker with keep-alive connections:
measured on the orchestration workload it sustains far more concurrent calls per CPU than
``httpx.AsyncClient`` (see PERFORMANCE.md).

    200 {"output": ..., "cost"?}   success (cost defaults to the quoted price)
    202                            accepted: the agent posts the result later
    408, 429, 5xx                  retryable failure (Retry-After honoured)
    other 4xx                      non-retryable failure
    connection error, timeout      retryable failure
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet.httpsig import sign_request
from dukenet.orchestration.claims import Assignment
from dukenet.orchestration.errors import FailureCode
from dukenet.orchestration.outcomes import Failure

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Success:
    """The agent answered with its output (and optionally what it charged)."""

    output: Any
    cost: Decimal | None
    latency_ms: int | None = None


@dataclass(frozen=True)
class Accepted:
    """The agent took the job (202) and will post the result itself."""


Outcome = Success | Accepted | Failure


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _detail(body: bytes) -> str:
    """A short description of an error answer (its problem ``detail`` when it has one)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:200].decode("utf-8", "replace")
    if isinstance(document, dict):
        for key in ("detail", "error", "message", "title"):
            if isinstance(document.get(key), str):
                return str(document[key])[:500]
    return json.dumps(document)[:200]


def interpret(status: int, body: bytes, retry_after: str | None) -> Outcome:
    """What an agent's HTTP answer means for the attempt."""
    if status == 200:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return Failure(
                FailureCode.INVALID_AGENT_RESPONSE, "the answer is not JSON", retryable=True
            )
        if not isinstance(document, dict) or "output" not in document:
            return Failure(
                FailureCode.INVALID_AGENT_RESPONSE,
                'the answer has no "output" member',
                retryable=True,
            )
        cost = document.get("cost")
        if cost is None:
            return Success(document["output"], None)
        try:
            charged = Decimal(str(cost)) if not isinstance(cost, bool) else None
        except InvalidOperation:
            charged = None
        if charged is None or not charged.is_finite() or charged < 0:
            return Failure(
                FailureCode.INVALID_AGENT_RESPONSE,
                f"cost {cost!r} is not a decimal ≥ 0",
                retryable=True,
            )
        return Success(document["output"], charged.quantize(Decimal("0.0001")))
    if status == 202:
        return Accepted()
    detail = f"HTTP {status}: {_detail(body)}"
    if status == 429:
        return Failure(
            FailureCode.AGENT_RATE_LIMITED,
            detail,
            retryable=True,
            retry_after=_retry_after(retry_after),
        )
    if status == 408 or status >= 500:
        return Failure(
            FailureCode.AGENT_ERROR, detail, retryable=True, retry_after=_retry_after(retry_after)
        )
    return Failure(FailureCode.AGENT_REJECTED, detail, retryable=False)


class Invoker:
    """Signs and sends invocations over one shared connection pool."""

    def __init__(
        self, network_key: Ed25519PrivateKey, key_id: str, *, max_connections: int = 100
    ) -> None:
        self.network_key = network_key
        self.key_id = key_id
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the connection pool."""
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, limit_per_host=0, keepalive_timeout=30
        )
        self._session = aiohttp.ClientSession(
            connector=connector, json_serialize=json.dumps, raise_for_status=False
        )

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def request(self, assignment: Assignment) -> tuple[bytes, dict[str, str]]:
        """The signed body and headers of an invocation."""
        body = json.dumps(
            {
                "subtask_id": str(assignment.subtask_id),
                "task_id": str(assignment.task_id),
                "attempt": assignment.attempt,
                "capability": assignment.capability,
                "input": assignment.input,
                "deadline": _rfc3339(assignment.deadline),
            },
            separators=(",", ":"),
        ).encode()
        headers = dict(_JSON_HEADERS)
        headers.update(
            sign_request(
                method="POST",
                url=assignment.endpoint_url,
                headers=headers,
                body=body,
                private_key=self.network_key,
                key_id=self.key_id,
                expires_in=max(60, int(assignment.timeout) + 5),
            )
        )
        return body, headers

    async def invoke(self, assignment: Assignment) -> Outcome:
        """Call the agent once, within the attempt's timeout; a success or failure carries
        how long the call took (``latency_ms``, for the agent's trust)."""
        body, headers = self.request(assignment)
        started = time.perf_counter()
        outcome = await self._send(assignment, body, headers)
        if isinstance(outcome, Accepted):
            return outcome
        return replace(outcome, latency_ms=round((time.perf_counter() - started) * 1000))

    async def _send(self, assignment: Assignment, body: bytes, headers: dict[str, str]) -> Outcome:
        assert self._session is not None, "Invoker.start() first"
        timeout = aiohttp.ClientTimeout(total=max(0.001, assignment.timeout))
        try:
            async with self._session.post(
                assignment.endpoint_url, data=body, headers=headers, timeout=timeout
            ) as response:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        return Failure(
                            FailureCode.INVALID_AGENT_RESPONSE,
                            f"the answer is larger than {MAX_RESPONSE_BYTES} bytes",
                            retryable=True,
                        )
                    chunks.append(chunk)
                content = b"".join(chunks)
                return interpret(response.status, content, response.headers.get("Retry-After"))
        except TimeoutError:
            return Failure(
                FailureCode.ATTEMPT_TIMEOUT,
                f"no answer within {assignment.timeout:.1f} s",
                retryable=True,
                timed_out=True,
            )
        except (aiohttp.ClientError, OSError) as exc:
            return Failure(
                FailureCode.AGENT_UNREACHABLE,
                f"{type(exc).__name__}: {exc}"[:500],
                retryable=True,
            )

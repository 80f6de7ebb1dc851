"""The SDK's machinery: operations as request generators, and the sync and async drivers.

Each API operation is written once, as a generator that yields ``ApiRequest``s and
receives ``httpx.Response``s (``@operation``). A sync driver and an async driver run the
same generators, so there is one code path for both styles. Sessions are handled by the
drivers' shared ``_drive`` generator: the first authenticated call logs in (challenge,
signature, token), a token close to expiry is renewed first, and a 401 on a stale token
logs in again and retries once.

Transports are injectable: ``AsyncClient(transport=httpx.ASGITransport(app))`` runs against
the app in-process; ``Client(transport=httpx.MockTransport(...))`` and real sockets work too.

To add operations in another module, write a mixin of ``@operation`` generators and add
it to the bases of ``Client`` and ``AsyncClient`` in ``dukenet.sdk.client``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet import crypto
from dukenet.registry.models import Challenge, Session
from dukenet.sdk.errors import Unauthorized, error_from_response

P = ParamSpec("P")
T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8080"
RENEW_BEFORE = timedelta(seconds=30)


@dataclass
class ApiRequest:
    """One HTTP call of an operation. ``auth``: needs a session; ``admin``: the operator token."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | list[tuple[str, Any]] | None = None
    auth: bool = False
    admin: bool = False
    headers: dict[str, str] = field(default_factory=dict)


Flow = Generator[ApiRequest, httpx.Response, T]


class operation(Generic[P, T]):
    """Turn a request generator into a method: blocking on ``Client``, awaitable on
    ``AsyncClient``."""

    def __init__(self, flow: Callable[Concatenate[Any, P], Flow[T]]) -> None:
        self.flow = flow
        functools.update_wrapper(self, flow)  # type: ignore[arg-type]

    @overload
    def __get__(self, instance: SyncDriver, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, instance: AsyncDriver, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> Self: ...

    def __get__(self, instance: object, owner: type[Any]) -> Any:
        if not isinstance(instance, SyncDriver | AsyncDriver):
            return self
        driver = instance

        @functools.wraps(self.flow)
        def bound(*args: P.args, **kwargs: P.kwargs) -> Any:
            return driver._run(self.flow(driver, *args, **kwargs))

        return bound


def _load_key(key: Ed25519PrivateKey | str | Path | None) -> Ed25519PrivateKey | None:
    if key is None or isinstance(key, Ed25519PrivateKey):
        return key
    path = Path(key)
    return crypto.parse_private_key(path.read_bytes() if path.exists() else str(key))


class BaseClient:
    """State shared by both drivers: base URL, the agent's key, the session, admin token."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        key: Ed25519PrivateKey | str | Path | None = None,
        admin_token: str | None = None,
        session: Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = _load_key(key)
        self.admin_token = admin_token
        self.session = session

    @property
    def agent_id(self) -> str:
        """This client's agent id (sha256 of its public key)."""
        return crypto.agent_id_for(self._require_key().public_key())

    def _require_key(self) -> Ed25519PrivateKey:
        if self.key is None:
            raise ValueError("this operation needs the agent's private key (key=...)")
        return self.key

    def _login(self) -> Flow[Session]:
        """Challenge, sign ``{"agent_id", "challenge"}``, and open a session."""
        agent_id = self.agent_id
        response = yield ApiRequest("POST", "/v1/auth/challenge", json={"agent_id": agent_id})
        challenge = Challenge.model_validate(response.json())
        signed = crypto.sign_payload(
            self._require_key(), {"agent_id": agent_id, "challenge": challenge.challenge}
        )
        response = yield ApiRequest("POST", "/v1/auth/session", json=signed)
        self.session = Session.model_validate(response.json())
        return self.session

    def _session_is_fresh(self) -> bool:
        return self.session is not None and self.session.expires_at - RENEW_BEFORE > datetime.now(
            UTC
        )

    def _drive(self, flow: Flow[T]) -> Generator[httpx.Request, httpx.Response, T]:
        """Run an operation: authenticate its requests, renew sessions, raise typed errors."""
        try:
            request = next(flow)
            while True:
                response = yield from self._send(request)
                request = flow.send(response)
        except StopIteration as done:
            result: T = done.value
            return result

    def _send(
        self, request: ApiRequest
    ) -> Generator[httpx.Request, httpx.Response, httpx.Response]:
        for attempt in (1, 2):
            headers = dict(request.headers)
            if request.admin:
                headers["authorization"] = f"Bearer {self.admin_token or ''}"
            elif request.auth:
                if not self._session_is_fresh():
                    yield from self._drive(self._login())
                assert self.session is not None
                headers["authorization"] = f"Bearer {self.session.token}"
            response = yield httpx.Request(
                request.method,
                self.base_url + request.path,
                json=request.json,
                params=request.params,
                headers=headers,
            )
            if response.is_success:
                return response
            error = error_from_response(response)
            stale_session = (
                request.auth
                and type(error) is Unauthorized
                and self.key is not None
                and attempt == 1
            )
            if not stale_session:
                raise error
            self.session = None  # expired or revoked: log in again and retry once
        raise AssertionError("unreachable")


class SyncDriver(BaseClient):
    """Runs operations with a blocking ``httpx.Client``."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        key: Ed25519PrivateKey | str | Path | None = None,
        admin_token: str | None = None,
        session: Session | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(base_url, key=key, admin_token=admin_token, session=session)
        self.http = httpx.Client(transport=transport, timeout=timeout)

    def _run(self, flow: Flow[T]) -> T:
        driver = self._drive(flow)
        try:
            request = next(driver)
            while True:
                response = self.http.send(request)
                response.read()
                request = driver.send(response)
        except StopIteration as done:
            result: T = done.value
            return result

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncDriver(BaseClient):
    """Runs operations with an ``httpx.AsyncClient``."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        key: Ed25519PrivateKey | str | Path | None = None,
        admin_token: str | None = None,
        session: Session | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(base_url, key=key, admin_token=admin_token, session=session)
        self.http = httpx.AsyncClient(transport=transport, timeout=timeout)

    async def _run(self, flow: Flow[T]) -> T:
        driver = self._drive(flow)
        try:
            request = next(driver)
            while True:
                response = await self.http.send(request)
                await response.aread()
                request = driver.send(response)
        except StopIteration as done:
            result: T = done.value
            return result

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

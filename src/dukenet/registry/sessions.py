"""Challenge-response login and bearer sessions (SPEC 2).

* ``POST /v1/auth/challenge`` stores a random challenge for 60 s; it can be consumed once
  (``GETDEL``), whether the signature then verifies or not.
* ``POST /v1/auth/session`` checks the agent's Ed25519 signature over the JCS of
  ``{"agent_id", "challenge"}`` and issues a bearer token. Only ``sha256(token)`` is kept, as
  the key ``session:{sha256}``, with the session TTL.
* Tokens look like ``{agent_id}.{secret}``: authentication fetches the session and the
  agent's cached record in one round trip, so a suspension or deregistration takes effect
  on the very next request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dukenet import crypto
from dukenet.errors import Unauthorized
from dukenet.registry import agents
from dukenet.registry.cache import AgentCache
from dukenet.registry.errors import AgentNotFound, AgentSuspended, InvalidChallenge
from dukenet.registry.models import Challenge, Session
from dukenet.registry.ratelimit import RateLimiter
from dukenet.store.cache import Cache
from dukenet.store.postgres import Database

CHALLENGE_TTL_SECONDS = 60


@dataclass(frozen=True)
class SessionStore:
    """Challenges and sessions in Redis, agent state in PostgreSQL."""

    db: Database
    cache: Cache
    session_ttl: int

    def _challenge_key(self, challenge: str) -> str:
        return self.cache.key("auth", "challenge", hashlib.sha256(challenge.encode()).hexdigest())

    def _session_key(self, token: str) -> str:
        return self.cache.key("session", hashlib.sha256(token.encode()).hexdigest())

    async def issue_challenge(self, agent_id: str) -> Challenge:
        """A single-use challenge for a registered, non-suspended agent."""
        status = await agents.registered_status(self.db, agent_id)
        if status == "SUSPENDED":
            raise AgentSuspended("this agent is suspended and cannot log in")
        challenge = secrets.token_urlsafe(32)
        await self.cache.set(self._challenge_key(challenge), agent_id, ttl=CHALLENGE_TTL_SECONDS)
        expires = datetime.now(UTC) + timedelta(seconds=CHALLENGE_TTL_SECONDS)
        return Challenge(challenge=challenge, expires_at=expires)

    async def open_session(self, agent_id: str, challenge: str, signature: str) -> Session:
        """Consume the challenge, verify the signature, and issue a bearer token."""
        async with self.cache.guard() as client:
            owner = await client.getdel(self._challenge_key(challenge))
        if not isinstance(owner, bytes) or owner.decode() != agent_id:
            raise InvalidChallenge("the challenge is unknown, expired, already used or not yours")
        public_key, status = await agents.public_key_and_status(self.db, agent_id)
        crypto.verify_payload(
            crypto.load_public_key(public_key),
            {"agent_id": agent_id, "challenge": challenge, "signature": signature},
        )
        if status == "SUSPENDED":
            raise AgentSuspended("this agent is suspended and cannot log in")
        token = f"{agent_id}.{secrets.token_urlsafe(32)}"
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=self.session_ttl)
        record = {
            "agent_id": agent_id,
            "created_at": now.isoformat(),
            "expires_at": expires.isoformat(),
        }
        await self.cache.set(self._session_key(token), json.dumps(record), ttl=self.session_ttl)
        return Session(token=token, expires_at=expires)

    async def close_session(self, token: str) -> None:
        """Log out: the token stops working at once."""
        await self.cache.delete(self._session_key(token))

    async def authenticate(
        self, token: str, *, count: tuple[RateLimiter, str] | None = None
    ) -> str:
        """The agent id a live bearer token belongs to.

        With ``count=(limiter, family)`` the request is also counted against the agent's
        ``family`` rate limit in the same Redis round trip (only when the session is live
        and the agent's own, so a forged token cannot spend another agent's limit), and
        ``RateLimited`` is raised past the limit.

        Raises ``Unauthorized`` for unknown or expired tokens and deregistered agents,
        ``AgentSuspended`` for suspended ones, ``CacheUnavailable`` when Redis is down
        (sessions live only there).
        """
        agent_id, dot, secret = token.partition(".")
        if not dot or not secret or len(agent_id) != 64:
            raise Unauthorized("malformed bearer token")
        agent_cache = AgentCache.of(self.cache)
        session_key, agent_key = self._session_key(token), agent_cache.key(agent_id)
        limiter, family = count or (None, "")
        if limiter is not None and limiter.limits[family] is not None:
            raw_session, raw_agent, owner = await limiter.hit_with_session(
                agent_id, family, session_key, agent_key
            )
        else:
            async with self.cache.guard() as client:
                pipe = client.pipeline(transaction=False)
                pipe.get(session_key)
                pipe.get(agent_key)
                raw_session, raw_agent = await pipe.execute()
            owner = None if raw_session is None else json.loads(raw_session).get("agent_id")
        if raw_session is None:
            raise Unauthorized("the session expired or was closed; log in again")
        if owner != agent_id:
            raise Unauthorized("the session does not belong to this agent")
        record = agent_cache.cached(raw_agent)
        if record is None or agent_id in agent_cache.pending:
            try:
                record = await agents.agent_json(self.db, self.cache, agent_id)
            except AgentNotFound as exc:
                raise Unauthorized("this agent is no longer registered") from exc
        if json.loads(record).get("status") == "SUSPENDED":
            raise AgentSuspended("this agent is suspended")
        return agent_id

"""Per-caller, per-route-family rate limits in Redis (``ratelimit:{caller}:{family}``).

A fixed-window counter updated by one atomic Lua script (INCR, set the window's expiry on
the first hit, read the time left), so concurrent API processes share one count without a
race. Limits use the ``limits`` library's notation (``"300/minute"``, ``"10/second"``).

When Redis is unreachable the limiter *fails open*: the request is served and a warning is
logged. Limits protect capacity, not correctness, and PostgreSQL stays the source of truth;
failing closed would turn a cache outage into a full API outage, which the design forbids.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse

from dukenet.errors import CacheUnavailable, RateLimited
from dukenet.store.cache import Cache

log = logging.getLogger(__name__)

# Route families and their default limit per caller (an agent, or an anonymous address).
DEFAULT_LIMITS: dict[str, str] = {
    "register": "300/minute",
    "auth": "60/minute",
    "read": "1200/minute",
    "write": "300/minute",
    "heartbeat": "60/minute",
}


def _count(key: str, window: str) -> str:
    """Lua that counts a hit on ``key`` (setting the window's expiry on the first hit) and
    leaves the count and the milliseconds left in ``count`` and ``ttl``."""
    return f"""
local count = redis.call('INCR', {key})
local ttl = redis.call('PTTL', {key})
if ttl < 0 then
  redis.call('PEXPIRE', {key}, {window})
  ttl = tonumber({window})
end
"""


_HIT = _count("KEYS[1]", "ARGV[1]") + "return {count, ttl}"

# The same count, plus a GET of another key in the same round trip (``hit_and_get``).
_HIT_AND_GET = _count("KEYS[1]", "ARGV[1]") + "return {count, ttl, redis.call('GET', KEYS[2])}"


def parse_limits(overrides: str = "") -> dict[str, RateLimitItem | None]:
    """Defaults merged with ``family=limit`` pairs (comma separated; ``none`` disables)."""
    chosen = dict(DEFAULT_LIMITS)
    for pair in filter(None, (p.strip() for p in overrides.split(","))):
        family, sep, value = pair.partition("=")
        family, value = family.strip(), value.strip()
        if not sep or family not in DEFAULT_LIMITS:
            raise ValueError(
                f"rate limit {pair!r}: expected family=limit with family in "
                f"{', '.join(DEFAULT_LIMITS)}"
            )
        chosen[family] = value
    return {
        family: None if value.lower() == "none" else parse(value)
        for family, value in chosen.items()
    }


def _as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


# A request with a bearer token: read the session and the agent's cached record and, only
# if the session belongs to the agent the token names, count the request (ARGV[1] agent id,
# ARGV[2] window). Returns {session, agent record, owner or false, count, ttl}.
_SESSION_HIT = (
    """
local session = redis.call('GET', KEYS[1])
local agent = redis.call('GET', KEYS[2])
if not session then
  return {false, agent, false, 0, 0}
end
local ok, decoded = pcall(cjson.decode, session)
local owner = ok and type(decoded) == 'table' and decoded['agent_id'] or false
if owner ~= ARGV[1] then
  return {session, agent, owner, 0, 0}
end
"""
    + _count("KEYS[3]", "ARGV[2]")
    + "return {session, agent, owner, count, ttl}"
)


@dataclass(frozen=True)
class Usage:
    """The caller's count in the current window and the milliseconds until it resets."""

    count: int
    reset_ms: int


class RateLimiter:
    """Counts hits per caller and family; raises ``RateLimited`` with ``retry_after``."""

    def __init__(self, cache: Cache, limits: dict[str, RateLimitItem | None]) -> None:
        self.cache = cache
        self.limits = limits
        self._hit = cache.client.register_script(_HIT)
        self._hit_and_get = cache.client.register_script(_HIT_AND_GET)
        self._session_hit = cache.client.register_script(_SESSION_HIT)
        self._warned_at = 0.0

    async def hit(self, caller: str, family: str) -> Usage | None:
        """Count one request; ``None`` when the family is unlimited or Redis is down."""
        limit = self.limits[family]
        if limit is None:
            return None
        key = self.cache.key("ratelimit", caller, family)
        window_ms = limit.get_expiry() * 1000
        try:
            async with self.cache.guard():
                count, reset_ms = await self._hit(keys=[key], args=[window_ms])
        except CacheUnavailable as exc:
            self._warn_open(exc)
            return None
        return self._check(limit, family, Usage(int(count), int(reset_ms)))

    async def hit_and_get(self, caller: str, family: str, key: str) -> tuple[bool, bytes | None]:
        """Count one request and GET ``key`` (already prefixed) in one Redis round trip.

        Returns ``(True, value)`` (``value`` is ``None`` for a missing key), or
        ``(False, None)`` when Redis is unreachable (the request is then not counted, as
        in ``hit``). Raises ``RateLimited`` like ``hit``; the value is not read then.
        The hot cached reads (``GET /v1/agents/{id}``) use it to save a round trip.
        """
        limit = self.limits[family]
        try:
            async with self.cache.guard() as client:
                if limit is None:
                    return True, _as_bytes(await client.get(key))
                count, reset_ms, value = await self._hit_and_get(
                    keys=[self.cache.key("ratelimit", caller, family), key],
                    args=[limit.get_expiry() * 1000],
                )
        except CacheUnavailable as exc:
            self._warn_open(exc)
            return False, None
        self._check(limit, family, Usage(int(count), int(reset_ms)))
        return True, _as_bytes(value)

    async def hit_with_session(
        self, agent_id: str, family: str, session_key: str, agent_key: str
    ) -> tuple[bytes | None, bytes | None, str | None]:
        """Read a session and an agent's cached record (keys already prefixed) and count the
        request against ``agent_id``'s ``family`` limit if the session is ``agent_id``'s,
        in one Redis round trip (``sessions.SessionStore.authenticate``).

        Returns the raw session, the raw agent record and the session's owner. Redis being
        down raises ``CacheUnavailable`` (no session can be checked then); past the limit,
        ``RateLimited``. ``family`` must have a limit.
        """
        limit = self.limits[family]
        assert limit is not None
        async with self.cache.guard():
            session, agent, owner, count, reset_ms = await self._session_hit(
                keys=[session_key, agent_key, self.cache.key("ratelimit", agent_id, family)],
                args=[agent_id, limit.get_expiry() * 1000],
            )
        owner_id = owner.decode() if isinstance(owner, bytes) else owner or None
        if owner_id == agent_id:
            self._check(limit, family, Usage(int(count), int(reset_ms)))
        return _as_bytes(session or None), _as_bytes(agent or None), owner_id

    def _check(self, limit: RateLimitItem, family: str, usage: Usage) -> Usage:
        if usage.count > limit.amount:
            raise RateLimited(
                f"more than {limit.amount} {family} requests per "
                f"{limit.get_expiry()} s; retry later",
                retry_after=max(1, math.ceil(usage.reset_ms / 1000)),
            )
        return usage

    def _warn_open(self, exc: CacheUnavailable) -> None:
        now = time.monotonic()
        if now - self._warned_at > 30:
            self._warned_at = now
            log.warning("rate limits not enforced (failing open): %s", exc.detail)

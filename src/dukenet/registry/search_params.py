"""The search query: every filter validated and normalized, with stable fingerprints.

``parse_search_query`` takes the raw parameters (as the API, CLI or a caller has them) and
returns a ``SearchQuery`` or raises 422 ``VALIDATION_FAILED`` whose ``field`` is the
parameter's name. Normalizing first (lowercase names and tags, sorted tags, canonical JSON
for ``accepts``, a canonical version range) makes equal searches hash equal, which the
result cache and the cursor fingerprint rely on.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any, Literal, get_args

import rfc8785
from pydantic import TypeAdapter, ValidationError

from dukenet import crypto
from dukenet.errors import InvalidInput
from dukenet.registry.inputs import MAX_TAGS, CapabilityName, Currency, Tag
from dukenet.registry.search_semver import VersionRange, parse_range

Sort = Literal["trust", "price", "latency", "relevance"]
PricingModel = Literal["per_call", "subscription", "free"]
SearchStatus = Literal["ACTIVE", "INACTIVE"]
SORTS: tuple[str, ...] = get_args(Sort)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_Q_LENGTH = 256
MAX_ACCEPTS_BYTES = 16_384

_NAME = TypeAdapter(CapabilityName)
_TAG = TypeAdapter(Tag)
_CURRENCY = TypeAdapter(Currency)
_SPACES = re.compile(r"\s+")


def _check(adapter: TypeAdapter[str], value: str, field: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise InvalidInput(f"{field}: {exc.errors()[0]['msg']}", field=field) from exc


def _decimal(
    value: Decimal | float | str | None, field: str, low: Decimal, high: Decimal
) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidInput(f"{field} must be a number", field=field) from exc
    if not number.is_finite() or not low <= number <= high:
        raise InvalidInput(f"{field} must be between {low} and {high}", field=field)
    return number


def _text(number: Decimal | None) -> str | None:
    """Canonical text of a decimal (``60`` and ``60.00`` hash alike)."""
    return None if number is None else format(number.normalize(), "f")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _accepts(raw: str | None) -> tuple[Any, str | None]:
    """The parsed ``accepts`` document and its RFC 8785 canonical text."""
    if raw is None:
        return None, None
    if len(raw.encode()) > MAX_ACCEPTS_BYTES:
        raise InvalidInput(f"accepts is larger than {MAX_ACCEPTS_BYTES} bytes", field="accepts")
    try:
        document = json.loads(raw, parse_constant=_reject_constant)
        canonical = crypto.canonical_bytes(document).decode()
    except (ValueError, rfc8785.CanonicalizationError) as exc:
        raise InvalidInput(f"accepts is not a JSON document: {exc}", field="accepts") from exc
    return document, canonical


def _tags(values: Iterable[str] | None) -> tuple[str, ...]:
    """Tags from repeated and/or comma-separated values, trimmed, lowercased and sorted."""
    found: set[str] = set()
    for value in values or ():
        for part in value.split(","):
            if part.strip():
                found.add(_check(_TAG, part, "tags"))
    if len(found) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags", field="tags")
    return tuple(sorted(found))


def _canonical(values: dict[str, Any]) -> bytes:
    """One byte string per normalized query: its values are plain strings, numbers, booleans
    and lists (``accepts`` is already RFC 8785 text), so sorted-key JSON is canonical."""
    return json.dumps(values, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SearchQuery:
    """A validated, normalized search (see ``parse_search_query``)."""

    name: str | None = None
    name_prefix: str | None = None
    q: str | None = None
    tags: tuple[str, ...] = ()
    min_trust: Decimal | None = None
    max_price: Decimal | None = None
    currency: str | None = None
    pricing_model: PricingModel | None = None
    max_latency_ms: int | None = None
    min_availability: Decimal | None = None
    version: VersionRange | None = None
    include_deprecated: bool = False
    status: SearchStatus = "ACTIVE"
    fresh_heartbeat: bool = True
    accepts: Any = None
    accepts_json: str | None = None
    sort: Sort = "trust"
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def filters(self) -> dict[str, Any]:
        """The normalized filters and sort: what a result set depends on."""
        return {
            "name": self.name,
            "name_prefix": self.name_prefix,
            "q": self.q,
            "tags": list(self.tags),
            "min_trust": _text(self.min_trust),
            "max_price": _text(self.max_price),
            "currency": self.currency,
            "pricing_model": self.pricing_model,
            "max_latency_ms": self.max_latency_ms,
            "min_availability": _text(self.min_availability),
            "version": self.version.text if self.version else None,
            "include_deprecated": self.include_deprecated,
            "status": self.status,
            "fresh_heartbeat": self.fresh_heartbeat,
            "accepts": self.accepts_json,
            "sort": self.sort,
        }

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the filters and sort (not the page): cursors carry it."""
        return hashlib.sha256(_canonical(self.filters())).hexdigest()[:32]

    @cached_property
    def digest(self) -> str:
        """sha256 of the whole normalized query, page included: the result cache key."""
        whole = {**self.filters(), "limit": self.limit, "cursor": self.cursor}
        return hashlib.sha256(_canonical(whole)).hexdigest()

    @property
    def post_filtered(self) -> bool:
        """Whether some rows are checked after SQL (``accepts``, exact ``version``)."""
        return self.accepts_json is not None or self.version is not None


def parse_search_query(
    *,
    name: str | None = None,
    q: str | None = None,
    tags: Iterable[str] | None = None,
    min_trust: Decimal | float | str | None = None,
    max_price: Decimal | float | str | None = None,
    currency: str | None = None,
    pricing_model: str | None = None,
    max_latency_ms: int | None = None,
    min_availability: Decimal | float | str | None = None,
    version: str | None = None,
    include_deprecated: bool = False,
    status: str = "ACTIVE",
    fresh_heartbeat: bool = True,
    accepts: str | None = None,
    sort: str = "trust",
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> SearchQuery:
    """Validate and normalize raw search parameters (422 naming the parameter)."""
    exact = prefix = None
    if name is not None and name.strip():
        wanted = name.strip().lower()
        if wanted.endswith(".*"):
            prefix = _check(_NAME, wanted[:-2], "name") + "."
        else:
            exact = _check(_NAME, wanted, "name")
    text = _SPACES.sub(" ", q).strip() if q is not None else ""
    if len(text) > MAX_Q_LENGTH:
        raise InvalidInput(f"q is longer than {MAX_Q_LENGTH} characters", field="q")
    if sort not in SORTS:
        raise InvalidInput(f"sort must be one of {', '.join(SORTS)}", field="sort")
    if sort == "relevance" and not text:
        raise InvalidInput("sort=relevance ranks full-text matches: give q too", field="sort")
    if status == "SUSPENDED":
        raise InvalidInput("suspended agents are never returned by search", field="status")
    if status not in ("ACTIVE", "INACTIVE"):
        raise InvalidInput("status must be ACTIVE or INACTIVE", field="status")
    if pricing_model is not None and pricing_model not in get_args(PricingModel):
        raise InvalidInput(
            "pricing_model must be per_call, subscription or free", field="pricing_model"
        )
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    if max_latency_ms is not None and (isinstance(max_latency_ms, bool) or max_latency_ms < 1):
        raise InvalidInput("max_latency_ms must be a positive integer", field="max_latency_ms")
    parsed_price = _decimal(max_price, "max_price", Decimal(0), Decimal(1_000_000))
    money = _check(_CURRENCY, currency.strip().upper(), "currency") if currency else None
    if parsed_price is not None and money is None:
        raise InvalidInput(
            "max_price compares amounts in one currency: give currency too (e.g. USD)",
            field="currency",
        )
    document, canonical = _accepts(accepts)
    return SearchQuery(
        name=exact,
        name_prefix=prefix,
        q=text or None,
        tags=_tags(tags),
        min_trust=_decimal(min_trust, "min_trust", Decimal(0), Decimal(100)),
        max_price=parsed_price,
        currency=money,
        pricing_model=pricing_model,  # type: ignore[arg-type]
        max_latency_ms=min(max_latency_ms, 2_147_483_646) if max_latency_ms else None,
        min_availability=_decimal(min_availability, "min_availability", Decimal(0), Decimal(100)),
        version=parse_range(version) if version is not None and version.strip() else None,
        include_deprecated=include_deprecated,
        status=status,  # type: ignore[arg-type]
        fresh_heartbeat=fresh_heartbeat,
        accepts=document,
        accepts_json=canonical,
        sort=sort,  # type: ignore[arg-type]
        limit=limit,
        cursor=cursor or None,
    )

"""Validated inputs of the registry: registration, profile updates, capabilities, tags.

Field formats are checked here (pydantic), so the API's 422 and the domain's own parsing
name the same JSON Pointer. Checks that need a specific ``code`` (``SCHEMA_INVALID``) run
in the domain functions after parsing.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import rfc8785
from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from dukenet import crypto
from dukenet.errors import InvalidInput
from dukenet.validation import CAPABILITY_NAME, decimal_text, non_negative_amount

MAX_TAGS = 32
MAX_TAG_LENGTH = 100
MAX_METADATA_BYTES = 16_384
MAX_URL_LENGTH = 2048
MAX_INITIAL_CAPABILITIES = 64
MAX_SCHEMA_BYTES = 65_536

# Semantic Versioning 2.0.0, the regex published at semver.org.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_CURRENCY = re.compile(r"^[A-Z][A-Z0-9]{2,9}$")


def _http_url(value: str) -> str:
    """An absolute http(s) URL with a host, kept exactly as given."""
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"URL longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() for ch in value):
        raise ValueError("URL contains whitespace")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("URL scheme must be http or https")
    if not parts.hostname:
        raise ValueError("URL has no host")
    return value


def _ethereum_address(value: str) -> str:
    """A 20-byte hex address; mixed case must carry a valid EIP-55 checksum. Stored checksummed."""
    if not is_hex_address(value) or not value.startswith("0x"):
        raise ValueError("not an Ethereum address (0x followed by 40 hex digits)")
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        raise ValueError("mixed-case Ethereum address fails its EIP-55 checksum")
    return str(to_checksum_address(value))


def _tag(value: str) -> str:
    """Tags are trimmed and lowercased; empty, over-long or control-character tags are refused."""
    tag = value.strip().lower()
    if not tag:
        raise ValueError("tag is empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"tag longer than {MAX_TAG_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in tag):
        raise ValueError("tag contains control characters")
    return tag


def _tag_set(values: list[str]) -> list[str]:
    """Unique tags in first-seen order, at most ``MAX_TAGS``."""
    unique = list(dict.fromkeys(values))
    if len(unique) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags per agent")
    return unique


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON object whose canonical form fits ``MAX_METADATA_BYTES``."""
    try:
        size = len(crypto.canonical_bytes(value))
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"metadata is not interoperable JSON: {exc}") from exc
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}")
    return value


def _availability(value: Decimal) -> Decimal:
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(100):
        raise ValueError("availability_percent must be between 0 and 100")
    try:
        return value.quantize(Decimal("0.01"))
    except InvalidOperation as exc:  # pragma: no cover - bounded above
        raise ValueError("availability_percent is not a number") from exc


def _schema_document(value: Any) -> Any:
    """A JSON Schema is an object or a boolean; whether it is a *valid* one is checked later."""
    if not isinstance(value, dict | bool):
        raise ValueError("a JSON Schema is an object or a boolean")
    return value


def _capability_name(value: str) -> str:
    if len(value) > 255 or not CAPABILITY_NAME.match(value):
        raise ValueError(
            "capability names are lowercase words (a-z, 0-9, '-' or '_') separated by dots, "
            "e.g. text.summarize"
        )
    return value


def _semver(value: str) -> str:
    if len(value) > 20 or not _SEMVER.match(value):
        raise ValueError("version must be semantic (MAJOR.MINOR.PATCH), at most 20 characters")
    return value


def _currency(value: str) -> str:
    if not _CURRENCY.match(value):
        raise ValueError("currency is 3-10 uppercase letters or digits, e.g. USD")
    return value


HttpUrl = Annotated[StrictStr, AfterValidator(_http_url)]
EthereumAddress = Annotated[StrictStr, AfterValidator(_ethereum_address)]
Tag = Annotated[StrictStr, AfterValidator(_tag)]
Tags = Annotated[list[Tag], AfterValidator(_tag_set)]
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]
Price = Annotated[
    Decimal,
    BeforeValidator(decimal_text("price must be a decimal string")),
    AfterValidator(non_negative_amount("price ")),
]
Availability = Annotated[Decimal, AfterValidator(_availability)]
CapabilityName = Annotated[StrictStr, AfterValidator(_capability_name)]
SemanticVersion = Annotated[StrictStr, AfterValidator(_semver)]
Currency = Annotated[StrictStr, AfterValidator(_currency)]
DisplayName = Annotated[StrictStr, Field(min_length=1, max_length=255)]
Description = Annotated[StrictStr, Field(max_length=10_000)]
AgentVersion = Annotated[StrictStr, Field(min_length=1, max_length=20)]
JsonSchema = Annotated[Any, AfterValidator(_schema_document)]
PricingModel = Literal["per_call", "subscription", "free"]


class _Input(BaseModel):
    """Inputs refuse unknown fields, so a typo is a 422 rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class CapabilitySpec(_Input):
    """A capability to publish. ``free`` means price 0; prices have at most 4 decimals."""

    name: CapabilityName
    version: SemanticVersion
    description: Description | None = None
    input_schema: JsonSchema
    output_schema: JsonSchema
    pricing_model: PricingModel = "free"
    price: Price = Decimal("0.0000")
    currency: Currency = "USD"
    latency_p99_ms: Annotated[StrictInt, Field(gt=0, le=86_400_000)] | None = None
    availability_percent: Availability | None = None
    deprecated: StrictBool = False


class CapabilityUpdate(_Input):
    """Fields of a capability that can change; name and version identify it and cannot."""

    description: Description | None = None
    input_schema: JsonSchema | None = None
    output_schema: JsonSchema | None = None
    pricing_model: PricingModel | None = None
    price: Price | None = None
    currency: Currency | None = None
    latency_p99_ms: Annotated[StrictInt, Field(gt=0, le=86_400_000)] | None = None
    availability_percent: Availability | None = None
    deprecated: StrictBool | None = None


class Registration(_Input):
    """A signed registration. The signature covers the JCS of every other field."""

    public_key: StrictStr
    agent_id: StrictStr | None = None
    display_name: DisplayName
    description: Description | None = None
    endpoint_url: HttpUrl | None = None
    owner_address: EthereumAddress | None = None
    avatar_url: HttpUrl | None = None
    version: AgentVersion | None = None
    metadata: Metadata | None = None
    tags: Tags = Field(default_factory=list)
    capabilities: Annotated[list[CapabilitySpec], Field(max_length=MAX_INITIAL_CAPABILITIES)] = (
        Field(default_factory=list)
    )
    timestamp: AwareDatetime
    signature: StrictStr

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, value: str) -> str:
        crypto.decode_public_key_bytes(value)
        return value


class AgentUpdate(_Input):
    """A partial profile update; a field sent as ``null`` is cleared (not ``display_name``)."""

    display_name: DisplayName | None = None
    description: Description | None = None
    endpoint_url: HttpUrl | None = None
    owner_address: EthereumAddress | None = None
    avatar_url: HttpUrl | None = None
    version: AgentVersion | None = None
    metadata: Metadata | None = None


class TagsUpdate(_Input):
    """The complete new tag set of an agent."""

    tags: Tags


class StatusChange(_Input):
    """An operator's suspension or reinstatement, with the reason on record."""

    reason: Annotated[StrictStr, Field(min_length=1, max_length=1000)]


class LoginChallengeRequest(_Input):
    """Ask for a login challenge."""

    agent_id: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]


class LoginRequest(_Input):
    """Prove possession of the key by signing ``{"agent_id", "challenge"}``."""

    agent_id: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]
    challenge: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    signature: StrictStr


def _pointer(location: tuple[int | str, ...]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in location)


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse(model: type[ModelT], data: Any) -> ModelT:
    """Validate ``data`` into ``model``; ``InvalidInput`` points at the first culprit."""
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object", field="")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _pointer(tuple(first["loc"]))
        raise InvalidInput(
            f"{field}: {first['msg']}",
            field=field,
            extra={
                "errors": [
                    {"field": _pointer(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()
                ]
            },
        ) from exc


def timestamp_skew(timestamp: datetime, now: datetime) -> float:
    """Seconds between a signed timestamp and the server clock (absolute)."""
    return abs((timestamp - now).total_seconds())

"""Validated inputs of the marketplace API (pydantic), naming fields as JSON Pointers in 422s.

Money travels as decimal strings; JSON numbers are read through their shortest text (exact
for every amount the API accepts). The domain functions check the same rules again for
internal callers.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from dukenet.market.fees import MAX_FUNDING_AMOUNT, MAX_TRANSACTION_AMOUNT
from dukenet.market.models import TransactionType
from dukenet.validation import decimal_text, four_decimals

AGENT_ID_PATTERN = r"^[0-9a-f]{64}$"
MAX_METADATA_BYTES = 16_384
MAX_PROOF_BYTES = 65_536
CURRENCY_PATTERN = r"^[A-Z][A-Z0-9]{2,9}$"


_money_text = decimal_text('amount must be a decimal string such as "12.50"')


def _positive(limit: Decimal) -> Any:
    def check(value: Decimal) -> Decimal:
        if not value.is_finite() or value <= 0:
            raise ValueError("amount must be a positive decimal")
        if value > limit:
            raise ValueError(f"amount must be at most {limit}")
        return four_decimals(value, "amount ")

    return check


Amount = Annotated[
    Decimal, BeforeValidator(_money_text), AfterValidator(_positive(MAX_TRANSACTION_AMOUNT))
]
FundingAmount = Annotated[
    Decimal, BeforeValidator(_money_text), AfterValidator(_positive(MAX_FUNDING_AMOUNT))
]


def _json_size(limit: int) -> Any:
    def check(value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
            if size > limit:
                raise ValueError(f"the object is {size} bytes as JSON; the limit is {limit}")
        return value

    return check


Currency = Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN)]
Metadata = Annotated[dict[str, Any] | None, AfterValidator(_json_size(MAX_METADATA_BYTES))]
Proof = Annotated[dict[str, Any] | None, AfterValidator(_json_size(MAX_PROOF_BYTES))]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class Input(BaseModel):
    """Strict about unknown fields, so a typo is a 422 rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class PurchaseRequest(Input):
    """``POST /v1/transactions``: buy from ``seller_agent_id``; the amount is held at once."""

    seller_agent_id: Annotated[str, StringConstraints(pattern=AGENT_ID_PATTERN)] = Field(
        validation_alias=AliasChoices("seller_agent_id", "seller")
    )
    transaction_type: TransactionType
    item_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    amount: Amount
    currency: Currency = "USD"
    payment_method: Annotated[str, StringConstraints(min_length=1, max_length=50)] = "escrow"
    metadata: Metadata = None


class CompleteRequest(Input):
    """``POST /v1/transactions/{id}/complete``: the seller's proof of delivery (e.g. a CID);
    ``amount`` charges less than was held (the rest returns to the buyer)."""

    completion_proof: Proof = None
    amount: Annotated[Decimal, BeforeValidator(_money_text)] | None = None


class ReasonRequest(Input):
    """``fail`` and ``refund``: why."""

    reason: Reason | None = None


class FundingRequest(Input):
    """An operator's deposit or payout: how the money came in or went out."""

    amount: FundingAmount
    currency: Currency = "USD"
    payment_method: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    payment_reference: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None

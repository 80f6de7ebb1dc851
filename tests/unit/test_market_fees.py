"""Exact money: the platform fee's half-even rounding, amount and currency rules, request
parsing, idempotency fingerprints and listing cursors."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from uuid import uuid4

import pytest
from pydantic import ValidationError

from dukenet.errors import InvalidInput
from dukenet.market.fees import check_amount, check_currency, platform_fee
from dukenet.market.idempotency import check_key, fingerprint
from dukenet.market.inputs import CompleteRequest, FundingRequest, PurchaseRequest
from dukenet.market.transactions import decode_cursor, encode_cursor

SELLER = "ab" * 32


@pytest.mark.parametrize(
    ("amount", "rate", "fee"),
    [
        ("100", "0.025", "2.5000"),
        ("10.01", "0.025", "0.2502"),  # 0.25025: the 5 rounds to the even 2
        ("19.99", "0.025", "0.4998"),  # 0.49975: the 5 rounds up to the even 8
        ("0.0100", "0.025", "0.0002"),  # 0.00025 -> 0.0002
        ("0.0300", "0.025", "0.0008"),  # 0.00075 -> 0.0008
        ("0.0002", "0.25", "0.0000"),  # 0.00005 -> 0.0000
        ("0.0006", "0.25", "0.0002"),  # 0.00015 -> 0.0002
        ("0.0001", "0.025", "0.0000"),  # a fee can round to nothing
        ("999999.9999", "0.025", "25000.0000"),  # 24999.9999975
        ("12.3456", "0", "0.0000"),
        ("3.3333", "0.025", "0.0833"),  # 0.0833325
        ("1", "0.3333333", "0.3333"),
    ],
)
def test_platform_fee_rounds_half_even_to_four_places(amount: str, rate: str, fee: str) -> None:
    result = platform_fee(Decimal(amount), Decimal(rate))
    assert result == Decimal(fee)
    assert str(result) == fee  # always four decimals


def _reference_fee(amount: Decimal, rate: Decimal) -> Fraction:
    """round(amount x rate, 4), half to even, computed with exact fractions."""
    scaled = Fraction(amount) * Fraction(rate) * 10_000
    whole, rest = divmod(scaled, 1)
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2 == 1):
        whole += 1
    return Fraction(int(whole), 10_000)


def test_platform_fee_matches_exact_arithmetic_and_never_loses_a_cent() -> None:
    rng = random.Random(2024)
    for _ in range(20_000):
        amount = Decimal(rng.randrange(1, 10**10)).scaleb(-4)
        rate = Decimal(rng.randrange(0, 10**5)).scaleb(-rng.randrange(3, 7))
        if rate >= 1:
            continue
        fee = platform_fee(amount, rate)
        assert Fraction(fee) == _reference_fee(amount, rate), (amount, rate)
        seller_share = amount - fee
        assert seller_share + fee == amount and Decimal(0) <= fee <= amount


@pytest.mark.parametrize(
    "value", ["0", "-0.0001", "0.00001", "1000000", "NaN", "Infinity", "1.23456"]
)
def test_transaction_amounts_are_positive_with_at_most_four_decimals(value: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_amount(Decimal(value))
    assert raised.value.field == "/amount"


def test_amounts_are_normalized_to_four_decimals() -> None:
    assert str(check_amount(Decimal("1.5"))) == "1.5000"
    assert str(check_amount(Decimal("999999.9999"))) == "999999.9999"
    assert check_amount(Decimal("0"), allow_zero=True) == 0


@pytest.mark.parametrize("code", ["usd", "US", "U$D", "", "ABCDEFGHIJK"])
def test_currency_codes(code: str) -> None:
    with pytest.raises(InvalidInput):
        check_currency(code)
    assert check_currency("USDC") == "USDC"


def test_purchase_request_reads_money_exactly() -> None:
    request = PurchaseRequest.model_validate(
        {"seller": SELLER, "transaction_type": "DATA_PURCHASE", "amount": 0.1}
    )
    assert request.amount == Decimal("0.1000") and request.seller_agent_id == SELLER
    assert (request.currency, request.payment_method) == ("USD", "escrow")
    as_text = PurchaseRequest.model_validate(
        {"seller_agent_id": SELLER, "transaction_type": "SKILL_RENTAL", "amount": "12.5"}
    )
    assert str(as_text.amount) == "12.5000"


@pytest.mark.parametrize("amount", [True, "0", "1e-5", "-3", "abc", 1_000_000])
def test_purchase_request_refuses_bad_amounts(amount: object) -> None:
    with pytest.raises(ValidationError) as raised:
        PurchaseRequest.model_validate(
            {"seller_agent_id": SELLER, "transaction_type": "DATA_PURCHASE", "amount": amount}
        )
    assert raised.value.errors()[0]["loc"] == ("amount",)


def test_funding_needs_a_payment_method_and_allows_large_amounts() -> None:
    funding = FundingRequest.model_validate({"amount": "2500000", "payment_method": "wire"})
    assert funding.amount == Decimal("2500000.0000")
    with pytest.raises(ValidationError):
        FundingRequest.model_validate({"amount": "1"})


def test_fingerprints_see_meaning_not_spelling() -> None:
    first = fingerprint("POST", "/v1/transactions", {"a": "1.0000", "b": [1, 2]})
    reordered = fingerprint("POST", "/v1/transactions", {"b": [1, 2], "a": "1.0000"})
    assert first == reordered
    assert first != fingerprint("POST", "/v1/transactions", {"a": "2.0000", "b": [1, 2]})
    assert first != fingerprint("POST", "/v1/other", {"a": "1.0000", "b": [1, 2]})


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
def test_idempotency_keys_are_printable_ascii(key: str) -> None:
    with pytest.raises(InvalidInput):
        check_key(key)
    assert check_key("4f1c2e6a-order-7") == "4f1c2e6a-order-7"


def test_cursors_round_trip_and_refuse_garbage() -> None:
    moment, transaction_id = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), uuid4()
    assert decode_cursor(encode_cursor(moment, transaction_id)) == (moment, transaction_id)
    for garbage in ("garbage", "W10", encode_cursor(moment, transaction_id)[:-3]):
        with pytest.raises(InvalidInput) as raised:
            decode_cursor(garbage)
        assert raised.value.field == "cursor"


def test_metadata_and_proofs_are_size_limited() -> None:
    body = {"seller_agent_id": SELLER, "transaction_type": "DATA_PURCHASE", "amount": "1"}
    assert PurchaseRequest.model_validate({**body, "metadata": {"note": "x" * 16_000}})
    with pytest.raises(ValidationError) as raised:
        PurchaseRequest.model_validate({**body, "metadata": {"note": "x" * 16_400}})
    assert raised.value.errors()[0]["loc"] == ("metadata",)
    with pytest.raises(ValidationError):
        CompleteRequest.model_validate({"completion_proof": {"blob": "y" * 70_000}})

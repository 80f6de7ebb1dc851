"""Exact money: amounts with at most four decimals, currency codes, and the platform fee.

``platform_fee = round(amount * fee_rate, 4)`` with banker's rounding (half-even), so the
fee on 0.0100 at 2.5 % is 0.0002 (0.00025 rounds to the even digit) and on 0.0300 it is
0.0008 (0.00075 rounds up to the even digit). Amounts are ``Decimal`` end to end.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from dukenet.errors import InvalidInput

QUANTUM = Decimal("0.0001")
# transactions.amount is DECIMAL(10,4); funding movements may be larger.
MAX_TRANSACTION_AMOUNT = Decimal("999999.9999")
MAX_FUNDING_AMOUNT = Decimal("99999999999.9999")
TRANSACTION_TYPES = ("SKILL_RENTAL", "DATA_PURCHASE", "COMPUTE_TIME")
_CURRENCY = re.compile(r"^[A-Z][A-Z0-9]{2,9}$")


def platform_fee(amount: Decimal, fee_rate: Decimal) -> Decimal:
    """The platform's share of ``amount``: ``amount * fee_rate`` rounded half-even to 4 places."""
    with localcontext() as context:
        context.prec = 50  # exact product of two short decimals before the one rounding
        return (amount * fee_rate).quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def check_amount(
    amount: Decimal,
    *,
    field: str = "/amount",
    maximum: Decimal = MAX_TRANSACTION_AMOUNT,
    allow_zero: bool = False,
) -> Decimal:
    """``amount`` as a 4-decimal ``Decimal``, or ``InvalidInput`` naming ``field``."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidInput("amount must be a finite decimal", field=field)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidInput(
            f"amount must be {'zero or ' if allow_zero else ''}positive, got {amount}", field=field
        )
    if amount > maximum:
        raise InvalidInput(f"amount must be at most {maximum}, got {amount}", field=field)
    quantized = amount.quantize(QUANTUM)
    if quantized != amount:
        raise InvalidInput(f"amount has more than 4 decimal places: {amount}", field=field)
    return quantized


def check_currency(currency: str, *, field: str = "/currency") -> str:
    """A currency code such as ``USD`` (3-10 upper-case letters or digits)."""
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise InvalidInput(
            f"currency must be an upper-case code such as USD, got {currency!r}", field=field
        )
    return currency


def check_transaction_type(transaction_type: str, *, field: str = "/transaction_type") -> str:
    """One of ``SKILL_RENTAL``, ``DATA_PURCHASE``, ``COMPUTE_TIME``."""
    if transaction_type not in TRANSACTION_TYPES:
        raise InvalidInput(
            f"transaction_type must be one of {', '.join(TRANSACTION_TYPES)}", field=field
        )
    return transaction_type

"""Value rules shared by every domain: money amounts and capability names.

Registry prices, task budgets and marketplace amounts all live in DECIMAL(10,4) columns and
travel as decimal strings; capability names are matched by the registry and by task
submission alike. One definition keeps those rules from drifting apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

QUANTUM = Decimal("0.0001")  # 4 decimal places
COLUMN_LIMIT = Decimal("1000000")  # DECIMAL(10,4) holds values below this
CAPABILITY_NAME = re.compile(r"^[a-z0-9]+(?:[_-][a-z0-9]+)*(?:\.[a-z0-9]+(?:[_-][a-z0-9]+)*)*$")


def decimal_text(message: str) -> Callable[[Any], Any]:
    """A before-validator: JSON numbers are read through their shortest text, booleans refused."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(message)
        if isinstance(value, float | int):
            return str(value)
        return value

    return check


def four_decimals(value: Decimal, label: str) -> Decimal:
    """``value`` quantized to 4 places, refusing a value that needs more."""
    quantized = value.quantize(QUANTUM)
    if quantized != value:
        raise ValueError(f"{label}has more than 4 decimal places")
    return quantized


def non_negative_amount(label: str = "") -> Callable[[Decimal], Decimal]:
    """An after-validator for amounts ≥ 0 that fit the column (``label`` prefixes messages)."""

    def check(value: Decimal) -> Decimal:
        if not value.is_finite() or value < 0:
            raise ValueError(f"{label}must be a decimal ≥ 0")
        if value >= COLUMN_LIMIT:
            raise ValueError(f"{label}must be below 1000000")
        return four_decimals(value, label)

    return check

"""Prices as KAI writes them: a decimal string with the currency's minor-unit digits (`39.90`
EUR, `4500` JPY, `12.500` KWD), and amounts worked out from prices rounded to that unit.

Only the currencies whose minor unit is not hundredths are listed (ISO 4217's table); any
other code has two decimals.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Final

_MINOR_DIGITS: Final[dict[str, int]] = {
    **dict.fromkeys(
        (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
            "VND", "VUV", "XAF", "XOF", "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip


def minor_digits(currency: str | None) -> int:
    """How many decimals an amount in `currency` has (2 for a code ISO 4217 does not list)."""
    return _MINOR_DIGITS.get(currency.upper(), 2) if currency else 2


def _step(currency: str | None) -> Decimal:
    return Decimal(1).scaleb(-minor_digits(currency))


def format_price(amount: Decimal, currency: str | None) -> str:
    """`amount` with exactly its currency's decimals; a price finer than its currency (a
    screw at 0.0125 EUR) is written whole: a price is never rounded where it is shown."""
    exact = amount.quantize(_step(currency))
    return f"{exact:f}" if exact == amount else f"{amount.normalize():f}"


def round_amount(amount: Decimal, currency: str | None) -> Decimal:
    """An amount worked out from prices (a quantity times a price), to the currency's minor
    unit, halves rounded up as invoices round them."""
    return amount.quantize(_step(currency), rounding=ROUND_HALF_UP)

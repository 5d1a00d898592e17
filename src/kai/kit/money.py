"""Amounts of money written as ISO 4217 has them: as many decimals as the currency's minor
unit, `39.90` EUR, `4500` JPY, `12.500` KWD, never more and never fewer.

Only the currencies whose minor unit is not hundredths are listed (ISO 4217's table, as of
2024); any other code has two decimals.
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


def minor_digits(currency: str) -> int:
    """How many decimals an amount in `currency` has (2 for a code ISO 4217 does not list)."""
    return _MINOR_DIGITS.get(currency.upper(), 2)


def _step(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_digits(currency))


def fits_currency(amount: Decimal, currency: str) -> bool:
    """Whether `amount` is a whole number of `currency`'s minor units (`39.90` EUR is,
    `39.905` EUR and `39.9` JPY are not): trailing zeros are no precision."""
    return amount == amount.quantize(_step(currency))


def format_amount(amount: Decimal, currency: str | None) -> str:
    """`amount` with exactly its currency's decimals (two without a currency). An amount finer
    than its currency, kept from before such amounts were refused, is written whole: money is
    never rounded where it is shown."""
    step = _step(currency) if currency else Decimal("0.01")
    exact = amount.quantize(step)
    return f"{exact:f}" if exact == amount else f"{amount.normalize():f}"


def round_amount(amount: Decimal, currency: str | None) -> Decimal:
    """An amount worked out from prices (a quantity times a price), to the currency's minor
    unit (hundredths without a currency), halves rounded up as invoices round them."""
    step = _step(currency) if currency else Decimal("0.01")
    return amount.quantize(step, rounding=ROUND_HALF_UP)

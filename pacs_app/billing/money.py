"""Money as integer minor units of a currency: parsing, formatting, no floats anywhere.

Formatting follows what people of each currency expect: Indian digit grouping for the rupee
(``₹1,23,456.00``), the dollar sign for USD (``$1,234.56``), the ISO code for the dirham
(``AED 1,234.56``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from pacs_app.core.errors import InvalidInput
from pacs_app.models import Currency


@dataclass(frozen=True)
class CurrencyInfo:
    code: str
    symbol: str
    name: str
    minor_digits: int
    indian_grouping: bool = False
    symbol_is_code: bool = False  # written "AED 1,234.56"


CURRENCIES: dict[Currency, CurrencyInfo] = {
    Currency.USD: CurrencyInfo("USD", "$", "US dollar", 2),
    Currency.INR: CurrencyInfo("INR", "₹", "Indian rupee", 2, indian_grouping=True),
    Currency.AED: CurrencyInfo("AED", "AED", "UAE dirham", 2, symbol_is_code=True),
}


def currency_of(code: str | Currency) -> Currency:
    try:
        return Currency(str(code).strip().upper())
    except ValueError as exc:
        raise InvalidInput(
            f"Unknown currency {code!r}: use one of {', '.join(c.value for c in Currency)}."
        ) from exc


def parse_amount(
    text: str | int | Decimal, currency: str | Currency, *, what: str = "price"
) -> int:
    """``"1234.5"`` in INR -> 123450 paise. Refuses negatives, non-numbers and extra digits."""
    info = CURRENCIES[currency_of(currency)]
    raw = str(text).strip().replace(",", "").replace("_", "")
    for prefix in (info.symbol, info.code):
        raw = raw.removeprefix(prefix).strip()
    try:
        value = Decimal(raw)
    except (InvalidOperation, ValueError) as exc:
        raise InvalidInput(f"The {what} {text!r} is not a number.") from exc
    if not value.is_finite():
        raise InvalidInput(f"The {what} {text!r} is not a number.")
    if value < 0:
        raise InvalidInput(f"The {what} cannot be negative ({text}).")
    scaled = value.scaleb(info.minor_digits)
    if scaled != scaled.to_integral_value():
        raise InvalidInput(
            f"The {what} {text} has more than {info.minor_digits} decimals for {info.code}."
        )
    if scaled > 10**15:
        raise InvalidInput(f"The {what} {text} is too large.")
    return int(scaled)


def to_decimal(minor: int, currency: str | Currency) -> Decimal:
    info = CURRENCIES[currency_of(currency)]
    return Decimal(minor).scaleb(-info.minor_digits)


def _group(digits: str, indian: bool) -> str:
    if len(digits) <= 3:
        return digits
    if not indian:
        parts = []
        while digits:
            parts.insert(0, digits[-3:])
            digits = digits[:-3]
        return ",".join(parts)
    head, tail = digits[:-3], digits[-3:]
    parts = []
    while head:
        parts.insert(0, head[-2:])
        head = head[:-2]
    return ",".join(parts) + "," + tail


def format_money(minor: int, currency: str | Currency) -> str:
    """``format_money(12345600, "INR") == "₹1,23,456.00"``."""
    info = CURRENCIES[currency_of(currency)]
    sign = "-" if minor < 0 else ""
    value = to_decimal(abs(int(minor)), currency).quantize(
        Decimal(1).scaleb(-info.minor_digits), rounding=ROUND_HALF_EVEN
    )
    whole, _, fraction = f"{value:f}".partition(".")
    text = _group(whole, info.indian_grouping)
    if fraction:
        text += "." + fraction
    if info.symbol_is_code:
        return f"{sign}{info.symbol} {text}"
    return f"{sign}{info.symbol}{text}"


def convert(minor: int, rate: Decimal, source: Currency, target: Currency) -> int:
    """Convert at an explicit rate (1 source = ``rate`` target), rounding half to even."""
    value = to_decimal(minor, source) * rate
    return int(value.scaleb(CURRENCIES[target].minor_digits).to_integral_value(ROUND_HALF_EVEN))

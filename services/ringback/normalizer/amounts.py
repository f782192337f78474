"""Money and billing quantities: exact decimals and whole numbers, or a precise rejection. Never a float.

Strict about their form: ASCII digits only (``"９９９.００"`` is not an amount), and no sign — the
vendors bill no negative charge, duration or fee, so ``"-1"``, ``-5`` or ``"+3"`` is a dead letter,
not a refund.

An amount given as a JSON number (a ``Decimal``) is judged by its size (``adjusted()``: where its
leading digit sits) before it is written out in digits: ``Decimal("1e-999999999")`` is a few bytes, its
digits a gigabyte.
"""

from __future__ import annotations

import re
import reprlib
from decimal import Decimal

from ringback.normalizer.digits import NUMBER_MAX_DIGITS, ascii_digits, preview
from ringback.normalizer.outcome import Rejected

CNY = "CNY"
CHARGE_SCALE = 6  # Decimal(18, 6) in the schema and in ClickHouse
CHARGE_MAX_INTEGER_DIGITS = 12
_DECIMAL = re.compile(rf"[0-9]{{1,{CHARGE_MAX_INTEGER_DIGITS}}}(?:\.([0-9]+))?")
QUANTITY_MAX_DIGITS = 18
_WHOLE = re.compile(rf"[0-9]{{1,{QUANTITY_MAX_DIGITS}}}")
MAX_QUANTITY = 2**63 - 1
SIGNS = "+-"
#: The longest amount text read: its digits, a decimal point (trailing zeros count as digits).
AMOUNT_MAX_CHARS = NUMBER_MAX_DIGITS + 1


def decimal_amount(value: object, field_name: str) -> Decimal | None:
    """A yuan amount written as text (``"2.94"``); empty means absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Rejected("invalid_amount", f"{field_name}: {value!r} is not an amount")
    if isinstance(value, float):
        raise Rejected("invalid_amount", f"{field_name}: {value!r} is a binary float, not an exact amount")
    if isinstance(value, int) and abs(value) >= 10**CHARGE_MAX_INTEGER_DIGITS:
        raise _too_large(value, field_name)  # (before str(): a huge int is costly to write out)
    text = _decimal_digits(value, field_name) if isinstance(value, Decimal) else str(value).strip()
    if not text:
        return None
    if len(text) > AMOUNT_MAX_CHARS:
        raise Rejected(
            "invalid_amount",
            f"{field_name}: {preview(text)!r} is too long for an amount (at most {CHARGE_MAX_INTEGER_DIGITS} "
            f"integer and {CHARGE_SCALE} decimal digits)",
        )
    if text[0] in SIGNS:
        raise Rejected("invalid_amount", f"{field_name}: {text!r} is signed; charges are never negative")
    match = _DECIMAL.fullmatch(text)
    if not match:
        raise Rejected("invalid_amount", f"{field_name}: cannot read {text!r} as a decimal amount")
    fraction = match.group(1) or ""
    if len(fraction.rstrip("0")) > CHARGE_SCALE:
        raise _too_precise(text, field_name)
    return Decimal(text).quantize(Decimal(1).scaleb(-CHARGE_SCALE))


def _decimal_digits(value: Decimal, field_name: str) -> str:
    """An exact JSON number's digits (``2.94e0`` -> ``2.94``), once its size is known to fit an amount."""
    if not value.is_finite():
        raise Rejected("invalid_amount", f"{field_name}: {value!r} is not a finite amount")
    if value.is_signed():
        raise Rejected("invalid_amount", f"{field_name}: {preview(str(value))!r} is signed; charges are never negative")
    if value.is_zero():
        return "0"  # whatever its exponent (0e-999999999)
    if value.adjusted() >= CHARGE_MAX_INTEGER_DIGITS:
        raise _too_large(value, field_name)
    if value.adjusted() < -CHARGE_SCALE:
        raise _too_precise(str(value), field_name)
    # Now at most CHARGE_MAX_INTEGER_DIGITS integer digits, and no more decimals than the value has digits.
    return format(value, "f")


def _too_large(value: int | Decimal, field_name: str) -> Rejected:
    return Rejected(
        "invalid_amount",
        f"{field_name}: {_described(value)} has more than {CHARGE_MAX_INTEGER_DIGITS} integer digits",
    )


def _too_precise(text: str, field_name: str) -> Rejected:
    return Rejected("invalid_amount", f"{field_name}: {preview(text)!r} has more than {CHARGE_SCALE} decimal places")


def whole_number(value: object, field_name: str) -> int | None:
    """A non-negative count (seconds, minutes) written as text or an integer; empty means absent."""
    if value is None or isinstance(value, bool):
        return None if value is None else _reject_quantity(value, field_name)
    if isinstance(value, int):
        return value if 0 <= value <= MAX_QUANTITY else _reject_quantity(value, field_name)
    text = str(value).strip()
    if not text:
        return None
    if text[0] in SIGNS:
        raise Rejected(
            "invalid_quantity", f"{field_name}: {preview(text)!r} is signed; billed quantities are never negative"
        )
    if not _WHOLE.fullmatch(text):
        if ascii_digits(text):
            raise Rejected(
                "invalid_quantity",
                f"{field_name}: {preview(text)!r} has {len(text)} digits; a quantity has at most {QUANTITY_MAX_DIGITS}",
            )
        return _reject_quantity(value, field_name)
    return int(text)


def _reject_quantity(value: object, field_name: str) -> int:
    raise Rejected("invalid_quantity", f"{field_name}: cannot read {_described(value)} as a whole non-negative number")


#: Integers wider than this are described by their size, not written out.
DESCRIBED_MAX_BITS = 256


def _described(value: object) -> str:
    """A vendor value for a message: quoted and cut short, or an integer too wide to write out by its size."""
    if isinstance(value, int) and value.bit_length() > DESCRIBED_MAX_BITS:
        return f"an integer of {value.bit_length()} bits"
    return reprlib.repr(value)

"""Money and billing quantities: exact decimals and whole numbers, or a precise rejection. Never a float.

Strict about their form: ASCII digits only (``"９９９.００"`` is not an amount), and no sign — the
vendors bill no negative charge, duration or fee, so ``"-1"``, ``-5`` or ``"+3"`` is a dead letter,
not a refund.
"""

from __future__ import annotations

import re
from decimal import Decimal

from ringback.normalizer.outcome import Rejected

CNY = "CNY"
CHARGE_SCALE = 6  # Decimal(18, 6) in the schema and in ClickHouse
CHARGE_MAX_INTEGER_DIGITS = 12
_DECIMAL = re.compile(rf"[0-9]{{1,{CHARGE_MAX_INTEGER_DIGITS}}}(?:\.([0-9]+))?")
QUANTITY_MAX_DIGITS = 18
_WHOLE = re.compile(rf"[0-9]{{1,{QUANTITY_MAX_DIGITS}}}")
MAX_QUANTITY = 2**63 - 1
SIGNS = "+-"


def decimal_amount(value: object, field_name: str) -> Decimal | None:
    """A yuan amount written as text (``"2.94"``); empty means absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Rejected("invalid_amount", f"{field_name}: {value!r} is not an amount")
    text = str(value).strip() if not isinstance(value, float) else None
    if text is None:
        raise Rejected("invalid_amount", f"{field_name}: {value!r} is a binary float, not an exact amount")
    if not text:
        return None
    if isinstance(value, Decimal) and "E" in text.upper():
        text = format(value, "f")  # an exact JSON number written with an exponent, e.g. 2.94e0
    if text[0] in SIGNS:
        raise Rejected("invalid_amount", f"{field_name}: {text!r} is signed; charges are never negative")
    match = _DECIMAL.fullmatch(text)
    if not match:
        raise Rejected("invalid_amount", f"{field_name}: cannot read {text!r} as a decimal amount")
    fraction = match.group(1) or ""
    if len(fraction.rstrip("0")) > CHARGE_SCALE:
        raise Rejected("invalid_amount", f"{field_name}: {text!r} has more than {CHARGE_SCALE} decimal places")
    return Decimal(text).quantize(Decimal(1).scaleb(-CHARGE_SCALE))


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
        raise Rejected("invalid_quantity", f"{field_name}: {text!r} is signed; billed quantities are never negative")
    if not _WHOLE.fullmatch(text):
        return _reject_quantity(value, field_name)
    return int(text)


def _reject_quantity(value: object, field_name: str) -> int:
    raise Rejected("invalid_quantity", f"{field_name}: cannot read {value!r} as a whole non-negative number")

"""Numbers as vendors write them: ASCII digits only, and no wider than any vendor value.

Python's ``\\d`` and ``str.isdigit()`` accept the digits of every script (``"９９９"``, ``"٥٠٠"``, even
superscripts) and ``int()`` converts most of them, so a full-width amount would be read as a number.
Every pattern in the normalizer spells ``[0-9]``, and every check goes through here.

A JSON number is short text for a value of any size: ``1e-999999999`` is twelve bytes, and writing it
out in full (``format(value, "f")``, ``int()``) takes a gigabyte. So a number is judged by its text —
how many digits, how large an exponent — before anything turns it into a value.
"""

from __future__ import annotations

#: The most digits a number in a vendor body may have. The widest vendor values are a 64-bit count
#: (20 digits) and an amount (12 integer and 6 decimal digits); the rest is room for written zeros.
NUMBER_MAX_DIGITS = 40
#: The largest exponent, either sign, a number may be written with (``2.94e0``). With at most
#: ``NUMBER_MAX_DIGITS`` digits, no number is then more than about a hundred characters written out.
NUMBER_MAX_EXPONENT = 40
PREVIEW_CHARS = 24


def ascii_digits(text: str) -> bool:
    """Non-empty and nothing but ``0``–``9``."""
    return text.isascii() and text.isdigit()


def number_out_of_range(text: str) -> str | None:
    """Why the written number ``text`` (``-12.5e-3``) is wider than any vendor value, or None.

    Looks at the text only: its work is proportional to its length, whatever value it writes.
    """
    mantissa, _, exponent = text.replace("E", "e").partition("e")
    digits = len(mantissa) - mantissa.count("-") - mantissa.count(".")
    if digits > NUMBER_MAX_DIGITS:
        return f"{preview(text)} has {digits} digits; numbers are read up to {NUMBER_MAX_DIGITS}"
    magnitude = exponent.lstrip("+-").lstrip("0")
    if magnitude and not ascii_digits(magnitude):
        return f"{preview(text)} is not a number"
    if len(magnitude) > len(str(NUMBER_MAX_EXPONENT)) or int(magnitude or "0") > NUMBER_MAX_EXPONENT:
        return (
            f"{preview(text)} has the exponent {preview(exponent)}; numbers are read up to exponents of "
            f"±{NUMBER_MAX_EXPONENT}"
        )
    return None


def preview(text: str) -> str:
    """``text``, cut to a readable length (a number of a million digits is not quoted whole)."""
    return text if len(text) <= PREVIEW_CHARS else f"{text[:PREVIEW_CHARS]}… ({len(text)} characters)"

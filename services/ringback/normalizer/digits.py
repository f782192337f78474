"""Numbers as vendors write them: ASCII digits only.

Python's ``\\d`` and ``str.isdigit()`` accept the digits of every script (``"９９９"``, ``"٥٠٠"``, even
superscripts) and ``int()`` converts most of them, so a full-width amount would be read as a number.
Every pattern in the normalizer spells ``[0-9]``, and every check goes through here.
"""

from __future__ import annotations


def ascii_digits(text: str) -> bool:
    """Non-empty and nothing but ``0``–``9``."""
    return text.isascii() and text.isdigit()

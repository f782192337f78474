"""Event ids: one vendor report, one id — however often and in whatever form it is resent.

An id is the blake2b-128 hex digest of one canonical JSON document, ``[source, tenant, event type,
{identity field: value}]`` with the fields' keys sorted (each adapter names its identity fields, and
its module docstring says why those). JSON escapes every value, so no value can run into the next
one (joined with an unescaped ``␟``, the values ``("a␟b", "")`` and ``("a", "b␟")`` were one string).
The values are canonical, so a resend reads the same however the vendor wrote it:

- strings stripped of surrounding whitespace; an empty string, ``null`` and an absent field are one
  value (no value);
- numbers as the text of their digits: ``"fee": 1`` and ``"fee": "1"`` are the same;
- ``true``/``false`` as those words; nested values as JSON with sorted keys.

The fields' keys are sorted, so neither the order of the vendor's keys nor the order in which an
adapter lists its identity fields matters; nor do the request that carried the report, its position
in an array, or the JSON's whitespace, none of which is part of the document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal

import orjson

DIGEST_BYTES = 16  # 128 bits: 32 hex characters


def event_id(source: str, tenant: str, event_type: str, identity: Mapping[str, object]) -> str:
    """The id of the report whose identity fields are ``identity`` (field name -> vendor value)."""
    canonical = {
        # Most values are strings: canonicalized here rather than by a call per field.
        name: (value.strip() or None) if type(value) is str else identity_value(value)
        for name, value in identity.items()
    }
    document = orjson.dumps([source, tenant, event_type, canonical], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(document, digest_size=DIGEST_BYTES).hexdigest()


def identity_value(value: object) -> str | None:
    """A vendor value as it counts for identity: canonical text, or None for no value."""
    if type(value) is str:
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()

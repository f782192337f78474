"""Reading callback bodies as JSON, with a precise reason when that is impossible."""

from __future__ import annotations

from typing import Any

import orjson

from ringback.normalizer.outcome import Rejected


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise Rejected("empty_body", "the request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected("invalid_json", f"body is not valid JSON: {exc}") from exc

"""The schemas of the bodies the edge answers with: the vendors' replies, health, readiness, metrics."""

from __future__ import annotations

import orjson

from ringback.edge import replies
from ringback.normalizer.adapters.schema_parts import Schema


def reply_schemas() -> dict[str, Schema]:
    ok = orjson.loads(replies.TENCENT_OK)
    return {
        "TencentSuccess": {
            "description": "Tencent's success reply: the request is durable.",
            "type": "object",
            "properties": {name: {"const": value} for name, value in ok.items()},
            "required": list(ok),
            "additionalProperties": False,
            "examples": [ok],
        },
        "Failure": {
            "description": (
                "A refusal or failure in the shape every vendor understands: Tencent reads the non-zero `result`, the "
                "other platforms only the HTTP status."
            ),
            "type": "object",
            "properties": {
                "result": {"const": replies.TENCENT_FAILURE_RESULT},
                "errmsg": {"type": "string", "description": "Why, in words."},
            },
            "required": ["result", "errmsg"],
            "additionalProperties": False,
            "examples": [orjson.loads(replies.error_body("temporarily unavailable, please retry"))],
        },
        "Empty": {"description": "No body.", "type": "string", "maxLength": 0},
        "FailureText": {"description": "Why, in words; only the status matters to the platform.", "type": "string"},
        "Health": {
            "type": "object",
            "properties": {"status": {"const": "ok"}},
            "required": ["status"],
            "additionalProperties": False,
        },
        "Readiness": readiness_schema(),
        "Metrics": {"description": "Prometheus text exposition.", "type": "string"},
        "OpenApiDocument": {
            "description": "This document.",
            "type": "object",
            "properties": {
                "openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"},
                "info": {"type": "object"},
                "paths": {"type": "object"},
            },
            "required": ["openapi", "info", "paths"],
        },
    }


def readiness_schema() -> Schema:
    count = {"type": "integer", "minimum": 0}
    journal = {
        "type": "object",
        "description": "The edge's local journal.",
        "properties": {
            "mode": {
                "enum": ["journal", "spool"],
                "description": (
                    "`journal`: every callback is journaled before the reply; `spool`: only what the broker could not "
                    "take."
                ),
            },
            "records": {**count, "description": "Records not yet trimmed."},
            "bytes": {**count, "description": "Their bytes."},
            "max_bytes": {**count, "description": "The journal's bound (`spool_max_bytes`)."},
            "unpublished": {**count, "description": "Records not yet acknowledged by the broker."},
            "oldest_age_s": {
                "type": ["number", "null"],
                "minimum": 0,
                "description": "Age of the oldest untrimmed record (journal mode), else null.",
            },
        },
        "required": ["mode", "records", "bytes", "max_bytes", "unpublished", "oldest_age_s"],
        "additionalProperties": False,
    }
    in_flight = {
        "type": "object",
        "description": "What the callback requests being handled hold now, and the edge's bounds.",
        "properties": {
            "requests": {**count, "description": "Requests being handled."},
            "bytes": {**count, "description": "Body bytes they hold (as arrived and as decoded)."},
            "max_requests": {**count, "description": "`edge_max_in_flight`."},
            "max_bytes": {**count, "description": "`edge_max_in_flight_bytes`."},
        },
        "required": ["requests", "bytes", "max_requests", "max_bytes"],
        "additionalProperties": False,
    }
    shedding = {
        "type": "object",
        "description": (
            "Requests were shed with the retryable failure within the last `edge_shed_ready_hold_s`. "
            "`in_flight_requests` and `in_flight_bytes` (the whole edge is full) make the edge not ready until "
            "`clears_after_s` passes without more; `address_share_*` (one address over its share) do not."
        ),
        "properties": {
            "reasons": {
                "type": "array",
                "items": {
                    "enum": ["in_flight_requests", "in_flight_bytes", "address_share_requests", "address_share_bytes"]
                },
            },
            "last_s_ago": {"type": "number", "minimum": 0, "description": "Seconds since the last request was shed."},
            "clears_after_s": {
                "type": "number",
                "minimum": 0,
                "description": "Seconds until the shedding is over if no more requests are shed.",
            },
        },
        "required": ["reasons", "last_s_ago", "clears_after_s"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "description": (
            "Ready when a callback can be made durable (in journal mode the journal has room; in spool mode the "
            "broker answers or the journal has room) and the edge is not shedding load for lack of in-flight room."
        ),
        "properties": {
            "ready": {"type": "boolean"},
            "reasons": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Why the edge is not ready, one line each (empty when it is).",
            },
            "broker": {"enum": ["reachable", "unreachable"]},
            "tenants": {
                "description": (
                    "How many tenants the tenants file holds, or that there is none and the edge is open to anyone."
                ),
                "anyOf": [{"type": "integer", "minimum": 0}, {"const": "none: open to anyone"}],
            },
            "journal": {"anyOf": [{"type": "null"}, journal]},
            "in_flight": in_flight,
            "shedding": {"anyOf": [{"type": "null"}, shedding]},
        },
        "required": ["ready", "reasons", "broker", "tenants", "journal", "in_flight", "shedding"],
        "additionalProperties": False,
    }

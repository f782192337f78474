"""The pieces each ``<format>_schema.py`` beside an adapter describes its request bodies with.

A format's schema module exposes ``FORMATS`` (route name -> ``VendorFormat``) and ``SCHEMAS`` (JSON
Schema by name, as they appear in the OpenAPI document's ``components/schemas``). The edge never reads
them: ``ringback.tools.openapi`` builds ``schemas/openapi.json`` from them and the route table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]


@dataclass(frozen=True)
class VendorFormat:
    """What a route receives: its tag and summary in the document, and the name of its body's schema."""

    tag: str
    summary: str
    description: str
    schema: str  # name of the body's schema in components/schemas


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def text(description: str) -> Schema:
    return {"type": "string", "description": description}


def text_or_number(description: str) -> Schema:
    return {"type": ["string", "number"], "description": description}


def record(description: str, properties: dict[str, Schema], required: Sequence[str] = ()) -> Schema:
    """A vendor object: the fields it documents; others are allowed and kept as the event's attributes."""
    schema: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def one_or_many(description: str, item: str) -> Schema:
    return {"description": description, "anyOf": [ref(item), {"type": "array", "items": ref(item), "minItems": 1}]}

"""The generated parts of the docs, and `make docs` (`python -m tests.regen_docs`) to write them.

- docs/configuration.md: the configuration table, from config.describe();
- docs/event-fields.md: every field of the normalized event, from schemas/normalized_event.avsc;
- deploy/metrics.md: the metrics catalog (tests/metrics_catalog.py);
- schemas/openapi.json: the OpenAPI document the edge serves (tests/openapi_document.py).
tests/unit/test_docs.py fails while any of them differs from what this writes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ringback import config
from tests import metrics_catalog, openapi_document
from tests.conftest import REPO_ROOT

CONFIGURATION = REPO_ROOT / "docs" / "configuration.md"
EVENT_FIELDS = REPO_ROOT / "docs" / "event-fields.md"
SCHEMA = REPO_ROOT / "schemas" / "normalized_event.avsc"
CONFIG_TABLE = re.compile(r"\| flag \| environment \| default \| meaning \|\n(?:\|.*\|\n)+")


def config_table() -> str:
    lines = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    lines += [
        f"| `{flag}` | `{env}` | `{default}` | {help_text} |" for flag, env, default, help_text in config.describe()
    ]
    return "\n".join(lines) + "\n"


def configuration_page() -> str:
    """docs/configuration.md with its table replaced by the one config.py describes."""
    text = CONFIGURATION.read_text(encoding="utf-8")
    if not CONFIG_TABLE.search(text):
        raise SystemExit(f"{CONFIGURATION} has no configuration table to regenerate")
    return CONFIG_TABLE.sub(lambda _: config_table(), text, count=1)


def avro_type(schema: Any) -> str:
    if isinstance(schema, list):
        return " or ".join(avro_type(s) for s in schema)
    if isinstance(schema, str):
        return schema
    if "logicalType" in schema:
        if schema["logicalType"] == "decimal":
            return f"decimal({schema['precision']}, {schema['scale']})"
        return str(schema["logicalType"])
    if schema["type"] == "map":
        return f"map of {avro_type(schema['values'])}"
    if schema["type"] == "array":
        return f"array of {avro_type(schema['items'])}"
    return str(schema["type"])


def event_fields_page() -> str:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    lines = [
        "# Event fields",
        "",
        f"Every field of `{schema['namespace']}.{schema['name']}`, the Avro record of each event. Generated from",
        "`schemas/normalized_event.avsc` by `make docs`; a test fails while this page differs from the schema.",
        "",
        f"> {schema['doc']}",
        "What the fields mean together, and their rules: [The normalized event](event.md).",
        "",
        "| field | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for f in schema["fields"]:
        default = f"`{json.dumps(f['default'])}`" if "default" in f else "—"
        lines.append(f"| `{f['name']}` | {avro_type(f['type'])} | {default} | {f.get('doc', '')} |")
    return "\n".join(lines) + "\n"


def generated() -> dict[Path, str]:
    """Each generated file and the text it must hold."""
    return {
        CONFIGURATION: configuration_page(),
        EVENT_FIELDS: event_fields_page(),
        metrics_catalog.CATALOG: metrics_catalog.render(),
        openapi_document.DOCUMENT_FILE: openapi_document.rendered(),
    }


if __name__ == "__main__":
    for path, text in generated().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO_ROOT)}")

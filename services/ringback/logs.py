"""structlog set-up: JSON lines for production roles, readable console output under `ringback run`.

In JSON mode every record is one line, the libraries' (aiohttp, aiokafka, asyncio) included: they go
through the same processors, and an exception becomes an ``error`` field (type and message) with the
place it was raised (``error_at``) instead of a multi-line traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

JSON = "json"
ERROR_TEXT_LIMIT = 1000


def _orjson_dumps(obj: object, default: Callable[[Any], Any] | None = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def _exc_info_tuple(value: Any) -> tuple[type[BaseException], BaseException, TracebackType | None] | None:
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and value[1] is not None:
        return value
    if value is True:
        current = sys.exc_info()
        return current if current[1] is not None else None
    return None


def exception_as_one_line(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace ``exc_info`` by ``error`` ("Type: message") and ``error_at`` (file:line of the raise)."""
    info = _exc_info_tuple(event_dict.pop("exc_info", None))
    if info is None:
        return event_dict
    _, exc, tb = info
    event_dict.setdefault("error", f"{type(exc).__name__}: {exc}".replace("\n", " ")[:ERROR_TEXT_LIMIT])
    frames = traceback.extract_tb(tb) if tb is not None else []
    if frames:
        last = frames[-1]
        event_dict["error_at"] = f"{last.filename}:{last.lineno} in {last.name}"
    return event_dict


def configure(log_format: str = JSON, level: str = "info", role: str | None = None) -> None:
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        numeric_level = logging.INFO
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if log_format == JSON:
        shared.append(exception_as_one_line)
        renderer: structlog.typing.Processor = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library: the same processors render them, warnings and up.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric_level, logging.WARNING))
    if role:
        structlog.contextvars.bind_contextvars(role=role)


def get(name: str | None = None) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name) if name else structlog.get_logger()
    return logger

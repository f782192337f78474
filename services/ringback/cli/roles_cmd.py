"""`ringback run` and the roles it supervises, each runnable alone: edge, normalizer, sink, broker."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ringback import config
from ringback.cli.common import Command, SubParsers
from ringback.config import Settings


def _analysts_file_valid(settings: Settings) -> bool:
    """The analysts file checked before anything starts: a bad one is a configuration error."""
    from ringback.sink.analysts import AnalystsError, load

    if not settings.analysts_file:
        return True
    try:
        load(Path(settings.analysts_file))
    except AnalystsError as exc:
        print(f"ringback: configuration error: analysts file: {exc}", file=sys.stderr)
        return False
    return True


def _run(settings: Settings) -> int:
    from ringback.runtime.lifecycle import run_async
    from ringback.supervisor import run_all

    if not _analysts_file_valid(settings):
        return 2
    return run_async(lambda: run_all(settings))


def _edge(settings: Settings) -> int:
    from ringback.edge.server import serve
    from ringback.runtime.lifecycle import run_async

    return run_async(lambda: serve(settings))


def _normalizer(settings: Settings) -> int:
    from ringback.normalizer.service import serve
    from ringback.runtime.lifecycle import run_async

    return run_async(lambda: serve(settings))


def _sink(settings: Settings) -> int:
    from ringback.runtime.lifecycle import run_async
    from ringback.sink.service import serve

    if not _analysts_file_valid(settings):
        return 2
    return run_async(lambda: serve(settings))


def _broker(settings: Settings) -> int:
    import signal
    import threading

    from ringback.runtime.broker import EmbeddedBroker

    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    with EmbeddedBroker(port=settings.kafka_port) as broker:
        print(f"broker listening on {broker.bootstrap} (Ctrl-C stops it)", flush=True)
        stopped.wait()
    return 0


ROLE_COMMANDS: dict[str, tuple[Callable[[Settings], int], str]] = {
    "run": (_run, "Run the whole pipeline: embedded broker (unless --kafka-bootstrap), edge, normalizer, sink."),
    "edge": (_edge, "Run the HTTP edge against an existing Kafka."),
    "normalizer": (_normalizer, "Run a normalizer worker against an existing Kafka."),
    "sink": (_sink, "Run a sink worker against an existing Kafka and ClickHouse."),
    "broker": (_broker, "Run only the embedded Kafka-protocol broker (for development)."),
}


def _add_role(name: str, help_text: str) -> Callable[[SubParsers], None]:
    def add(commands: SubParsers) -> None:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        config.add_flags(sub)

    return add


def _handle_role(handler: Callable[[Settings], int]) -> Callable[[argparse.Namespace, Settings], int]:
    def handle(_args: argparse.Namespace, settings: Settings) -> int:
        try:
            return handler(settings)
        except KeyboardInterrupt:
            return 0

    return handle


COMMANDS = tuple(
    Command(name, _add_role(name, help_text), _handle_role(handler))
    for name, (handler, help_text) in ROLE_COMMANDS.items()
)

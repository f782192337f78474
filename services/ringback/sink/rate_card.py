"""The rate card in the store: loaded from ``rates_file`` at start, again when the file changes (or on
with a new file), like the edge's tenants file.

A card is stored as its lines, then one row in ``ringback.rate_cards`` naming it: ``ringback.rates`` shows
the latest named card, so a reader never sees half a card, and every earlier card stays. A file that does
not validate stops the start; while running it is refused with a log line and the card in force stays.
The revenue-assurance settings go to ``ringback.billing_settings`` at start, for the views that read them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from ringback import logs
from ringback.config import Settings
from ringback.rates import RateCard, RatesError, load

LINES_TABLE = "ringback.rate_lines"
CARDS_TABLE = "ringback.rate_cards"
SETTINGS_TABLE = "ringback.billing_settings"
LINE_COLUMNS = [
    "card_version",
    "line",
    "tenant",
    "app_id",
    "event_type",
    "unit",
    "price",
    "currency",
    "increment_s",
    "valid_from",
]
CARD_COLUMNS = ["card_version", "lines", "file", "sha256"]
#: The settings the assurance views read from the store.
ASSURANCE_SETTINGS = ("cdr_grace_minutes", "receipt_grace_hours", "charge_tolerance")
#: The card is visible to readers only once its lines are on every shard.
SYNC_INSERT = {"insert_distributed_sync": 1}
POLL_S = 2.0

log = logs.get(__name__)


def store_card(client: Client, card: RateCard, file: str) -> bool:
    """Store ``card`` as the card in force; False when it is already (the same file content)."""
    in_force = client.query(f"SELECT argMax(sha256, card_version) FROM {CARDS_TABLE}").result_rows
    if in_force and in_force[0][0] == card.sha256:
        return False
    version = dt.datetime.now(dt.UTC)
    rows = [
        [
            version,
            line.line,
            line.tenant,
            line.app_id,
            line.event_type,
            line.unit,
            line.price,
            line.currency,
            line.increment_s,
            line.valid_from,
        ]
        for line in card.lines
    ]
    if rows:
        client.insert(LINES_TABLE, rows, column_names=LINE_COLUMNS, settings=SYNC_INSERT)
    client.insert(
        CARDS_TABLE, [[version, len(rows), file, card.sha256]], column_names=CARD_COLUMNS, settings=SYNC_INSERT
    )
    return True


def store_settings(client: Client, settings: Settings) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [[name, str(getattr(settings, name)), now] for name in ASSURANCE_SETTINGS]
    client.insert(SETTINGS_TABLE, rows, column_names=["name", "value", "set_at"], settings=SYNC_INSERT)


OnDbThread = Callable[..., Awaitable[Any]]


class RateCardSource:
    """Keeps the store's card in step with ``rates_file``; ``on_db_thread`` runs a call on the thread
    that owns the store's client."""

    def __init__(self, path: str, client: Client, on_db_thread: OnDbThread) -> None:
        self.path = Path(path) if path else None
        self.client = client
        self.on_db_thread = on_db_thread
        self._stamp = self._file_stamp()
        self._watch: asyncio.Task[None] | None = None

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    async def load_at_start(self) -> None:
        """Load the card; a file that does not validate stops the start (RatesError)."""
        if self.path is None:
            return
        card = load(self.path)
        await self._store(card)

    async def reload(self) -> bool:
        """Read the file again; True when its card is in force."""
        if self.path is None:
            return False
        self._stamp = self._file_stamp()
        try:
            card = load(self.path)
        except RatesError as exc:
            log.error("rates file refused; the rate card in force stays", error=str(exc))
            return False
        await self._store(card)
        return True

    async def _store(self, card: RateCard) -> None:
        assert self.path is not None
        path, client = str(self.path), self.client
        stored = await self.on_db_thread(lambda: store_card(client, card, path))
        if stored:
            log.info("rate card loaded", file=path, lines=len(card.lines), sha256=card.sha256)

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            if self._file_stamp() != self._stamp:
                try:
                    await self.reload()
                except Exception as exc:  # the store failing now must not end the watch
                    self._stamp = None  # tried again at the next poll
                    log.error("rate card not stored; trying again", error=str(exc)[:500])

    def start(self) -> None:
        if self.path is not None:
            self._watch = asyncio.create_task(self.watch())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)

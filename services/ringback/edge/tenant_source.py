"""The tenants in force: read at start, read again on SIGHUP or when the file changes.

A request reads the table once, as it starts, so a reload never drops or splits a request; a file that
does not validate is refused with a log line, and the tenants in force stay as they were.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ringback import logs, metrics
from ringback.edge.tenants import Tenants, TenantsError, load

POLL_S = 2.0

log = logs.get(__name__)


class TenantSource:
    def __init__(self, path: str) -> None:
        self.path = Path(path) if path else None
        self.current: Tenants | None = load(self.path) if self.path is not None else None  # a bad file stops the start
        self._stamp = self._file_stamp()
        self._watch: asyncio.Task[None] | None = None

    @property
    def open_to_anyone(self) -> bool:
        return self.current is None

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def reload(self) -> bool:
        """Read the file again; True when the new tenants are in force."""
        if self.path is None:
            return False
        self._stamp = self._file_stamp()
        try:
            fresh = load(self.path)
        except TenantsError as exc:
            metrics.EDGE_TENANT_RELOADS.labels("refused").inc()
            log.error(
                "tenants file refused; the tenants in force stay",
                error=str(exc),
                tenants=len(self.current.by_id) if self.current else 0,
            )
            return False
        self.current = fresh
        metrics.EDGE_TENANT_RELOADS.labels("loaded").inc()
        log.info("tenants file loaded", tenants=len(fresh.by_id), allow_anonymous=fresh.allow_anonymous)
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            if self._file_stamp() != self._stamp:
                self.reload()

    def start(self) -> None:
        if self.path is not None:
            self._watch = asyncio.create_task(self.watch())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)

"""The load generator's HTTP: one keep-alive HTTP/1.1 connection per worker, POST and read the reply.

A general client (aiohttp's) spends more CPU per request than the edge it is measuring, and on a
small machine that CPU comes out of the pipeline's share. This one does only what `ringback loadgen`
needs: a prebuilt request head, a status line, a Content-Length body (or a chunked one), reconnect
after any error. Every failure is an ``HttpError``; the caller counts it and goes on.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

HEAD_END = b"\r\n\r\n"


class HttpError(Exception):
    """The request got no complete HTTP reply (connection refused or lost, timeout, garbage)."""


class Connection:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/")
        self.host_header = parts.netloc.encode()
        self.timeout_s = timeout_s
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, content_type: bytes = b"application/json") -> tuple[int, bytes]:
        """(status, reply body); raises HttpError."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(path, body, content_type)
        except (
            OSError,
            EOFError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
        ) as exc:
            self.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc

    async def _exchange(self, path: str, body: bytes, content_type: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, ssl=self.tls)
        assert self.reader is not None
        head = b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
            (self.prefix + path).encode(),
            self.host_header,
            content_type,
            len(body),
        )
        self.writer.write(head + body)
        reply_head = await self.reader.readuntil(HEAD_END)
        if not reply_head.startswith(b"HTTP/1."):
            raise ValueError("not an HTTP reply")
        status = int(reply_head[9:12])
        headers = reply_head.lower()
        reply = await self._body(headers)
        if b"\r\nconnection: close" in headers:
            self.close()
        return status, reply

    async def _body(self, headers: bytes) -> bytes:
        assert self.reader is not None
        marker = headers.find(b"\r\ncontent-length:")
        if marker >= 0:
            end = headers.index(b"\r\n", marker + 2)
            return await self.reader.readexactly(int(headers[marker + 17 : end]))
        if b"\r\ntransfer-encoding: chunked" in headers:
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunks.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    return b"".join(chunk[:-2] for chunk in chunks)
        raise ValueError("reply has neither Content-Length nor chunked encoding")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

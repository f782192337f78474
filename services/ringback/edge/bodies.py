"""Reading a callback's body: what the request announces is checked first, what arrives is measured.

- A ``Content-Length`` over ``max_body_bytes`` is ``413`` at once: the body is not waited for.
- A ``Content-Encoding`` the edge cannot decode is ``415`` at once (``identity``, ``gzip``, ``deflate``
  and ``zstd`` are decoded; anything else, or several stacked, is not).
- The body is read as it arrives, every byte held counted in the in-flight budget (a compressed body:
  the bytes arrived and the bytes decoded so far). A body larger than ``max_body_bytes`` — sent, or once
  decoded (a zip bomb stops at ``max_body_bytes + 1`` decoded bytes) — is ``413``; a compressed body that
  does not decode, or ends before its stream does, is ``400``; a body that does not arrive within
  ``body_read_timeout_s`` is ``408``.

The stored body is the decoded one: the normalizers read what the vendor meant, whatever the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from http import HTTPStatus
from typing import Protocol

from aiohttp import web

from ringback.edge.in_flight import Lease

try:  # Python 3.14 has it in the standard library
    from compression.zstd import ZstdDecompressor, ZstdError  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the Python version
    try:
        from backports.zstd import ZstdDecompressor, ZstdError  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        ZstdDecompressor = ZstdError = None

IDENTITY = ("", "identity")
GZIP = ("gzip", "x-gzip")
DEFLATE = "deflate"
ZSTD = "zstd"
#: zlib's window bits: a gzip member only, a zlib stream, a raw deflate stream.
GZIP_WBITS = 16 + zlib.MAX_WBITS
ZLIB_WBITS = zlib.MAX_WBITS
RAW_DEFLATE_WBITS = -zlib.MAX_WBITS
#: The low nibble of a zlib stream's first byte (CM = 8: deflate); other first bytes are raw deflate.
ZLIB_METHOD_DEFLATE = 8
LOW_NIBBLE = 0x0F

# Outcomes, as counted in ringback_edge_requests_total.
TOO_LARGE = "too_large"
TOO_SLOW = "too_slow"
OVERLOADED = "overloaded"
BAD_ENCODING = "bad_encoding"
UNSUPPORTED_ENCODING = "unsupported_encoding"


class BodyRefused(Exception):
    """The body is not taken: ``status`` None is the vendor's retryable failure (shed for lack of room)."""

    def __init__(self, outcome: str, status: int | None, message: str, reason: str = "") -> None:
        super().__init__(outcome, status, message, reason)
        self.outcome = outcome
        self.status = status
        self.message = message
        self.reason = reason  # why it was shed, or what did not decode


class CorruptBody(ValueError):
    pass


class Decoder(Protocol):
    def decode(self, data: bytes, limit: int) -> bytes:
        """The bytes ``data`` decodes to, at most ``limit + 1`` of them (more is too large anyway)."""

    def finish(self) -> None:
        """Raise CorruptBody when the stream did not end."""


class ZlibDecoder:
    """gzip (several members one after the other, as RFC 1952 allows) and deflate (zlib-wrapped, or raw
    as some senders mean it)."""

    def __init__(self, encoding: str) -> None:
        self.gzip = encoding in GZIP
        self._inflate: zlib._Decompress | None = None
        self._fed = False

    def _start(self, first: bytes) -> zlib._Decompress:
        if self.gzip:
            return zlib.decompressobj(GZIP_WBITS)
        zlib_wrapped = first[0] & LOW_NIBBLE == ZLIB_METHOD_DEFLATE
        return zlib.decompressobj(ZLIB_WBITS if zlib_wrapped else RAW_DEFLATE_WBITS)

    def decode(self, data: bytes, limit: int) -> bytes:
        out = bytearray()
        try:
            while data and len(out) <= limit:
                if self._inflate is None:
                    self._inflate = self._start(data)
                elif self._inflate.eof:
                    if not self.gzip:
                        raise CorruptBody("data after the end of the deflate stream")
                    self._inflate = self._start(data)  # the next gzip member
                self._fed = True
                out += self._inflate.decompress(data, limit + 1 - len(out))
                data = self._inflate.unconsumed_tail or self._inflate.unused_data
        except zlib.error as exc:
            raise CorruptBody(str(exc)) from None
        return bytes(out)

    def finish(self) -> None:
        if self._fed and self._inflate is not None and not self._inflate.eof:
            raise CorruptBody("the compressed stream ends early")


class ZstdDecoder:
    """zstd, one frame or several one after the other."""

    def __init__(self) -> None:
        self._frame = ZstdDecompressor()
        self._fed = False

    def decode(self, data: bytes, limit: int) -> bytes:
        out = bytearray()
        try:
            while len(out) <= limit:
                if self._frame.eof:
                    data = self._frame.unused_data + data
                    if not data:
                        break
                    self._frame = ZstdDecompressor()  # the next frame
                if not data and self._frame.needs_input:
                    break
                self._fed = self._fed or bool(data)
                out += self._frame.decompress(data, limit + 1 - len(out))
                data = b""
        except (ZstdError, EOFError) as exc:
            raise CorruptBody(str(exc)) from None
        return bytes(out)

    def finish(self) -> None:
        if self._fed and not self._frame.eof:
            raise CorruptBody("the compressed stream ends early")


def encoding_of(request: web.Request) -> str:
    return request.headers.get("Content-Encoding", "").strip().lower()


def decoder_for(encoding: str) -> Decoder | None:
    """None for an unencoded body; raises BodyRefused (415) for an encoding the edge cannot decode."""
    if encoding in IDENTITY:
        return None
    if encoding in GZIP or encoding == DEFLATE:
        return ZlibDecoder(encoding)
    if encoding == ZSTD and ZstdDecompressor is not None:
        return ZstdDecoder()
    raise BodyRefused(
        UNSUPPORTED_ENCODING,
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "unsupported Content-Encoding (send identity, gzip, deflate or zstd)",
        reason=encoding[:64],
    )


def check_announced(request: web.Request, max_body_bytes: int) -> Decoder | None:
    """Refuse (BodyRefused) what the head alone shows cannot be taken; the body's decoder, if any."""
    declared = request.content_length
    if declared is not None and declared > max_body_bytes:
        raise BodyRefused(TOO_LARGE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {max_body_bytes} bytes")
    decoder = decoder_for(encoding_of(request))
    if getattr(request.content, "total_compressed_bytes", None) is not None:  # (an empty body has no such reader)
        return None  # served with aiohttp's own decoding (auto_decompress): the body arrives decoded
    return decoder


async def read_body(
    request: web.Request, decoder: Decoder | None, lease: Lease, max_body_bytes: int, timeout_s: float
) -> bytes:
    """The (decoded) body, every byte held counted in ``lease``; BodyRefused when it cannot be taken."""
    body = bytearray()
    # A body that has wholly arrived (most callbacks come in the head's packet) is read without waiting:
    # no timer to arm and cancel.
    arrived = request.content.is_eof()
    try:
        async with contextlib.nullcontext() if arrived else asyncio.timeout(timeout_s):
            while chunk := await request.content.readany():
                _hold(lease, len(body) + len(chunk))
                piece = chunk if decoder is None else _decode(decoder, chunk, max_body_bytes - len(body))
                if len(body) + len(piece) > max_body_bytes:
                    raise BodyRefused(
                        TOO_LARGE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {max_body_bytes} bytes"
                    )
                body += piece
                _hold(lease, len(body))
    except TimeoutError:
        raise BodyRefused(TOO_SLOW, HTTPStatus.REQUEST_TIMEOUT, f"body not received within {timeout_s:g}s") from None
    if decoder is not None:
        try:
            decoder.finish()
        except CorruptBody as exc:
            raise _corrupt(exc) from None
    return bytes(body)


def _hold(lease: Lease, total: int) -> None:
    shed = lease.hold(total)
    if shed is not None:
        raise BodyRefused(OVERLOADED, None, "overloaded, please retry", reason=shed)


def _decode(decoder: Decoder, chunk: bytes, room: int) -> bytes:
    try:
        return decoder.decode(chunk, room)
    except CorruptBody as exc:
        raise _corrupt(exc) from None


def _corrupt(exc: CorruptBody) -> BodyRefused:
    return BodyRefused(
        BAD_ENCODING, HTTPStatus.BAD_REQUEST, "the body does not decode as its Content-Encoding says", str(exc)[:200]
    )

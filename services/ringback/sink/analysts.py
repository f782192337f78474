"""Analyst accounts of the sink's ClickHouse HTTP interface: who may query the store, and which
tenants' rows each one sees.

The accounts file (``--analysts-file``) is TOML::

    [[analysts]]
    name = "finance"
    password_sha256 = "<hex>"  # or password = "..." (at least 16 characters)
    tenants = ["*"]  # every tenant
    [[analysts]]
    name = "acme-ops"
    password = "..."
    tenants = ["acme"]  # only these tenants' rows

It is validated at start (a bad file stops the start) and read again when it changes: a new file that
does not validate is refused with a log line and the accounts in force stay. Without a file, only
loopback clients are admitted, as ``default`` with every tenant. Passwords are compared as SHA-256
digests in constant time, and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ringback import logs

POLL_S = 2.0
MIN_PASSWORD_CHARS = 16
ALL_TENANTS = "*"
DEFAULT_USER = "default"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
#: A tenant id as the edge knows it: quoted into the engine's row filter, so nothing else is allowed.
TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_KEYS = frozenset({"name", "password", "password_sha256", "tenants"})

log = logs.get(__name__)


class AnalystsError(ValueError):
    """The accounts file is not valid; the message says where and why."""


@dataclass(frozen=True)
class Analyst:
    """An account: its name, and its tenants (None: every tenant)."""

    name: str
    tenants: frozenset[str] | None
    password_sha256: bytes = b""

    @property
    def every_tenant(self) -> bool:
        return self.tenants is None


LOOPBACK_DEFAULT = Analyst(DEFAULT_USER, None)


def digest(password: str) -> bytes:
    return hashlib.sha256(password.encode("utf-8")).digest()


def load(path: Path) -> dict[str, Analyst]:
    """The accounts of the file by name; :class:`AnalystsError` on anything not valid."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AnalystsError(f"{path}: cannot be read: {exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AnalystsError(f"{path}: not TOML: {exc}") from exc
    entries = data.get("analysts")
    extra = set(data) - {"analysts"}
    if extra:
        raise AnalystsError(f"{path}: unknown top-level keys {sorted(extra)}; only [[analysts]]")
    if not isinstance(entries, list) or not entries:
        raise AnalystsError(f"{path}: no [[analysts]] entries")
    accounts: dict[str, Analyst] = {}
    for index, entry in enumerate(entries, start=1):
        analyst = _analyst(entry, f"{path}: analyst #{index}")
        if analyst.name in accounts:
            raise AnalystsError(f"{path}: analyst #{index}: name {analyst.name!r} given twice")
        accounts[analyst.name] = analyst
    return accounts


def _analyst(entry: object, where: str) -> Analyst:
    if not isinstance(entry, dict):
        raise AnalystsError(f"{where}: not a table")
    unknown = set(entry) - _KEYS
    if unknown:
        raise AnalystsError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise AnalystsError(f"{where}: name must be 1-64 letters, digits, '_', '.' or '-'")
    where = f"{where} ({name})"
    return Analyst(name, _tenants(entry.get("tenants"), where), _password_digest(entry, where))


def _password_digest(entry: dict[str, object], where: str) -> bytes:
    password, hashed = entry.get("password"), entry.get("password_sha256")
    if (password is None) == (hashed is None):
        raise AnalystsError(f"{where}: give exactly one of password and password_sha256")
    if password is not None:
        if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
            raise AnalystsError(f"{where}: password must be a string of at least {MIN_PASSWORD_CHARS} characters")
        return digest(password)
    if not isinstance(hashed, str) or not SHA256_HEX.fullmatch(hashed.lower()):
        raise AnalystsError(f"{where}: password_sha256 must be 64 hex digits (sha256 of the password)")
    return bytes.fromhex(hashed)


def _tenants(value: object, where: str) -> frozenset[str] | None:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise AnalystsError(f'{where}: tenants must be a non-empty list of tenant ids, or ["*"] for every tenant')
    if ALL_TENANTS in value:
        if len(value) != 1:
            raise AnalystsError(f'{where}: "*" (every tenant) cannot be listed with other tenants')
        return None
    for tenant in value:
        if not TENANT_ID.fullmatch(tenant):
            raise AnalystsError(f"{where}: {tenant!r} is not a tenant id")
    return frozenset(value)


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class AnalystSource:
    """The accounts in force: read at start, read again when the file changes."""

    def __init__(self, path: str) -> None:
        self.path = Path(path) if path else None
        self.current: dict[str, Analyst] | None = load(self.path) if self.path is not None else None
        self._stamp = self._file_stamp()
        self._watch: asyncio.Task[None] | None = None

    def authenticate(self, user: str, password: str, peer: str | None) -> Analyst | None:
        """The account these credentials name, or None. Without a file: loopback clients as ``default``."""
        accounts = self.current
        if accounts is None:
            return LOOPBACK_DEFAULT if is_loopback(peer) and user in ("", DEFAULT_USER) else None
        analyst = accounts.get(user)
        given = digest(password)
        expected = analyst.password_sha256 if analyst is not None else bytes(len(given))
        # Compared also for an unknown name, so the reply time does not tell names apart.
        matches = hmac.compare_digest(given, expected)
        return analyst if analyst is not None and matches else None

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def reload(self) -> bool:
        """Read the file again; True when the new accounts are in force."""
        if self.path is None:
            return False
        self._stamp = self._file_stamp()
        try:
            fresh = load(self.path)
        except AnalystsError as exc:
            log.error(
                "analysts file refused; the accounts in force stay",
                error=str(exc),
                analysts=len(self.current or {}),
            )
            return False
        self.current = fresh
        log.info("analysts file loaded", analysts=len(fresh))
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

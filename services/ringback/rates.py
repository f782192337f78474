"""Rate cards: what each event costs, read from a TOML file (``rates_file``).

```toml
[[rates]]
tenant = "acme"                       # optional: omitted = every tenant
app_id = "1400123456"                 # optional: omitted = every app
event_type = "sms.delivery_report"    # which events this line prices
unit = "message"                      # message | minute | second | event
price = "0.045"                       # decimal string, per unit
currency = "CNY"
increment_s = 60                      # minute/second units only: started increments are billed
valid_from = "2026-01-01"             # optional; a later line for the same key takes over from that day
```

A file that does not validate is refused as a whole with a message naming the line and the problem;
while running, the rates in force stay as they were. The sink loads a valid card into the store
(:mod:`ringback.sink.rate_card`), where the ``ringback.rated_*`` views price events by query.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

#: The event types the normalizer writes (the lines of a card price these).
EVENT_TYPES = frozenset(
    {
        "sms.delivery_report",
        "sms.reply",
        "call.state",
        "call.cdr",
        "call.recording",
        "call.key_press",
        "voice.code_status",
        "voice.prompt_status",
        "voice.key_press",
        "voice.call_failure",
        "voice.code_cdr",
        "conference.cdr",
    }
)
MESSAGE, MINUTE, SECOND, EVENT = "message", "minute", "second", "event"
UNITS = (MESSAGE, MINUTE, SECOND, EVENT)
TIMED_UNITS = (MINUTE, SECOND)
#: The increment a timed line bills by when it names none: whole minutes, whole seconds.
DEFAULT_INCREMENT_S = {MINUTE: 60, SECOND: 1}
#: Longest increment a line may bill by (a day).
MAX_INCREMENT_S = 86_400
#: The store keeps prices as Decimal(18, 6).
PRICE_DECIMALS = 6
MAX_PRICE = Decimal("999999999999")
#: Lines without valid_from apply from the start of time.
EPOCH = dt.date(1970, 1, 1)
MAX_FILE_BYTES = 1_048_576
MAX_LINES = 10_000
MAX_NAME_CHARS = 128
CURRENCY = re.compile(r"[A-Z]{3}")
TOP_LEVEL_KEYS = frozenset({"rates"})
LINE_KEYS = frozenset({"tenant", "app_id", "event_type", "unit", "price", "currency", "increment_s", "valid_from"})


class RatesError(ValueError):
    """The rates file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class RateLine:
    line: int  # 1-based position in the file
    tenant: str  # "" = every tenant
    app_id: str  # "" = every app
    event_type: str
    unit: str
    price: Decimal
    currency: str
    increment_s: int  # 0 for message and event units
    valid_from: dt.date

    @property
    def key(self) -> tuple[str, str, str]:
        return self.tenant, self.app_id, self.event_type


@dataclass(frozen=True)
class RateCard:
    lines: tuple[RateLine, ...]
    sha256: str


def load(path: Path) -> RateCard:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RatesError(f"rates file {path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise RatesError(f"rates file {path}: larger than {MAX_FILE_BYTES} bytes")
    return parse(data, str(path))


def parse(data: bytes, name: str = "rates file") -> RateCard:
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RatesError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RatesError(f"{name}: not valid TOML ({exc})") from None
    unknown = sorted(set(document) - TOP_LEVEL_KEYS)
    if unknown:
        raise RatesError(f"{name}: unknown keys {', '.join(unknown)} (a card is a list of [[rates]])")
    entries = document.get("rates", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise RatesError(f"{name}: 'rates' must be a list of tables ([[rates]])")
    if len(entries) > MAX_LINES:
        raise RatesError(f"{name}: more than {MAX_LINES} lines")
    lines = tuple(_line(entry, index, name) for index, entry in enumerate(entries, start=1))
    _refuse_duplicates(lines, name)
    return RateCard(lines, hashlib.sha256(data).hexdigest())


def _line(entry: dict[str, Any], number: int, name: str) -> RateLine:
    where = f"{name}: rates line {number}"
    unknown = sorted(set(entry) - LINE_KEYS)
    if unknown:
        raise RatesError(f"{where}: unknown keys {', '.join(unknown)}")
    event_type = _text(entry, "event_type", where, required=True)
    if event_type not in EVENT_TYPES:
        raise RatesError(f"{where}: unknown event_type {event_type!r} (one of {', '.join(sorted(EVENT_TYPES))})")
    unit = _text(entry, "unit", where, required=True)
    if unit not in UNITS:
        raise RatesError(f"{where}: unknown unit {unit!r} (one of {', '.join(UNITS)})")
    currency = _text(entry, "currency", where, required=True)
    if not CURRENCY.fullmatch(currency):
        raise RatesError(f"{where}: currency {currency!r} is not a three-letter code such as CNY")
    return RateLine(
        line=number,
        tenant=_text(entry, "tenant", where),
        app_id=_text(entry, "app_id", where),
        event_type=event_type,
        unit=unit,
        price=_price(entry.get("price"), where),
        currency=currency,
        increment_s=_increment(entry, unit, where),
        valid_from=_valid_from(entry.get("valid_from"), where),
    )


def _text(entry: dict[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = entry.get(key)
    if value is None:
        if required:
            raise RatesError(f"{where}: {key} is missing")
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_CHARS:
        raise RatesError(f"{where}: {key} must be a non-empty string of at most {MAX_NAME_CHARS} characters")
    if value != value.strip() or any(ord(char) < ord(" ") for char in value):
        raise RatesError(f"{where}: {key} {value!r} has surrounding spaces or control characters")
    return value


def _price(value: Any, where: str) -> Decimal:
    if not isinstance(value, str):
        raise RatesError(f'{where}: price must be a decimal string such as "0.045" (got {value!r})')
    try:
        price = Decimal(value.strip())
    except InvalidOperation:
        raise RatesError(f"{where}: price {value!r} is not a decimal number") from None
    if not price.is_finite() or price < 0 or price > MAX_PRICE:
        raise RatesError(f"{where}: price {value!r} must be between 0 and {MAX_PRICE}")
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > PRICE_DECIMALS:
        raise RatesError(f"{where}: price {value!r} has more than {PRICE_DECIMALS} decimal places")
    return price


def _increment(entry: dict[str, Any], unit: str, where: str) -> int:
    value = entry.get("increment_s")
    if unit not in TIMED_UNITS:
        if value is not None:
            raise RatesError(f"{where}: increment_s applies to minute and second units only, not {unit!r}")
        return 0
    if value is None:
        return DEFAULT_INCREMENT_S[unit]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INCREMENT_S:
        raise RatesError(f"{where}: increment_s must be a whole number of seconds from 1 to {MAX_INCREMENT_S}")
    return value


def _valid_from(value: Any, where: str) -> dt.date:
    if value is None:
        return EPOCH
    if isinstance(value, dt.datetime):
        raise RatesError(f"{where}: valid_from is a day (YYYY-MM-DD), not a time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise RatesError(f"{where}: valid_from {value!r} is not a day (YYYY-MM-DD)")


def _refuse_duplicates(lines: tuple[RateLine, ...], name: str) -> None:
    seen: dict[tuple[str, str, str, dt.date], int] = {}
    for line in lines:
        key = (*line.key, line.valid_from)
        if key in seen:
            raise RatesError(
                f"{name}: rates lines {seen[key]} and {line.line} both price {line.event_type!r} for "
                f"tenant {line.tenant or '*'!r}, app {line.app_id or '*'!r} from {line.valid_from}: "
                "keep one, or give the later one another valid_from"
            )
        seen[key] = line.line

"""All of ringback's configuration, in one place.

Every setting has a default here, can be set in an optional TOML file, overridden by a
``RINGBACK_<NAME>`` environment variable, and finally by a command-line flag.
Precedence, lowest to highest: default < TOML file < environment < flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "RINGBACK_"
CONFIG_FILE_ENV = "RINGBACK_CONFIG"
#: The settings that bound analyst queries; none may be 0 (which would mean "no limit" to ClickHouse).
QUERY_LIMITS = (
    "query_timeout_s",
    "query_max_memory_bytes",
    "query_max_result_rows",
    "query_max_result_bytes",
    "query_max_threads",
)
#: What the normalizer keeps of an SMS reply's text (an end user's message) in ``message_text``.
SMS_REPLY_TEXT_STORE, SMS_REPLY_TEXT_MASK, SMS_REPLY_TEXT_DROP = "store", "mask", "drop"
SMS_REPLY_TEXT_POLICIES = (SMS_REPLY_TEXT_STORE, SMS_REPLY_TEXT_MASK, SMS_REPLY_TEXT_DROP)
#: The headers a trusted proxy may give the client's address in (``forwarded_header``).
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded")
DEFAULT_BILLING_TIMEZONE = "Asia/Shanghai"
#: An IANA zone name as it may stand inside a SQL string literal (no quote, backslash or space).
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}")

#: The repository's ``schemas/`` folder: the single source of truth for Avro and DDL.
_DEFAULT_SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"


def _setting(default: Any, help: str, *, flag: bool = True) -> Any:
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass(frozen=True)
class Settings:
    # --- where things live ---
    data_dir: str = _setting("./data", "Directory for the embedded ClickHouse store, spool and run files.")
    schemas_dir: str = _setting(str(_DEFAULT_SCHEMAS_DIR), "Directory holding the Avro schemas and ClickHouse DDL.")

    # --- HTTP edge ---
    host: str = _setting("127.0.0.1", "Address the edge listens on.")
    port: int = _setting(8080, "Port the edge listens on.")
    max_body_bytes: int = _setting(1_048_576, "Largest accepted callback body; larger bodies get HTTP 413.")
    publish_timeout_s: float = _setting(
        2.0, "Budget for the broker's acknowledgement; past it the callback goes to the spool."
    )
    body_read_timeout_s: float = _setting(
        10.0, "Longest the edge waits for a request body; slower clients get HTTP 408."
    )
    edge_max_in_flight: int = _setting(
        2048, "Requests handled at once by one edge process; beyond it the edge sheds with a retryable 5xx."
    )
    edge_max_in_flight_bytes: int = _setting(
        67_108_864,
        (
            "Body bytes one edge process holds at once, counted as they arrive (and as they are decompressed), never "
            "as Content-Length announces them; beyond it a retryable 5xx."
        ),
    )
    edge_in_flight_share_per_ip: float = _setting(
        0.25,
        (
            "Share (0-1] of edge_max_in_flight and edge_max_in_flight_bytes one client address may hold (its one "
            "request always fits); beyond it that address gets a retryable 5xx, the others are served."
        ),
    )
    edge_shed_ready_hold_s: float = _setting(
        5.0,
        "After the edge sheds load for lack of in-flight room, /readyz answers 503 until none was shed for this long.",
    )
    edge_max_connections: int = _setting(
        16_384,
        "Open connections one edge process accepts (kept below its descriptor limit); more are refused with 503.",
    )
    edge_max_connections_per_ip: int = _setting(
        1024, "Open connections one remote address may hold (0 = no bound); more are refused with 503."
    )
    tenants_file: str = _setting(
        "",
        (
            "TOML file of the tenants and their secrets (docs/tenants-security.md: Going to production: tenants); "
            "empty = the edge is open to anyone."
        ),
    )
    trusted_proxies: str = _setting(
        "",
        (
            "CIDRs (comma-separated) of load balancers whose forwarding header (forwarded_header) gives the "
            "client's address."
        ),
    )
    forwarded_header: str = _setting(
        "x-forwarded-for",
        (
            "The one header trusted proxies append the client's address to: x-forwarded-for or forwarded (RFC "
            "7239); the other is ignored."
        ),
    )
    anonymous_rate_limit_per_s: float = _setting(
        2000.0, "Requests per second one address may send on the tenant-less routes (0 = no limit)."
    )
    tenant_rate_limit_per_s: float = _setting(
        0.0, "Requests per second per tenant, unless its entry in the tenants file says otherwise (0 = no limit)."
    )
    rate_limit_burst_s: float = _setting(2.0, "Rate limits let bursts of this many seconds' worth of requests through.")
    edge_header_timeout_s: float = _setting(
        5.0, "A request head must arrive completely within this many seconds of its first byte."
    )
    edge_idle_timeout_s: float = _setting(
        30.0, "Close a connection that sends nothing for this long (since it opened or since the last reply)."
    )
    reuse_port: bool = _setting(
        False, "Let several edge processes listen on one port (SO_REUSEPORT); each takes a spool of its own."
    )
    spool_max_bytes: int = _setting(
        268_435_456, "Bound of the edge's local journal (0 disables it: no broker, no success; journal mode needs it)."
    )
    edge_journal: str = _setting(
        "auto",
        (
            "Journal every callback before replying and keep it until the sink stored it: on, off (journal only what "
            "the broker could not take), auto (on with the embedded broker)."
        ),
    )

    # --- Kafka ---
    kafka_bootstrap: str = _setting(
        "", "Bootstrap servers of an existing Kafka (HOST:PORT[,..]); empty starts the embedded broker."
    )
    kafka_port: int = _setting(0, "Loopback port of the embedded broker (0 picks a free port).")
    embedded_broker_max_mb: int = _setting(
        1024,
        (
            "Memory the embedded broker may hold before `ringback run` restarts it (it never frees any; the edge "
            "journal keeps what it held)."
        ),
    )
    embedded_broker_recycle_wait_s: float = _setting(
        300.0,
        (
            "Before recycling the embedded broker, how long `ringback run` waits for consumer groups on the "
            "normalized topic (billing jobs) to catch up; a group still behind then loses what the broker held."
        ),
    )
    kafka_partitions: int = _setting(4, "Partition count used when creating the topics.")
    kafka_replication: int = _setting(1, "Replication factor used when creating the topics.")
    kafka_create_topics: bool = _setting(True, "Create missing topics at start.")
    journal_republish_after_s: float = _setting(
        30.0,
        (
            "Journal mode: callbacks still unstored this long after later ones were stored are published again "
            "(something downstream lost them)."
        ),
    )
    topic_raw: str = _setting("ringback.raw.v1", "Topic for raw callbacks as received.")
    topic_normalized: str = _setting("ringback.normalized.v1", "Topic for normalized Avro events.")
    topic_dlq: str = _setting("ringback.dlq.v1", "Dead-letter topic for input that could not be normalized.")
    topic_ledger: str = _setting("ringback.ledger.v1", "Topic for the reconciliation ledger's count deltas.")
    topic_progress: str = _setting(
        "ringback.progress.v1",
        "Topic on which normalizers and sinks say how far they got (the edge's journal is trimmed by it).",
    )
    ledger_interval_s: float = _setting(5.0, "How often the edge publishes its ledger counts.")
    normalizer_group: str = _setting("ringback-normalizer", "Consumer group of the normalizer workers.")
    sink_group: str = _setting("ringback-sink", "Consumer group of the sink workers.")
    producer_linger_ms: int = _setting(2, "Producer linger: how long a batch may wait to fill.")
    gc_gen0_threshold: int = _setting(
        50_000,
        (
            "Allocations between the youngest garbage collections in the edge, normalizer and sink (Python's "
            "default: 700)."
        ),
    )

    # --- normalizer ---
    source_timezone: str = _setting("Asia/Shanghai", "Time zone of vendor local-time strings.")
    sms_reply_text: str = _setting(
        SMS_REPLY_TEXT_STORE,
        (
            "What an SMS reply's message_text holds of the end user's text: store (as sent), mask (one * per "
            "character) or drop (null)."
        ),
    )
    normalizer_max_records: int = _setting(2000, "Most raw messages a normalizer handles per poll.")
    dlq_guard_ratio: float = _setting(
        0.5,
        "Pause the normalizer when more than this share of recent requests were entirely dead-lettered (1 disables).",
    )
    dlq_guard_window: int = _setting(1000, "How many recent requests the dead-letter guard looks at.")
    dlq_guard_min_requests: int = _setting(200, "Requests needed in the window before the dead-letter guard can trip.")
    dlq_guard_min_distinct: int = _setting(
        20, "Different bodies the entirely dead-lettered requests must carry before the guard can trip."
    )
    dlq_guard_pause_s: float = _setting(
        300.0, "How long a tripped guard holds consuming paused before the held requests go through as they are."
    )

    # --- sink / ClickHouse ---
    clickhouse_dsn: str = _setting(
        "", "ClickHouse DSN (http://host:8123/ or chdb:///path); empty = embedded store under data_dir."
    )
    billing_timezone: str = _setting(
        DEFAULT_BILLING_TIMEZONE,
        (
            "IANA time zone of the analyst views' day and hour (hour_utc, day_utc: the same in UTC); "
            "a change takes effect at the sink's next start, which replaces the views."
        ),
    )
    clickhouse_cluster: str = _setting(
        "",
        (
            "ClickHouse cluster (remote_servers) to create the store on: replicated local tables, Distributed ones "
            "under the tables' names, views over them (empty = single server)."
        ),
    )
    sink_batch_rows: int = _setting(20_000, "Rows that make the sink flush a batch.")
    sink_batch_seconds: float = _setting(
        1.0,
        "Longest a row waits in the sink before its batch is flushed (each flush costs the store a part "
        "per table and their merges: 1.0 s spends about a sixth less sink CPU than 0.5 s).",
    )
    conflict_check_interval_s: float = _setting(
        30.0, "How often (at most) the sink looks for events whose copies disagree on billing values."
    )
    sink_query_port: int = _setting(
        0, "Loopback port of the sink's read-only query endpoint for `ringback sql` (0 = free port)."
    )
    sql_http_host: str = _setting(
        "127.0.0.1", "Address of the sink's ClickHouse HTTP interface for BI tools and notebooks (embedded store)."
    )
    sql_http_port: int = _setting(
        8123, "Port of the sink's ClickHouse HTTP interface (docs/analysts.md: BI tools and analyst accounts); 0 = off."
    )
    analysts_file: str = _setting(
        "",
        (
            "TOML file of the analyst accounts of the ClickHouse HTTP interface and their tenants; empty = loopback "
            "clients only, as `default`."
        ),
    )
    query_timeout_s: float = _setting(
        60.0, "Longest an analyst query (`ringback sql`) may run; the engine stops it with TIMEOUT_EXCEEDED."
    )
    query_max_memory_bytes: int = _setting(1_073_741_824, "Memory one analyst query may use in the engine.")
    query_max_result_rows: int = _setting(1_000_000, "Most rows an analyst query may return.")
    query_max_result_bytes: int = _setting(104_857_600, "Most bytes (uncompressed) an analyst query may return.")
    analyst_views_dir: str = _setting(
        "",
        (
            "A folder of .sql files, one query each, that the sink makes views analyst.<file name> of at start "
            "(checked like `ringback sql`); empty: none."
        ),
    )
    query_max_threads: int = _setting(
        1, "Engine threads one analyst query may use; the embedded store shares its cores with ingestion."
    )

    # --- billing: rate cards and revenue assurance ---
    rates_file: str = _setting(
        "",
        (
            "TOML rate card (docs/billing.md: Rates, revenue assurance and statement audit) the sink loads into the "
            "store and reloads when it changes; empty = the card stored last stays."
        ),
    )
    cdr_grace_minutes: float = _setting(
        30.0, "An answered call with no CDR or hang-up record this long after its answer is a missing CDR."
    )
    receipt_grace_hours: float = _setting(
        24.0, "An SMS whose last receipt is not final this long after it is a stuck message."
    )
    charge_tolerance: float = _setting(
        0.005, "A vendor charge further than this from the rated charge is a charge difference."
    )
    assurance_check_interval_s: float = _setting(
        60.0, "How often the sink counts the revenue-assurance views into its metrics."
    )

    # --- worker lifecycle ---
    retry_alarm_after_s: float = _setting(
        30.0,
        (
            "A normalizer or sink that keeps failing to reach the broker or ClickHouse this long raises the alarm "
            "(not ready, metric, log)."
        ),
    )
    drain_timeout_s: float = _setting(10.0, "On shutdown, keep consuming until caught up for at most this long.")
    metrics_port: int = _setting(0, "Port for /metrics and /healthz of the normalizer and sink roles (0 = free port).")

    # --- logs ---
    log_format: str = _setting("json", "Log output: json (one JSON object per line) or console.")
    log_level: str = _setting("info", "Log level: debug, info, warning, error.")

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def journal_enabled(self) -> bool:
        """Journal mode: every callback kept on the edge's disk until the sink stored it."""
        return self.edge_journal == "on" or (self.edge_journal == "auto" and self.embedded_kafka)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def run_dir(self) -> Path:
        """Where running roles publish how to reach them (query endpoint, broker address)."""
        return self.data_path / "run"

    @property
    def effective_clickhouse_dsn(self) -> str:
        return self.clickhouse_dsn or f"chdb://{self.data_path / 'clickhouse'}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.effective_clickhouse_dsn.startswith("chdb://")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def as_env(self) -> dict[str, str]:
        """The settings as ``RINGBACK_*`` variables, to hand to a child process."""
        return {env_name(f.name): _to_text(getattr(self, f.name)) for f in fields(self)}


def env_name(setting: str) -> str:
    return ENV_PREFIX + setting.upper()


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _coerce(name: str, kind: type, value: Any) -> Any:
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            number = float(text)
            if not math.isfinite(number):  # nan passes no bound check, inf overflows what it times
                raise ValueError(text)
            return number
    except ValueError as exc:
        raise ConfigError(f"setting {name!r}: cannot read {value!r} as {kind.__name__}") from exc
    return text


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


def _field_types() -> dict[str, type]:
    hints = {"str": str, "int": int, "float": float, "bool": bool}
    return {f.name: hints[f.type] if isinstance(f.type, str) else f.type for f in fields(Settings)}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per setting; unset flags stay ``None`` so lower layers show through."""
    group = parser.add_argument_group("configuration (flag > RINGBACK_* env > TOML file > default)")
    group.add_argument(
        "--config", dest="config_file", default=None, help=f"TOML file with settings (or ${CONFIG_FILE_ENV})."
    )
    for f in fields(Settings):
        if not f.metadata.get("flag", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        group.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=f.metadata["help"])


def load(
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    flags = dict(flags or {})
    types = _field_types()
    values: dict[str, Any] = {}

    file_path = config_file or flags.pop("config_file", None) or environ.get(CONFIG_FILE_ENV)
    flags.pop("config_file", None)
    if file_path:
        values.update(_read_toml(Path(file_path), types))

    for name in types:
        if env_name(name) in environ:
            values[name] = environ[env_name(name)]
    for name, value in flags.items():
        if name in types and value is not None:
            values[name] = value

    settings = Settings(**{name: _coerce(name, types[name], value) for name, value in values.items()})
    _validate(settings)
    return settings


def _read_toml(path: Path, types: dict[str, type]) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    table = data.get("ringback", data)
    unknown = sorted(set(table) - set(types))
    if unknown:
        raise ConfigError(f"config file {path}: unknown settings {', '.join(unknown)}")
    return dict(table)


def checked_zone(name: str) -> str:
    """``name`` if it is an IANA time zone name, safe to quote into SQL; :class:`ConfigError` otherwise."""
    if not _ZONE_NAME.fullmatch(name):
        raise ConfigError(f"{name!r} is not an IANA time zone name (e.g. Asia/Shanghai, UTC)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name!r} is not a known IANA time zone") from None
    return name


def _validate(settings: Settings) -> None:
    checked_zone(settings.billing_timezone)
    if settings.journal_republish_after_s <= 0:
        raise ConfigError("journal_republish_after_s must be positive")
    if settings.conflict_check_interval_s <= 0:
        raise ConfigError("conflict_check_interval_s must be positive")
    if settings.retry_alarm_after_s <= 0:
        raise ConfigError("retry_alarm_after_s must be positive")
    if settings.embedded_broker_max_mb <= 0:
        raise ConfigError("embedded_broker_max_mb must be positive")
    if settings.embedded_broker_recycle_wait_s < 0:
        raise ConfigError("embedded_broker_recycle_wait_s must not be negative")
    if settings.edge_journal not in ("auto", "on", "off"):
        raise ConfigError("edge_journal must be 'auto', 'on' or 'off'")
    if settings.edge_journal == "on" and settings.spool_max_bytes <= 0:
        raise ConfigError("edge_journal = on needs spool_max_bytes > 0 (the journal's bound)")
    if settings.sms_reply_text not in SMS_REPLY_TEXT_POLICIES:
        raise ConfigError(f"sms_reply_text must be one of {', '.join(SMS_REPLY_TEXT_POLICIES)}")
    if settings.log_format not in ("json", "console"):
        raise ConfigError("log_format must be 'json' or 'console'")
    if settings.max_body_bytes <= 0:
        raise ConfigError("max_body_bytes must be positive")
    if settings.kafka_partitions <= 0:
        raise ConfigError("kafka_partitions must be positive")
    if settings.sink_batch_rows <= 0 or settings.sink_batch_seconds <= 0:
        raise ConfigError("sink_batch_rows and sink_batch_seconds must be positive")
    for name in (
        "edge_max_in_flight",
        "edge_max_in_flight_bytes",
        "edge_max_connections",
        "edge_header_timeout_s",
        "edge_idle_timeout_s",
    ):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name} must be positive")
    for name in ("anonymous_rate_limit_per_s", "tenant_rate_limit_per_s"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name} must be 0 (no limit) or positive")
    if settings.rate_limit_burst_s <= 0:
        raise ConfigError("rate_limit_burst_s must be positive")
    trusted_proxy_networks(settings)
    if not 0 < settings.edge_in_flight_share_per_ip <= 1:
        raise ConfigError("edge_in_flight_share_per_ip must be above 0 and at most 1")
    if settings.edge_shed_ready_hold_s <= 0:
        raise ConfigError("edge_shed_ready_hold_s must be positive")
    if settings.forwarded_header.lower() not in FORWARDING_HEADERS:
        raise ConfigError(f"forwarded_header must be one of {', '.join(FORWARDING_HEADERS)}")
    if settings.edge_max_connections_per_ip < 0:
        raise ConfigError("edge_max_connections_per_ip must be 0 (no bound) or positive")
    if settings.gc_gen0_threshold <= 0:
        raise ConfigError("gc_gen0_threshold must be positive (0 would turn automatic garbage collection off)")
    if settings.assurance_check_interval_s <= 0:
        raise ConfigError("assurance_check_interval_s must be positive")
    for name in ("cdr_grace_minutes", "receipt_grace_hours", "charge_tolerance"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name} must be 0 or positive")
    for name in QUERY_LIMITS:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name} must be positive (analyst queries are always bounded)")


def trusted_proxy_networks(settings: Settings) -> tuple[Any, ...]:
    """The trusted proxies as networks (ipaddress), or a ConfigError naming the one that is not."""
    import ipaddress

    networks = []
    for part in (p.strip() for p in settings.trusted_proxies.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ConfigError(f"trusted_proxies: {part!r} is not a CIDR network ({exc})") from None
    return tuple(networks)


def describe() -> list[tuple[str, str, str, str]]:
    """(flag, environment variable, default, help) for every setting, for docs and `ringback config`."""
    rows = []
    for f in fields(Settings):
        default = f.default
        if f.name == "schemas_dir":
            default = "<repository>/schemas"
        rows.append(("--" + f.name.replace("_", "-"), env_name(f.name), _to_text(default), f.metadata["help"]))
    return rows

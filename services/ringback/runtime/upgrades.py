"""Upgrades of a ClickHouse store that the DDL alone cannot do (``apply_ddl`` runs them around it).

Each is a table in the way of the layout the DDL creates, moved the same way: before the DDL, the
views reading it are dropped and it is renamed out of the way; the DDL creates the new layout (and the
views again); after it, its rows are copied into the new table — the materialized views fill
``ringback.ingests`` and ``ringback.event_variants`` from the copy — and it is kept under a backup name
(drop it when satisfied). A crash in the middle of the copy copies again at the next start; copies of
one event collapse.

- The first layout kept events in a table named ``ringback.events``; that name is now a view, exact at
  any merge state, over ``ringback.event_copies`` (backup: ``ringback.events_v1_backup``).
- ``ringback.event_copies`` was partitioned by month of ``occurred_at``; it is partitioned by day, so
  ``FINAL`` over a day's query merges that day's rows only (backup: ``ringback.event_copies_monthly_backup``).

One more upgrade is done in place, once (recorded in ``ringback.store_upgrades``): copies of an event
stored before every copy took its first copy's ``occurred_at`` (``ringback.sink.placement``) may sit
in other partitions or sort positions when a resend moved the vendor's time. Those copies are stored
again with the ``occurred_at`` of the event's earliest-received copy (their own kept in
``reported_occurred_at``), the split ones deleted, and ``ringback.event_keys_v2`` filled from the store.
The first table of those stored times, ``ringback.event_keys`` (sorted by the event id itself), is
copied into ``event_keys_v2`` (sorted by a hash of it, cheaper to look up) and dropped
(:func:`move_event_keys`; on a cluster too).

These upgrades are a single server's, but for the move of the stored times (two narrow columns, no
rename). ``apply_ddl`` does not run the others on a cluster: there, an old layout is refused before
anything runs (``cluster_ddl.refuse_single_server_tables``), because the copy would pull every event
through the one node the sink talks to, and renaming tables on every node while other sinks may be
starting is a step for an operator (docs/scaling.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from ringback import logs
from ringback.runtime import cluster_ddl

DATABASE = "ringback"
NEW_EVENTS = "event_copies"
#: The partition key event_copies had before it was by day.
MONTHLY_PARTITION_PREFIX = "toYYYYMM("

log = logs.get(__name__)


def _described(client: Client, table: str, column: str) -> str | None:
    """One column of the table's row in system.tables (``engine``, ``partition_key``); None: no such table."""
    rows = client.query(
        f"SELECT {column} FROM system.tables WHERE database = {{db:String}} AND name = {{name:String}}",
        parameters={"db": DATABASE, "name": table},
    ).result_rows
    return str(rows[0][0]) if rows else None


def _engine(client: Client, table: str) -> str | None:
    return _described(client, table, "engine")


def _columns(client: Client, table: str) -> list[str]:
    query = (
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = {name:String} AND default_kind != "
        "'MATERIALIZED' ORDER BY position"
    )
    return [str(row[0]) for row in client.query(query, parameters={"db": DATABASE, "name": table}).result_rows]


@dataclass(frozen=True)
class Move:
    """A table in the way of the DDL's layout, moved aside and copied into ``ringback.event_copies``."""

    table: str
    being_copied: str
    backup: str
    #: Views that read the table and must go before it is renamed (the DDL recreates what is still needed).
    views: tuple[str, ...]
    in_the_way: Callable[[Client, str], bool]
    what: str


def _a_merge_tree(client: Client, table: str) -> bool:
    engine = _engine(client, table)
    return engine is not None and engine.endswith("MergeTree")  # else a new store, or `events` is the view


def _partitioned_by_month(client: Client, table: str) -> bool:
    return _a_merge_tree(client, table) and (_described(client, table, "partition_key") or "").startswith(
        MONTHLY_PARTITION_PREFIX
    )


MOVES = (
    Move(
        table="events",
        being_copied="events_before_upgrade",
        backup="events_v1_backup",
        views=("events_dedup", "ingests_from_events", "ingests_from_events_v2"),
        in_the_way=_a_merge_tree,
        what="the events table to the partitioned layout",
    ),
    Move(
        table=NEW_EVENTS,
        being_copied="event_copies_before_daily",
        backup="event_copies_monthly_backup",
        views=(
            "ingests_from_event_copies",
            "event_variants_from_copies",
            "event_variants_from_copies_v2",
            "event_keys_from_copies",
            "event_keys_v2_from_copies",
        ),
        in_the_way=_partitioned_by_month,
        what="event copies partitioned by month to partitions by day",
    ),
)


def before_ddl(client: Client) -> None:
    """Move the tables in the way of the layout the DDL creates out of the way."""
    for move in MOVES:
        if not move.in_the_way(client, move.table):
            continue
        log.warning(
            "upgrading the store", step=move.what, old=f"{DATABASE}.{move.table}", new=f"{DATABASE}.{NEW_EVENTS}"
        )
        for view in move.views:
            client.command(f"DROP VIEW IF EXISTS {DATABASE}.{view}")
        client.command(f"RENAME TABLE {DATABASE}.{move.table} TO {DATABASE}.{move.being_copied}")


def after_ddl(client: Client) -> None:
    """Copy the moved tables' rows into the new layout, then keep each as a backup; then the upgrades
    done in place."""
    _copy_moved(client)
    move_event_keys(client)
    share_first_occurred_at(client)


def _copy_moved(client: Client) -> None:
    for move in MOVES:
        if _engine(client, move.being_copied) is None:
            continue
        wanted = set(_columns(client, NEW_EVENTS))
        shared = [name for name in _columns(client, move.being_copied) if name in wanted]
        names = ", ".join(f"`{name}`" for name in shared)
        client.command(
            f"INSERT INTO {DATABASE}.{NEW_EVENTS} ({names}) SELECT {names} FROM {DATABASE}.{move.being_copied}"
        )
        client.command(f"RENAME TABLE {DATABASE}.{move.being_copied} TO {DATABASE}.{move.backup}")
        log.warning(
            "events copied to the new layout; the old table is kept",
            backup=f"{DATABASE}.{move.backup}",
            action="DROP TABLE it when satisfied",
        )


#: Upgrades done in place, by name, so each runs once (a store created by this version records them at once).
STEPS_TABLE = f"{DATABASE}.store_upgrades"
SHARED_OCCURRED_AT = "copies_share_first_occurred_at"
#: Scratch table of the split events and the occurred_at their copies get (dropped when done).
SPLIT_EVENTS = f"{DATABASE}.split_events_upgrade"
KEYS_TABLE = f"{DATABASE}.event_keys_v2"
#: A vendor time as a number that is equal for two NULLs.
_SAME_TIME = "ifNull(toUnixTimestamp64Micro({column}), -1)"


#: The first table of stored times, sorted by the event id itself, and the view that filled it.
OLD_KEYS_TABLE = "event_keys"
OLD_KEYS_VIEW = "event_keys_from_copies"


def move_event_keys(client: Client, cluster: str = "") -> None:
    """Copy the first ``ringback.event_keys`` into ``ringback.event_keys_v2``, then drop it and its view.

    Runs after the DDL, on one server and on a cluster (through the distributed tables: two narrow
    columns). The DDL created the new table's view first, so both views fill while the rows are copied:
    nothing inserted meanwhile is missing from the new table when the old one goes. A crash before the
    drop copies again at the next start (equal rows collapse). A sink of an earlier version still
    running looks its keys up in the old table: once it is gone, its lookups fail and it retries them as
    an outage, storing nothing misplaced, until it is upgraded too."""
    if _engine(client, OLD_KEYS_TABLE) is None:
        return
    log.warning("upgrading the store", step="stored times moved to the table sorted by id hash", new=KEYS_TABLE)
    old = f"{DATABASE}.{OLD_KEYS_TABLE}"
    client.command(f"INSERT INTO {KEYS_TABLE} (event_id, occurred_at) SELECT event_id, occurred_at FROM {old}")
    drops = [
        f"DROP VIEW IF EXISTS {DATABASE}.{OLD_KEYS_VIEW} {cluster_ddl.PLACEHOLDER}",
        f"DROP TABLE IF EXISTS {DATABASE}.{OLD_KEYS_TABLE} {cluster_ddl.PLACEHOLDER}",
    ]
    if cluster:
        drops = cluster_ddl.cluster_statements(drops, cluster)
    for statement in drops:
        client.command(statement.replace(cluster_ddl.PLACEHOLDER, "").strip())


def _done(client: Client, step: str) -> bool:
    client.command(
        f"CREATE TABLE IF NOT EXISTS {STEPS_TABLE} (step String, done_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY step"
    )
    rows = client.query(f"SELECT count() FROM {STEPS_TABLE} WHERE step = {{step:String}}", parameters={"step": step})
    return int(rows.result_rows[0][0]) > 0


def share_first_occurred_at(client: Client) -> None:
    """Store every copy of an event with the occurred_at of its earliest-received copy (once per store)."""
    if _done(client, SHARED_OCCURRED_AT):
        return
    copies = f"{DATABASE}.{NEW_EVENTS}"
    if int(client.query(f"SELECT count() FROM {copies}").result_rows[0][0]):
        client.command(
            f"CREATE TABLE IF NOT EXISTS {SPLIT_EVENTS} (event_id String, occurred_at Nullable(DateTime64(6, 'UTC'))) "
            "ENGINE = MergeTree ORDER BY event_id"
        )
        client.command(f"TRUNCATE TABLE {SPLIT_EVENTS}")
        own = _SAME_TIME.format(column="occurred_at")
        client.command(
            f"INSERT INTO {SPLIT_EVENTS} SELECT event_id, argMin(tuple(occurred_at), received_at).1 FROM {copies} "
            f"GROUP BY event_id HAVING uniqExact({own}) > 1"
        )
        split = int(client.query(f"SELECT count() FROM {SPLIT_EVENTS}").result_rows[0][0])
        if split:
            log.warning("upgrading the store", step="copies of an event moved to its first copy's time", events=split)
            _store_split_copies_again(client, copies)
        client.command(f"INSERT INTO {KEYS_TABLE} SELECT DISTINCT event_id, occurred_at FROM {copies}")
        client.command(f"DROP TABLE IF EXISTS {SPLIT_EVENTS}")
    client.insert(STEPS_TABLE, [[SHARED_OCCURRED_AT]], column_names=["step"])


def _store_split_copies_again(client: Client, copies: str) -> None:
    """Insert the split events' copies again with their event's time, then delete the ones left apart.
    Both steps can run again after a crash: the copies inserted again already have the event's time."""
    names = [name for name in _columns(client, NEW_EVENTS) if name not in ("occurred_at", "reported_occurred_at")]
    listed = ", ".join(f"`{name}`" for name in names)
    taken = ", ".join(f"c.`{name}`" for name in names)
    apart = f"{_SAME_TIME.format(column='c.occurred_at')} != {_SAME_TIME.format(column='s.occurred_at')}"
    client.command(
        f"INSERT INTO {copies} ({listed}, occurred_at, reported_occurred_at) "
        f"SELECT {taken}, s.occurred_at, c.reported_occurred_at FROM {copies} AS c "
        f"INNER JOIN {SPLIT_EVENTS} AS s ON c.event_id = s.event_id WHERE {apart}"
    )
    own = _SAME_TIME.format(column="occurred_at")
    client.command(
        f"ALTER TABLE {copies} DELETE WHERE event_id IN (SELECT event_id FROM {SPLIT_EVENTS}) "
        f"AND (event_id, {own}) NOT IN (SELECT event_id, {own} FROM {SPLIT_EVENTS})",
        settings={"mutations_sync": 2},
    )

"""Upgrades of a ClickHouse store that the DDL alone cannot do (``apply_ddl`` runs them around it).

The first layout kept events in a table named ``ringback.events``; that name is now a view, exact at
any merge state, over ``ringback.event_copies``, which is partitioned and keeps the first arrival. An
old store is upgraded in place: the old table is renamed out of the way (and the views reading it
dropped) before the DDL creates the new layout, then its rows are copied into the new table (the
materialized views fill ``ringback.ingests`` and ``ringback.event_variants`` from the copy). The old
table is kept as ``ringback.events_v1_backup`` once copied: drop it when satisfied. A crash in the
middle of the copy copies again at the next start; copies of one event collapse.

These upgrades are a single server's. ``apply_ddl`` does not run them on a cluster: there, an old
layout is refused before anything runs (``cluster_ddl.refuse_single_server_tables``), because the copy
would pull every event through the one node the sink talks to, and renaming tables on every node while
other sinks may be starting is a step for an operator (README: Outgrowing one machine).
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from ringback import logs

DATABASE = "ringback"
OLD_EVENTS = "events"
BEING_COPIED = "events_before_upgrade"
BACKUP = "events_v1_backup"
NEW_EVENTS = "event_copies"
#: Views that read the old table and must go before it is renamed (the DDL recreates what is still needed).
VIEWS_ON_OLD_EVENTS = ("events_dedup", "ingests_from_events", "ingests_from_events_v2")

log = logs.get(__name__)


def _engine(client: Client, table: str) -> str | None:
    rows = client.query(
        "SELECT engine FROM system.tables WHERE database = {db:String} AND name = {name:String}",
        parameters={"db": DATABASE, "name": table},
    ).result_rows
    return str(rows[0][0]) if rows else None


def _columns(client: Client, table: str) -> list[str]:
    query = (
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = {name:String} AND default_kind != "
        "'MATERIALIZED' ORDER BY position"
    )
    return [str(row[0]) for row in client.query(query, parameters={"db": DATABASE, "name": table}).result_rows]


def before_ddl(client: Client) -> None:
    """Move the first layout's events table out of the way of the view that takes its name."""
    engine = _engine(client, OLD_EVENTS)
    if engine is None or not engine.endswith("MergeTree"):
        return  # a new store, or already upgraded (then `events` is the view)
    log.warning(
        "upgrading the events table to the partitioned layout",
        old=f"{DATABASE}.{OLD_EVENTS}",
        new=f"{DATABASE}.{NEW_EVENTS}",
    )
    for view in VIEWS_ON_OLD_EVENTS:
        client.command(f"DROP VIEW IF EXISTS {DATABASE}.{view}")
    client.command(f"RENAME TABLE {DATABASE}.{OLD_EVENTS} TO {DATABASE}.{BEING_COPIED}")


def after_ddl(client: Client) -> None:
    """Copy the old table's rows into the new layout, then keep it as a backup."""
    if _engine(client, BEING_COPIED) is None:
        return
    shared = [name for name in _columns(client, BEING_COPIED) if name in set(_columns(client, NEW_EVENTS))]
    names = ", ".join(f"`{name}`" for name in shared)
    client.command(f"INSERT INTO {DATABASE}.{NEW_EVENTS} ({names}) SELECT {names} FROM {DATABASE}.{BEING_COPIED}")
    client.command(f"RENAME TABLE {DATABASE}.{BEING_COPIED} TO {DATABASE}.{BACKUP}")
    log.warning(
        "events copied to the new layout; the old table is kept",
        backup=f"{DATABASE}.{BACKUP}",
        action="DROP TABLE it when satisfied",
    )

"""The DDL of a ClickHouse cluster, made from the single-server DDL in ``schemas/clickhouse/``.

On one server, ``ringback.event_copies`` is a ``ReplacingMergeTree`` and the ``ringback.events`` view
reads it with ``FINAL``: a resent report collapses into one row because both copies live in one table.
On a cluster each node holds only part of the data, so the single-server DDL is turned into:

- for every table of the MergeTree family, a **local table** ``<name>_local`` on every node, its engine
  made replicated (``ReplacingMergeTree`` → ``ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/
  <database>/<name>_local', '{replica}')``, the engine's own arguments kept after those two) and
  ``non_replicated_deduplication_window`` made ``replicated_deduplication_window`` (a retried insert with
  the same ``insert_deduplication_token`` stays a no-op);
- under the table's own name, a ``Distributed`` table over those local tables, sharded by
  ``cityHash64(event_id)`` where ``event_id`` is part of its sorting key, else by the hash of the key:
  every copy of an event — and every row that a ReplacingMergeTree would collapse with another — lands
  on the same shard, where it collapses, so ``FINAL`` and the views stay exact across the cluster;
- materialized views that read the **local** tables (a view fires on the node that stores the insert)
  and write to the target's distributed table, so their rows are sharded like any other;
- plain views (``CREATE VIEW``, ``CREATE OR REPLACE VIEW``) unchanged, over the distributed tables: the
  names analysts use (``ringback.events``, ``ringback.calls``, ...) span the cluster, and ``FINAL`` on a
  distributed table runs on every shard;
- ``ALTER TABLE`` of a table applied to the local tables, and its column changes to the distributed
  table too; ``DROP TABLE`` of a table drops both.

Every statement runs ``ON CLUSTER``, where the single-server DDL writes ``{on_cluster}``; a statement
without that placeholder, or one that this module does not know how to spread over a cluster, is an
error rather than a statement applied to one node only. Table names are expected qualified with their
database (``ringback.event_copies``), as the DDL writes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = "{on_cluster}"
LOCAL_SUFFIX = "_local"
#: The ZooKeeper (Keeper) path of a replicated table; {shard} and {replica} are the server's macros.
REPLICA_PATH = "/clickhouse/tables/{{shard}}/{database}/{table}"
REPLICA_NAME = "{replica}"
#: The column that identifies an event: tables whose sorting key holds it are sharded by it alone.
EVENT_ID = "event_id"
#: Settings of a single server that have a replicated counterpart.
REPLICATED_SETTINGS = {"non_replicated_deduplication_window": "replicated_deduplication_window"}
#: ALTER commands that change columns: a distributed table takes them too (it has the same columns).
COLUMN_COMMANDS = ("ADD COLUMN", "DROP COLUMN", "MODIFY COLUMN", "RENAME COLUMN", "COMMENT COLUMN")
#: Statements every node runs as written (ON CLUSTER): plain views read the distributed tables, so the
#: names analysts query span the cluster.
_AS_WRITTEN = ("CREATE DATABASE", "CREATE VIEW", "CREATE OR REPLACE VIEW", "DROP VIEW")
#: Clauses of CREATE TABLE that end an ORDER BY expression.
_CLAUSES_AFTER_ORDER_BY = ("PARTITION", "PRIMARY", "SAMPLE", "TTL", "SETTINGS", "COMMENT")


class ClusterDDLError(ValueError):
    """A statement of the single-server DDL that cannot be turned into cluster DDL as it is."""

    def __init__(self, statement: str, reason: str) -> None:
        first_line = statement.strip().splitlines()[0] if statement.strip() else ""
        super().__init__(f"cluster DDL: {reason}: {first_line}")


# --- tokens -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # word, quoted (a `name` or "name"), string ('text'), number, placeholder ({...}), punct
    text: str
    start: int
    end: int

    @property
    def word(self) -> str:
        """A keyword or name as written, upper-cased for keywords' sake ('' for anything else)."""
        return self.text.upper() if self.kind == "word" else ""

    @property
    def name(self) -> str:
        """The name this token stands for, unquoted ('' when it is no name)."""
        if self.kind == "word":
            return self.text
        if self.kind == "quoted":
            return self.text[1:-1]
        return ""


_TOKEN = re.compile(
    r"""(?P<space>\s+|--[^\n]*|/\*.*?\*/)
      | (?P<string>'(?:[^'\\]|\\.|'')*')
      | (?P<quoted>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
      | (?P<placeholder>\{[a-z_]+\})
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<number>\d[\w.]*)
      | (?P<punct>.)""",
    re.VERBOSE | re.DOTALL,
)


def tokens(sql: str) -> list[Token]:
    found = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "punct"
        if kind != "space":
            found.append(Token(kind, match.group(), match.start(), match.end()))
    return found


def _depths(toks: list[Token]) -> list[int]:
    """Each token's parenthesis depth (a closing parenthesis has the depth of what it closes)."""
    depth, result = 0, []
    for tok in toks:
        if tok.text == ")":
            depth -= 1
        result.append(depth)
        if tok.text == "(":
            depth += 1
    return result


def _words(toks: list[Token], start: int, count: int) -> str:
    return " ".join(t.word for t in toks[start : start + count])


def _qualified_name(toks: list[Token], at: int) -> tuple[str, str, int]:
    """(database, table, index after the name) of the name starting at toks[at]; database '' if none."""
    if at + 2 < len(toks) and toks[at].name and toks[at + 1].text == "." and toks[at + 2].name:
        return toks[at].name, toks[at + 2].name, at + 3
    if at < len(toks) and toks[at].name:
        return "", toks[at].name, at + 1
    raise IndexError(at)


def _starts_with(toks: list[Token], words: str) -> bool:
    return _words(toks, 0, len(words.split())) == words


def _after_if_exists(toks: list[Token], at: int, words: str) -> int:
    """Skip 'IF NOT EXISTS' / 'IF EXISTS' at toks[at] when present."""
    count = len(words.split())
    return at + count if _words(toks, at, count) == words else at


# --- the statements -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table of the MergeTree family in the single-server DDL."""

    database: str
    name: str
    shard_by: str

    @property
    def local(self) -> str:
        return self.name + LOCAL_SUFFIX


class Replacements:
    """Text replacements at token positions of one statement, applied all at once."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.edits: list[tuple[int, int, str]] = []

    def replace(self, start: int, end: int, text: str) -> None:
        self.edits.append((start, end, text))

    def text(self) -> str:
        out, last = [], 0
        for start, end, text in sorted(self.edits):
            out.append(self.sql[last:start])
            out.append(text)
            last = end
        out.append(self.sql[last:])
        return "".join(out)


def _on_cluster(statement: str, cluster: str) -> str:
    if statement.count(PLACEHOLDER) != 1:
        raise ClusterDDLError(statement, f"needs exactly one {PLACEHOLDER} to run on every node")
    return statement.replace(PLACEHOLDER, f"ON CLUSTER {cluster}")


def _rename(
    statement: str, edits: Replacements, toks: list[Token], tables: dict[tuple[str, str], Table], start: int
) -> None:
    """Point every qualified name of a sharded table from toks[start] on at its local table."""
    i = start
    while i < len(toks):
        try:
            database, name, after = _qualified_name(toks, i)
        except IndexError:
            i += 1
            continue
        table = tables.get((database, name)) if database else None
        if table is not None:
            edits.replace(toks[i].start, toks[after - 1].end, f"{database}.{table.local}")
            i = after
        else:
            i += 1


class ClusterDDL:
    """Turns the single-server statements, in order, into the statements of a cluster named ``cluster``."""

    def __init__(self, statements: list[str], cluster: str) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cluster):
            raise ValueError(f"cluster DDL: the cluster name {cluster!r} must be a plain identifier")
        self.statements = statements
        self.cluster = cluster
        self.tables = {(t.database, t.name): t for t in (self._table_of(s) for s in statements) if t is not None}

    def generate(self) -> list[str]:
        return [out for statement in self.statements for out in self._transform(statement)]

    # --- what the single-server DDL defines ---

    def _table_of(self, statement: str) -> Table | None:
        toks = tokens(statement)
        if _words(toks, 0, 2) != "CREATE TABLE":
            return None
        database, name, _ = _qualified_name(toks, _after_if_exists(toks, 2, "IF NOT EXISTS"))
        engine = self._engine(statement, toks)
        if engine is None or not toks[engine].text.endswith("MergeTree"):
            return None
        if not database:
            raise ClusterDDLError(statement, "name the table with its database")
        if toks[engine].text.startswith("Replicated"):
            raise ClusterDDLError(statement, "the single-server DDL must not be replicated already")
        return Table(database, name, self._shard_by(statement, toks, engine))

    @staticmethod
    def _engine(statement: str, toks: list[Token]) -> int | None:
        """Index of the engine's name token (after ENGINE =) at the top level, if any."""
        depths = _depths(toks)
        for i, tok in enumerate(toks[:-2]):
            if depths[i] == 0 and tok.word == "ENGINE" and toks[i + 1].text == "=":
                return i + 2
        return None

    @staticmethod
    def _shard_by(statement: str, toks: list[Token], engine: int) -> str:
        """cityHash64(event_id) when event_id is part of the sorting key, else the hash of the whole key:
        rows that the engine collapses (or aggregates) share their key, so they share a shard."""
        depths = _depths(toks)
        for i in range(engine, len(toks) - 1):
            if depths[i] == 0 and _words(toks, i, 2) == "ORDER BY":
                end = next(
                    (j for j in range(i + 2, len(toks)) if depths[j] == 0 and toks[j].word in _CLAUSES_AFTER_ORDER_BY),
                    len(toks),
                )
                first = i + 2
                closing = next((j for j in range(first + 1, end) if depths[j] == 0 and toks[j].text == ")"), None)
                if toks[first].text == "(" and closing == end - 1:  # (a, b): the tuple's elements
                    first, end = first + 1, end - 1
                key = statement[toks[first].start : toks[end - 1].end].strip() if first < end else ""
                if key in ("", "tuple()"):
                    break
                level = depths[first] if first < end else 0
                elements = [t.name for j, t in enumerate(toks[first:end], start=first) if depths[j] == level]
                return f"cityHash64({EVENT_ID})" if EVENT_ID in elements else f"cityHash64({key})"
        raise ClusterDDLError(statement, "a table needs a sorting key to be sharded by")

    # --- each statement ---

    def _transform(self, statement: str) -> list[str]:
        toks = tokens(statement)
        if any(_starts_with(toks, head) for head in _AS_WRITTEN):
            return [_on_cluster(statement, self.cluster)]
        if _starts_with(toks, "CREATE TABLE"):
            return self._create_table(statement, toks)
        if _starts_with(toks, "CREATE MATERIALIZED VIEW"):
            return [self._materialized_view(statement, toks)]
        if _starts_with(toks, "ALTER TABLE"):
            return self._alter(statement, toks)
        if _starts_with(toks, "DROP TABLE"):
            return self._drop_table(statement, toks)
        raise ClusterDDLError(statement, "no cluster form is known for this statement")

    def _create_table(self, statement: str, toks: list[Token]) -> list[str]:
        at = _after_if_exists(toks, 2, "IF NOT EXISTS")
        database, name, after = _qualified_name(toks, at)
        table = self.tables.get((database, name))
        if table is None:
            raise ClusterDDLError(statement, "only tables of the MergeTree family can be spread over a cluster")
        edits = Replacements(statement)
        edits.replace(toks[at].start, toks[after - 1].end, f"{database}.{table.local}")
        engine = self._engine(statement, toks)
        assert engine is not None
        path = REPLICA_PATH.format(database=database, table=table.local)
        replicated = f"Replicated{toks[engine].text}('{path}', '{REPLICA_NAME}'"
        if engine + 1 < len(toks) and toks[engine + 1].text == "(":
            has_arguments = toks[engine + 2].text != ")"
            edits.replace(toks[engine].start, toks[engine + 1].end, replicated + (", " if has_arguments else ""))
        else:
            edits.replace(toks[engine].start, toks[engine].end, replicated + ")")
        self._replicated_settings(toks, edits, engine)
        local = _on_cluster(edits.text(), self.cluster)
        if_not_exists = "IF NOT EXISTS " if at > 2 else ""
        distributed = (
            f"CREATE TABLE {if_not_exists}{database}.{name} ON CLUSTER {self.cluster} AS {database}.{table.local}\n"
            f"ENGINE = Distributed('{self.cluster}', '{database}', '{table.local}', {table.shard_by})"
        )
        return [local, distributed]

    @staticmethod
    def _replicated_settings(toks: list[Token], edits: Replacements, start: int) -> None:
        for tok in toks[start:]:
            if tok.kind == "word" and tok.text in REPLICATED_SETTINGS:
                edits.replace(tok.start, tok.end, REPLICATED_SETTINGS[tok.text])

    def _materialized_view(self, statement: str, toks: list[Token]) -> str:
        depths = _depths(toks)
        to = next((i for i, t in enumerate(toks) if depths[i] == 0 and t.word == "TO"), None)
        select = next(
            (i for i, t in enumerate(toks) if depths[i] == 0 and t.word == "AS" and to is not None and i > to), None
        )
        if to is None or select is None:
            raise ClusterDDLError(
                statement, "a materialized view needs TO a table (its rows are sharded like the table's)"
            )
        edits = Replacements(statement)
        _rename(statement, edits, toks, self.tables, select + 1)  # it reads what is inserted on its node
        return _on_cluster(edits.text(), self.cluster)

    def _alter(self, statement: str, toks: list[Token]) -> list[str]:
        database, name, after = _qualified_name(toks, 2)
        table = self.tables.get((database, name)) if database else None
        if table is None:
            raise ClusterDDLError(
                statement, "ALTER is known only for the tables of the MergeTree family that the DDL creates"
            )
        if toks[after].kind != "placeholder":
            raise ClusterDDLError(statement, f"needs {PLACEHOLDER} right after the table's name")
        edits = Replacements(statement)
        edits.replace(toks[2].start, toks[after - 1].end, f"{database}.{table.local}")
        self._replicated_settings(toks, edits, after)
        result = [_on_cluster(edits.text(), self.cluster)]
        commands = self._commands(statement, toks, after + 1)
        columns = [text for text in commands if any(text.upper().startswith(c) for c in COLUMN_COMMANDS)]
        if columns:
            joined = ",\n    ".join(columns)
            result.append(f"ALTER TABLE {database}.{name} ON CLUSTER {self.cluster}\n    {joined}")
        return result

    @staticmethod
    def _commands(statement: str, toks: list[Token], start: int) -> list[str]:
        """The commands of an ALTER, split at its top-level commas, each with its words normalized."""
        depths = _depths(toks)
        commands, begin = [], start
        for i in range(start, len(toks) + 1):
            if i == len(toks) or (depths[i] == 0 and toks[i].text == ","):
                if begin < i:
                    text = statement[toks[begin].start : toks[i - 1].end]
                    commands.append(re.sub(r"\s+", " ", text))
                begin = i + 1
        return commands

    def _drop_table(self, statement: str, toks: list[Token]) -> list[str]:
        at = _after_if_exists(toks, 2, "IF EXISTS")
        if at == 2:
            raise ClusterDDLError(statement, "DROP TABLE needs IF EXISTS (the DDL runs at every start)")
        database, name, after = _qualified_name(toks, at)
        if not database:
            raise ClusterDDLError(statement, "name the table with its database")
        local = Replacements(statement)
        local.replace(toks[at].start, toks[after - 1].end, f"{database}.{name}{LOCAL_SUFFIX}")
        return [_on_cluster(statement, self.cluster), _on_cluster(local.text(), self.cluster)]


def cluster_statements(statements: list[str], cluster: str) -> list[str]:
    """The statements of a cluster named ``cluster``, from the single-server ``statements`` (each still
    holding its ``{on_cluster}`` placeholder), in the order they must run."""
    return ClusterDDL(statements, cluster).generate()


_DISTRIBUTED = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)\.(\w+) ON CLUSTER \w+ AS \S+\nENGINE = Distributed\(")
_VIEW = re.compile(r"CREATE (?:OR REPLACE )?VIEW (?:IF NOT EXISTS )?(\w+)\.(\w+) ON CLUSTER ")


def cluster_engines(statements: list[str]) -> dict[str, str]:
    """The engine that the cluster ``statements`` give each name analysts and the sink use: the
    distributed tables and the plain views."""
    found = {}
    for pattern, engine in ((_DISTRIBUTED, "Distributed"), (_VIEW, "View")):
        for match in filter(None, map(pattern.match, statements)):
            found[f"{match.group(1)}.{match.group(2)}"] = engine
    return found


def refuse_single_server_tables(statements: list[str], rows: Callable[[str], Sequence[Sequence[Any]]]) -> None:
    """Stop before anything runs when a name that the cluster DDL makes a distributed table or a view
    already exists as something else: a store from a single server, from a version that applied the DDL
    ON CLUSTER as it was, or from one whose ``ringback.events`` was still a table. ``CREATE TABLE IF NOT
    EXISTS`` would keep such a table, unreplicated, under the analysts' name, and ``CREATE OR REPLACE
    VIEW`` would drop it and its rows."""
    expected = cluster_engines(statements)
    if not expected:
        return
    listed = ", ".join(f"'{name}'" for name in expected)
    found = rows(
        f"SELECT database || '.' || name, engine FROM system.tables WHERE database || '.' || name IN ({listed})"
    )
    wrong = sorted(
        f"{name} ({engine} instead of {expected[name]})" for name, engine in found if engine != expected[name]
    )
    if wrong:
        raise ValueError(
            "cluster DDL: these exist but are not what a cluster holds under their names: "
            + ", ".join(wrong)
            + "; move their rows to the cluster's tables first (docs/scaling.md)"
        )

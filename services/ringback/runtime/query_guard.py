"""What an analyst query (`ringback sql`) may run, decided before any of it runs.

ClickHouse's own parser says what the text means. The query reaches the engine first only as a string
literal given to ``formatQuery``, which parses exactly one statement and prints it canonically: comments
gone, keywords in upper case, identifiers in backquotes, heredocs as plain strings. That canonical text
is checked token by token here and as the syntax tree ``EXPLAIN AST`` prints, and it is the text that
runs: what was checked is what executes.

Allowed: one SELECT (with WITH, UNION / EXCEPT / INTERSECT, subqueries, joins, FINAL), SHOW, DESCRIBE,
EXISTS, or EXPLAIN of a SELECT, with an optional trailing FORMAT and a trailing SETTINGS clause of
:data:`OUTPUT_SETTINGS` only. Refused: every other statement (INSERT, CREATE, KILL, SYSTEM, USE, SET, ...),
INTO OUTFILE / FROM INFILE, any other SETTINGS, table functions other than
:data:`ALLOWED_TABLE_FUNCTIONS`, the functions of :data:`REFUSED_FUNCTIONS` (files, other hosts, engine
state, introspection, dictionaries, the server's configuration), and the system tables outside
:data:`ALLOWED_SYSTEM_TABLES` (those that show other sessions' queries, errors, the host's paths). The
reader's ``readonly=1`` profile (:mod:`ringback.runtime.clickhouse`) backs this up inside the engine;
this guard refuses what ``readonly`` still lets through (INTO OUTFILE, the ``file()`` function, KILL
QUERY, USE, the system tables).

The output settings are not left in the text that runs: ``readonly=1`` refuses every setting in a query,
so they are returned apart (:attr:`CheckedQuery.settings`) and become the session settings of a reader
opened for that query, applied before ``readonly``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import orjson

#: Runs a statement on the reader: (sql, output format or None for the engine's default) -> output.
Engine = Callable[[str, str | None], bytes]

READONLY_REFUSAL = "query refused (readonly)"
#: First word of the canonical text of the statement kinds that may run.
ALLOWED_LEADING_WORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "EXISTS", "EXPLAIN"})
ALLOWED_STATEMENTS_TEXT = "SELECT (WITH, UNION, EXCEPT, INTERSECT), SHOW, DESCRIBE, EXISTS and EXPLAIN of a SELECT"
#: Root node of the EXPLAIN AST dump of those statement kinds.
ALLOWED_ROOTS = frozenset(
    {
        "SelectWithUnionQuery",
        "Explain",
        "DescribeQuery",
        "ShowTables",
        "ShowColumns",
        "ShowIndexes",
        "ShowFunctions",
        "ShowEngineQuery",
        "ShowCreateTableQuery",
        "ShowCreateViewQuery",
        "ShowCreateDatabaseQuery",
        "ShowCreateDictionaryQuery",
        "ExistsTableQuery",
        "ExistsViewQuery",
        "ExistsDatabaseQuery",
        "ExistsDictionaryQuery",
    }
)
EXPLAIN_KINDS = frozenset(
    {
        "EXPLAIN",
        "EXPLAIN PLAN",
        "EXPLAIN AST",
        "EXPLAIN SYNTAX",
        "EXPLAIN QUERY TREE",
        "EXPLAIN PIPELINE",
        "EXPLAIN ESTIMATE",
    }
)
#: What ``SHOW`` may list (the word after ``SHOW`` and its modifiers): names, and the session's own
#: settings. Not clusters (hosts and ports), merges (part paths), caches (paths) or the process list.
ALLOWED_SHOW_LISTS = frozenset({"TABLES", "DATABASES", "DICTIONARIES", "SETTINGS", "CHANGED"})
SHOW_MODIFIERS = frozenset({"FULL", "TEMPORARY", "EXTENDED"})
#: Table functions that only generate rows and that the engine runs under ``readonly=1`` (lower case);
#: every other one reads files, URLs, other servers or programs, is not needed for analysis, or is
#: refused in read-only mode (``zeros``: use ``system.zeros``).
ALLOWED_TABLE_FUNCTIONS = frozenset({"numbers", "generate_series", "generateseries", "values", "view"})
SYSTEM_DATABASES = frozenset({"system", "information_schema"})
#: The system tables an analyst may read (lower case): names, types, functions, formats and the
#: session's own settings. Every other one is refused: they show other sessions' queries
#: (``processes``, ``query_log``), errors holding query text (``errors``), the host's paths (``disks``,
#: ``parts``), the server's configuration. ``information_schema`` only shows names and types.
ALLOWED_SYSTEM_TABLES = frozenset(
    {
        "one",
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "tables",
        "databases",
        "columns",
        "functions",
        "table_functions",
        "aggregate_function_combinators",
        "data_type_families",
        "formats",
        "time_zones",
        "table_engines",
        "database_engines",
        "collations",
        "keywords",
        "settings",
    }
)
#: System tables readable only by named columns, none of these: their paths on the host.
PATH_COLUMNS_OF = {"tables": ("data_paths", "metadata_path"), "databases": ("data_path", "metadata_path")}
_PATH_COLUMNS = frozenset(column for columns in PATH_COLUMNS_OF.values() for column in columns)
#: Settings a query may carry, with the values each accepts: how the answer is printed, nothing of what
#: the query may take (its limits are fixed) or reach.
_BOOLEAN = re.compile(r"(?i)0|1|true|false")
OUTPUT_SETTINGS: dict[str, re.Pattern[str]] = {
    "output_format_decimal_trailing_zeros": _BOOLEAN,
    "output_format_json_quote_decimals": _BOOLEAN,
    "output_format_json_quote_64bit_integers": _BOOLEAN,
    "output_format_json_quote_64bit_floats": _BOOLEAN,
    "output_format_json_quote_denormals": _BOOLEAN,
    "output_format_json_named_tuples_as_objects": _BOOLEAN,
    "date_time_output_format": re.compile(r"simple|iso|unix_timestamp"),
    "session_timezone": re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}"),
}
MAX_SETTING_VALUE_CHARS = 64
_FILES = "reads files on the host"
_NETWORK = "reaches other hosts"
_ENGINE_STATE = "writes engine state"
_INTROSPECTION = "inspects the engine's process"
_DICTIONARY = "loads dictionaries, whose sources can be files, URLs or programs"
#: Functions refused anywhere in a query (lower case), with why.
REFUSED_FUNCTIONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "file",
            "filesystemavailable",
            "filesystemcapacity",
            "filesystemunreserved",
            "showcertificate",
            "catboostevaluate",
            "naivebayesclassifier",
            "naivebayesclassifierwithprob",
            "naivebayesclassifierwithallprobs",
        ),
        _FILES,
    ),
    **dict.fromkeys(
        (
            "hascolumnintable",
            "aiclassify",
            "aiembed",
            "aiextract",
            "aifilter",
            "aigenerate",
            "airedact",
            "aisimilarity",
            "aitranslate",
        ),
        _NETWORK,
    ),
    **dict.fromkeys(("generateserialid", "logtrace"), _ENGINE_STATE),
    **dict.fromkeys(
        ("addresstoline", "addresstolinewithinlines", "addresstosymbol", "demangle", "tid"), _INTROSPECTION
    ),
    "getserversetting": "shows the server's configuration and paths",
}
REFUSED_FUNCTION_PREFIXES: dict[str, str] = {"dictget": _DICTIONARY, "dicthas": _DICTIONARY, "dictisin": _DICTIONARY}
FORMAT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: Characters a quoted identifier may not hold: they could make one line of the EXPLAIN AST dump read
#: as several nodes, or a node as having other children.
_UNSAFE_IN_IDENTIFIER = re.compile(r"[\\`\"()]")
_CANONICAL_ALIAS = "canonical"
_FORMAT_QUERY_SCOPE = re.compile(
    rf"\s*:? In scope SELECT formatQuery\(.*\) AS {_CANONICAL_ALIAS}\.(?= \(\w+\)$)", re.DOTALL
)
_AST_LINE = re.compile(r"(?P<indent> *)(?P<kind>\w+)(?P<rest>.*?)(?: \(children (?P<count>\d+)\))?")


class QueryRefused(ValueError):
    """The query is not allowed; the message says what was refused, on one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{READONLY_REFUSAL}: {reason}")


class QueryNotParsed(ValueError):
    """The engine's parser could not read the query (its message, less the guard's own wrapping)."""


@dataclass(frozen=True)
class CheckedQuery:
    """A query the guard allows: its canonical text without FORMAT or SETTINGS, its FORMAT if it had
    one, and the output settings to run it with (its own SETTINGS over those given apart)."""

    text: str
    output_format: str | None
    settings: dict[str, str] = field(default_factory=dict)


def check(
    query: str, engine: Engine, settings: dict[str, str] | None = None, parse_errors: bool = True
) -> CheckedQuery:
    """The canonical form of ``query`` if it may run, else :class:`QueryRefused`; ``settings`` are
    output settings asked for apart from the query (``ringback sql --setting``). Without
    ``parse_errors``, a query the parser cannot read is refused without the parser's message, which
    quotes it."""
    _refuse_control_characters(query)
    given = checked_settings(settings or {})
    canonical = canonical_text(query, engine) if parse_errors else quiet_canonical_text(query, engine)
    tokens = tokenize(canonical)
    tail = split_tail(canonical, tokens)
    check_tokens(tokens[: tail.start])
    tree = parse_tree(engine(f"EXPLAIN AST {tail.text}", None).decode("utf-8", "replace"))
    check_tree(tree)
    if tree.kind == "ShowTables":
        check_show(tokens)
    return CheckedQuery(tail.text, tail.output_format, {**given, **tail.settings})


def checked_settings(settings: dict[str, str]) -> dict[str, str]:
    """Output settings by name, each allowed and its value one it accepts (booleans as 0 or 1)."""
    checked: dict[str, str] = {}
    for name, value in settings.items():
        pattern = OUTPUT_SETTINGS.get(name.lower())
        if pattern is None:
            raise QueryRefused(
                f"SETTINGS clause: {name} is not an output setting (the limits of analyst queries are fixed); "
                f"allowed: {', '.join(OUTPUT_SETTINGS)}"
            )
        if len(value) > MAX_SETTING_VALUE_CHARS or not pattern.fullmatch(value):
            raise QueryRefused(f"SETTINGS clause: {value!r} is not a value of {name.lower()}")
        checked[name.lower()] = _boolean_as_digit(value) if pattern is _BOOLEAN else value
    return checked


def _boolean_as_digit(value: str) -> str:
    return "1" if value.lower() in ("1", "true") else "0"


def checked_format(name: str) -> str:
    """An output format name, which is appended to the query text: a bare name and nothing else."""
    if not FORMAT_NAME.fullmatch(name):
        raise QueryRefused(f"{name!r} is not a format name")
    return name


def _refuse_control_characters(query: str) -> None:
    for char in query:
        if unicodedata.category(char) == "Cc" and char not in "\t\n\r":
            raise QueryRefused(f"control character U+{ord(char):04X} in the query")


def string_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def canonical_text(query: str, engine: Engine) -> str:
    """The engine's canonical print of ``query``; its parser refuses more than one statement."""
    try:
        output = engine(f"SELECT formatQuery({string_literal(query)}) AS {_CANONICAL_ALIAS}", "JSONEachRow")
    except Exception as exc:
        raise QueryNotParsed(_FORMAT_QUERY_SCOPE.sub("", str(exc))) from exc
    return str(orjson.loads(output)[_CANONICAL_ALIAS])


NOT_PARSED = "not one statement the engine's parser can read"


def quiet_canonical_text(query: str, engine: Engine) -> str:
    """:func:`canonical_text` that tells a query the parser cannot read by ``formatQueryOrNull``: no
    error holding the query comes back. (The engine still counts the parser's error in its own
    ``system.errors``, which analysts cannot read.)"""
    output = engine(f"SELECT formatQueryOrNull({string_literal(query)}) AS {_CANONICAL_ALIAS}", "JSONEachRow")
    canonical = orjson.loads(output)[_CANONICAL_ALIAS]
    if canonical is None:
        raise QueryNotParsed(NOT_PARSED)
    return str(canonical)


# --- tokens of the canonical text ---

#: A bare word, an identifier in quotes, a string literal, one punctuation character.
TokenKind = Literal["word", "quoted", "string", "punct"]


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    start: int

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words


_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")
#: Comments, heredocs and statement separators never appear in what formatQuery prints.
_NOT_CANONICAL = ("--", "/*", "#", "$", ";")


def tokenize(text: str) -> list[Token]:
    """Words, quoted identifiers, string literals and single punctuation characters."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if space := _SPACE.match(text, pos):
            pos = space.end()
            continue
        char = text[pos]
        if char in "'`\"":
            end = _closing_quote(text, pos)
            tokens.append(Token("string" if char == "'" else "quoted", text[pos + 1 : end], pos))
            pos = end + 1
        elif word := _WORD.match(text, pos):
            tokens.append(Token("word", word.group(), pos))
            pos = word.end()
        elif text.startswith(_NOT_CANONICAL, pos):
            raise QueryRefused(f"unexpected {text[pos : pos + 2]!r} in the canonical query text")
        else:
            tokens.append(Token("punct", char, pos))
            pos += 1
    return tokens


def _closing_quote(text: str, start: int) -> int:
    quote, pos = text[start], start + 1
    while pos < len(text):
        if text[pos] == "\\":
            pos += 2
        elif text[pos] == quote:
            if text.startswith(quote * 2, pos):
                pos += 2
                continue
            return pos
        else:
            pos += 1
    raise QueryRefused("unterminated quote in the canonical query text")


def check_tokens(tokens: list[Token]) -> None:
    if not tokens:
        raise QueryRefused("empty query")
    # A set operation's first operand may be printed in parentheses.
    first = next((token for token in tokens if token.text != "("), tokens[0])
    if not first.is_word(*ALLOWED_LEADING_WORDS):
        raise QueryRefused(f"{first.text.upper()} statements are not allowed; only {ALLOWED_STATEMENTS_TEXT}")
    for index, token in enumerate(tokens):
        if token.kind == "quoted":
            _check_identifier(token.text)
        following = tokens[index + 1 : index + 3]
        if token.is_word("INTO") and following and following[0].is_word("OUTFILE"):
            raise QueryRefused("INTO OUTFILE (writes a file)")
        if token.is_word("FROM") and following and following[0].is_word("INFILE"):
            raise QueryRefused("FROM INFILE (reads a file)")
        if token.is_word("SETTINGS") and _starts_assignment(following):
            raise QueryRefused(_SETTINGS_ONLY_AT_THE_END)


_SETTINGS_ONLY_AT_THE_END = (
    "SETTINGS clause inside the query (the limits of analyst queries are fixed; output settings go at its end)"
)


def check_show(tokens: list[Token]) -> None:
    """What a ``SHOW`` that the engine turns into a SELECT over a system table lists."""
    listed = next((token for token in tokens[1:] if not token.is_word(*SHOW_MODIFIERS)), None)
    what = listed.text.upper() if listed is not None else ""
    if what not in ALLOWED_SHOW_LISTS:
        raise QueryRefused(
            f"SHOW {what} is not allowed (it shows hosts, paths or other sessions); "
            f"SHOW lists only {', '.join(sorted(ALLOWED_SHOW_LISTS))}, columns, indexes, engines and functions"
        )


def _check_identifier(name: str) -> None:
    if _UNSAFE_IN_IDENTIFIER.search(name) or any(unicodedata.category(char) == "Cc" for char in name):
        raise QueryRefused(
            f"quoted identifier `{name}`: backquotes, double quotes, backslashes, parentheses and control "
            "characters are not allowed in names"
        )


def _starts_assignment(tokens: list[Token]) -> bool:
    return len(tokens) == 2 and tokens[0].kind in ("word", "quoted") and tokens[1].text == "="


def split_format(canonical: str, tokens: list[Token]) -> tuple[str, str | None]:
    """The statement without a trailing ``FORMAT name``, and that name."""
    tail = split_tail(canonical, tokens)
    if tail.settings:
        raise QueryRefused(_SETTINGS_ONLY_AT_THE_END)
    return tail.text, tail.output_format


@dataclass(frozen=True)
class Tail:
    """The statement (``text``, its first ``start`` tokens) and its trailing FORMAT and SETTINGS."""

    text: str
    start: int
    output_format: str | None
    settings: dict[str, str]


def split_tail(canonical: str, tokens: list[Token]) -> Tail:
    """The statement without a trailing ``FORMAT name`` and ``SETTINGS name = value, ...`` (in either
    order): what follows the statement itself. Its settings are checked (:func:`checked_settings`)."""
    end, output_format, settings = len(tokens), None, None
    for _ in range(2):
        if (
            output_format is None
            and end >= 2
            and tokens[end - 2].is_word("FORMAT")
            and tokens[end - 1].kind
            in (
                "word",
                "quoted",
            )
        ):
            output_format = checked_format(tokens[end - 1].text)
            end -= 2
        elif settings is None and (found := _trailing_settings(tokens[:end])) is not None:
            end, settings = found
    text = canonical[: tokens[end].start].rstrip() if end < len(tokens) else canonical
    return Tail(text, end, output_format, checked_settings(settings or {}))


def _trailing_settings(tokens: list[Token]) -> tuple[int, dict[str, str]] | None:
    """Where a trailing ``SETTINGS a = v, b = v`` starts, and its assignments; None if there is none."""
    for index in range(len(tokens) - 1, -1, -1):
        if tokens[index].is_word("SETTINGS"):
            assignments = _assignments(tokens[index + 1 :])
            return None if assignments is None else (index, assignments)
    return None


def _assignments(tokens: list[Token]) -> dict[str, str] | None:
    """``name = value`` pairs separated by commas, every value one literal; None if not that."""
    pairs: dict[str, str] = {}
    for start in range(0, len(tokens), 4):
        pair = tokens[start : start + 3]
        if len(pair) < 3 or not _starts_assignment(pair[:2]) or pair[2].kind not in ("word", "string"):
            return None
        pairs[pair[0].text] = pair[2].text
        separator = tokens[start + 3 : start + 4]
        if separator and separator[0].text != ",":
            return None
        if separator and start + 4 == len(tokens):
            return None
    return pairs or None


# --- the EXPLAIN AST dump ---


@dataclass
class Node:
    kind: str
    rest: str
    declared: int
    children: list[Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The first word after the kind: a function's name, an EXPLAIN's kind starts here."""
        return self.rest.split(" ", 1)[0] if self.rest else ""


def parse_tree(dump: str) -> Node:
    """The tree of an EXPLAIN AST dump (one node a line, one space of indent a level, children counted)."""
    lines = [line for line in dump.splitlines() if line.strip()]
    if not lines:
        raise QueryRefused("the engine printed no syntax tree")
    root, end = _parse_node(lines, 0, 0)
    if end != len(lines):
        raise QueryRefused("the syntax tree has more than one root")
    return root


def _parse_node(lines: list[str], index: int, depth: int) -> tuple[Node, int]:
    match = _AST_LINE.fullmatch(lines[index])
    if match is None or len(match["indent"]) != depth:
        raise QueryRefused(f"unreadable syntax tree line {lines[index]!r}")
    node = Node(match["kind"], match["rest"].strip(), int(match["count"] or 0))
    index += 1
    while index < len(lines) and _indent(lines[index]) > depth:
        child, index = _parse_node(lines, index, depth + 1)
        node.children.append(child)
    if len(node.children) != node.declared:
        raise QueryRefused(
            f"syntax tree node {node.kind} declares {node.declared} children and has {len(node.children)}"
        )
    return node, index


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def check_tree(root: Node) -> None:
    if root.kind not in ALLOWED_ROOTS:
        raise QueryRefused(f"{root.kind} statements are not allowed; only {ALLOWED_STATEMENTS_TEXT}")
    if root.kind == "SelectWithUnionQuery":
        _check_select_root(root)
    options = None
    if root.kind == "Explain":
        _check_explain(root)
        options = next((child for child in root.children if child.kind == "Set"), None)
    _check_nodes(root, parent=None, explain_options=options)
    _check_path_columns(root)


def _check_select_root(root: Node) -> None:
    extra = [child.kind for child in root.children if child.kind != "ExpressionList"]
    if "Literal" in extra:
        raise QueryRefused("INTO OUTFILE (writes a file)")
    if extra:
        raise QueryRefused(f"unexpected clause ({', '.join(extra)}) after the SELECT")


def _check_explain(root: Node) -> None:
    if root.rest not in EXPLAIN_KINDS:
        raise QueryRefused(f"{root.rest} is not allowed; only {', '.join(sorted(EXPLAIN_KINDS))}")
    statements = [child for child in root.children if child.kind != "Set"]
    if len(statements) != 1 or statements[0].kind != "SelectWithUnionQuery" or len(root.children) - len(statements) > 1:
        raise QueryRefused("EXPLAIN is allowed for one SELECT only")
    _check_select_root(statements[0])


def _check_nodes(node: Node, parent: Node | None, explain_options: Node | None) -> None:
    if node.kind == "Set" and node is not explain_options:
        raise QueryRefused(_SETTINGS_ONLY_AT_THE_END)
    if node.kind in ("TableIdentifier", "Identifier"):
        _check_table(node.name)
    if node.kind == "Function":
        _check_function(node.name, in_table_position=parent is not None and parent.kind == "TableExpression")
    for child in node.children:
        _check_nodes(child, node, explain_options)


def _check_function(name: str, in_table_position: bool) -> None:
    lowered = name.lower()
    if in_table_position and lowered not in ALLOWED_TABLE_FUNCTIONS:
        raise QueryRefused(f"table function {name}() is not allowed; only {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))}")
    why = REFUSED_FUNCTIONS.get(lowered) or next(
        (why for prefix, why in REFUSED_FUNCTION_PREFIXES.items() if lowered.startswith(prefix)), None
    )
    if why:
        raise QueryRefused(f"function {name}() is not allowed: it {why}")


def _system_table(name: str) -> str | None:
    """The table's name (lower case) if ``name`` (``db.table`` or longer) is in a system database."""
    parts = name.lower().split(".")
    return parts[1] if len(parts) >= 2 and parts[0] in SYSTEM_DATABASES else None


def _check_table(name: str) -> None:
    table = _system_table(name)
    if table is None or name.lower().startswith("information_schema."):
        return
    if table not in ALLOWED_SYSTEM_TABLES:
        raise QueryRefused(
            f"system table {name} is not allowed (it can show other sessions' queries, errors, paths or the "
            f"server's configuration); only system.{{{', '.join(sorted(ALLOWED_SYSTEM_TABLES))}}} and "
            "information_schema"
        )


def _check_path_columns(root: Node) -> None:
    """``system.tables`` and ``system.databases`` are read by named columns only, never their paths."""
    nodes = list(_walk(root))
    restricted = sorted(
        {
            table
            for node in nodes
            if node.kind in ("TableIdentifier", "Identifier") and (table := _system_table(node.name)) in PATH_COLUMNS_OF
        }
    )
    if not restricted:
        return
    for node in nodes:
        if "Asterisk" in node.kind or "Matcher" in node.kind:
            raise QueryRefused(
                f"* or COLUMNS() with system.{restricted[0]}: name its columns (all but "
                f"{', '.join(PATH_COLUMNS_OF[restricted[0]])})"
            )
        if node.kind == "Identifier" and node.name.lower().rsplit(".", 1)[-1] in _PATH_COLUMNS:
            raise QueryRefused(f"column {node.name} with system.{restricted[0]}: the host's paths are not shown")


def _walk(node: Node) -> list[Node]:
    found = [node]
    for child in node.children:
        found.extend(_walk(child))
    return found

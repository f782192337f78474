"""What an analyst query (`ringback sql`) may run, decided before any of it runs.

ClickHouse's own parser says what the text means. The query reaches the engine first only as a string
literal given to ``formatQuery``, which parses exactly one statement and prints it canonically: comments
gone, keywords in upper case, identifiers in backquotes, heredocs as plain strings. That canonical text
is checked token by token here and as the syntax tree ``EXPLAIN AST`` prints, and it is the text that
runs: what was checked is what executes.

Allowed: one SELECT (with WITH, UNION, subqueries, joins, FINAL), SHOW, DESCRIBE, EXISTS, or EXPLAIN of a
SELECT, with an optional trailing FORMAT. Refused: every other statement (INSERT, CREATE, KILL, SYSTEM,
USE, SET, ...), INTO OUTFILE / FROM INFILE, a SETTINGS clause, table functions other than
:data:`ALLOWED_TABLE_FUNCTIONS`, and the functions of :data:`REFUSED_FUNCTIONS` (files, other hosts,
engine state, introspection, dictionaries). The reader's ``readonly=1`` profile
(:mod:`ringback.runtime.clickhouse`) backs this up inside the engine; this guard refuses what
``readonly`` still lets through (INTO OUTFILE, the ``file()`` function, KILL QUERY, USE).
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
ALLOWED_STATEMENTS_TEXT = "SELECT (WITH, UNION), SHOW, DESCRIBE, EXISTS and EXPLAIN of a SELECT"
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
        "ShowProcesslistQuery",
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
#: Table functions that only generate rows (lower case); every other one reads files, URLs, other
#: servers or programs, or is not needed for analysis.
ALLOWED_TABLE_FUNCTIONS = frozenset({"numbers", "zeros", "generate_series", "generateseries", "values", "view"})
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
    """A query the guard allows: its canonical text without FORMAT, and its FORMAT if it had one."""

    text: str
    output_format: str | None


def check(query: str, engine: Engine) -> CheckedQuery:
    """The canonical form of ``query`` if it may run, else :class:`QueryRefused`."""
    _refuse_control_characters(query)
    canonical = canonical_text(query, engine)
    tokens = tokenize(canonical)
    check_tokens(tokens)
    text, output_format = split_format(canonical, tokens)
    check_tree(parse_tree(engine(f"EXPLAIN AST {text}", None).decode("utf-8", "replace")))
    return CheckedQuery(text, output_format)


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
    first = tokens[0]
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
            raise QueryRefused("SETTINGS clause (the limits of analyst queries are fixed)")


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
    if len(tokens) >= 2 and tokens[-2].is_word("FORMAT") and tokens[-1].kind == "word":
        return canonical[: tokens[-2].start].rstrip(), checked_format(tokens[-1].text)
    return canonical, None


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
        raise QueryRefused("SETTINGS clause (the limits of analyst queries are fixed)")
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

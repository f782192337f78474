"""The query guard's own reading of the canonical text and of the EXPLAIN AST dump (no engine needed);
what the engine makes of real queries is in tests/integration/test_sql_readonly.py."""

from __future__ import annotations

import pytest

from ringback import config
from ringback.runtime import clickhouse, query_guard
from ringback.runtime.query_guard import QueryRefused, check_tokens, checked_format, parse_tree, split_format, tokenize


def words(text: str) -> list[tuple[str, str]]:
    return [(token.kind, token.text) for token in tokenize(text)]


def test_quotes_hold_keywords_as_text_not_as_words() -> None:
    assert words("SELECT 'INTO OUTFILE', `SETTINGS x`, \"FROM INFILE\"") == [
        ("word", "SELECT"),
        ("string", "INTO OUTFILE"),
        ("punct", ","),
        ("quoted", "SETTINGS x"),
        ("punct", ","),
        ("quoted", "FROM INFILE"),
    ]
    assert words(r"SELECT 'it\'s', 'a''b'") == [
        ("word", "SELECT"),
        ("string", r"it\'s"),
        ("punct", ","),
        ("string", "a''b"),
    ]


@pytest.mark.parametrize(
    "text", ["SELECT 1 -- c", "SELECT 1 /* c */", "SELECT 1 # c", "SELECT $$x$$", "SELECT 1; SELECT 2", "SELECT 'open"]
)
def test_what_formatquery_never_prints_is_refused(text: str) -> None:
    with pytest.raises(QueryRefused):
        tokenize(text)


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("SELECT 1\nINTO OUTFILE '/tmp/x' APPEND", "INTO OUTFILE"),
        ("select 1 into outfile 'x'", "INTO OUTFILE"),
        ("SELECT 1\nSETTINGS readonly = 0", "SETTINGS clause"),
        ("SELECT 1\nSETTINGS `max_threads` = 64", "SETTINGS clause"),
        ("INSERT INTO t SELECT 1", "INSERT statements"),
        ("KILL QUERY WHERE 1 ASYNC", "KILL statements"),
        ("USE system", "USE statements"),
        ("SELECT 1 AS `a (children 3)`", "quoted identifier"),
        ("SELECT `a\\nb`", "quoted identifier"),
    ],
)
def test_refused_tokens(text: str, refused: str) -> None:
    with pytest.raises(QueryRefused, match="readonly") as caught:
        check_tokens(tokenize(text))
    assert refused in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT name FROM system.settings WHERE name = 'readonly'",  # a table called settings is no SETTINGS clause
        "SELECT 'SETTINGS readonly = 0' AS `into outfile`",
        "SHOW SETTINGS LIKE 'max%'",
        "WITH x AS (SELECT 1) SELECT * FROM x",
    ],
)
def test_allowed_tokens(text: str) -> None:
    check_tokens(tokenize(text))


def test_a_trailing_format_is_split_off_and_must_be_a_name() -> None:
    canonical = "SELECT 1\nFORMAT JSONEachRow"
    assert split_format(canonical, tokenize(canonical)) == ("SELECT 1", "JSONEachRow")
    assert split_format("SELECT format('{}', 1)", tokenize("SELECT format('{}', 1)")) == (
        "SELECT format('{}', 1)",
        None,
    )
    assert checked_format("PrettyCompact") == "PrettyCompact"
    for bad in ("TSV; SELECT 1 INTO OUTFILE 'x'", "JSON SETTINGS readonly=0", ""):
        with pytest.raises(QueryRefused):
            checked_format(bad)


def test_the_tree_reader_refuses_a_dump_whose_counts_do_not_add_up() -> None:
    tree = parse_tree(
        "SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  SelectQuery (children 1)\n   "
        "ExpressionList (children 1)\n    Literal UInt64_1"
    )
    assert [child.kind for child in tree.children] == ["ExpressionList"]
    # An identifier whose text looked like a second node would add a line no parent counted.
    with pytest.raises(QueryRefused, match="declares"):
        parse_tree("SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  Identifier x\n  Function file")
    with pytest.raises(QueryRefused, match="more than one root"):
        parse_tree("SelectWithUnionQuery\nFunction file")


def test_reader_settings_put_readonly_last_and_bound_everything() -> None:
    limits = clickhouse.QueryLimits(
        timeout_s=5.0, max_memory_bytes=1 << 20, max_result_rows=10, max_result_bytes=1 << 10, max_threads=1
    )
    embedded = clickhouse.reader_settings(limits, embedded=True)
    assert list(embedded)[-1] == "readonly" and embedded["readonly"] == 1
    assert {
        "max_execution_time": 5.0,
        "max_memory_usage": 1 << 20,
        "max_result_rows": 10,
        "max_result_bytes": 1 << 10,
        "max_threads": 1,
    }.items() <= embedded.items()
    assert embedded["allow_introspection_functions"] == 0 and "os_thread_priority" in embedded
    server = clickhouse.reader_settings(limits, embedded=False)
    assert list(server)[-1] == "readonly" and "os_thread_priority" not in server


@pytest.mark.parametrize("name", config.QUERY_LIMITS)
def test_query_limits_must_be_positive(name: str) -> None:
    with pytest.raises(config.ConfigError, match=name):
        config.load({name: "0"}, environ={})
    assert getattr(config.load({}, environ={}), name) > 0


def test_the_refusal_names_what_was_refused_on_one_line() -> None:
    error = query_guard.QueryRefused("INTO OUTFILE (writes a file)")
    assert str(error) == "query refused (readonly): INTO OUTFILE (writes a file)" and "\n" not in str(error)

"""The query guard's own reading of the canonical text and of the EXPLAIN AST dump (no engine needed);
what the engine makes of real queries is in tests/integration/test_sql_readonly.py."""

from __future__ import annotations

import pytest

from ringback import config
from ringback.runtime import clickhouse, query_guard
from ringback.runtime.query_guard import (
    QueryRefused,
    check_show,
    check_tokens,
    check_tree,
    checked_format,
    checked_settings,
    parse_tree,
    split_format,
    split_tail,
    tokenize,
)


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
        ("SELECT * FROM (SELECT 1\nSETTINGS output_format_json_quote_decimals = 1)", "SETTINGS clause"),
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


def tail_of(canonical: str) -> query_guard.Tail:
    return split_tail(canonical, tokenize(canonical))


@pytest.mark.parametrize(
    "canonical",
    [
        "SELECT 1\nSETTINGS output_format_json_quote_decimals = 1\nFORMAT JSONEachRow",
        "SELECT 1\nFORMAT JSONEachRow\nSETTINGS output_format_json_quote_decimals = 1",
    ],
)
def test_trailing_output_settings_and_format_are_split_off_in_either_order(canonical: str) -> None:
    tail = tail_of(canonical)
    assert (tail.text, tail.output_format, tail.settings) == (
        "SELECT 1",
        "JSONEachRow",
        {"output_format_json_quote_decimals": "1"},
    )


def test_a_format_that_is_a_keyword_comes_quoted_and_is_still_a_format() -> None:
    tail = tail_of("SELECT 1\nFORMAT `Null`")
    assert (tail.text, tail.output_format) == ("SELECT 1", "Null")


def test_several_output_settings_of_each_kind() -> None:
    tail = tail_of(
        "SELECT 1\nSETTINGS output_format_json_quote_decimals = true, output_format_decimal_trailing_zeros = 0, "
        "date_time_output_format = 'iso', session_timezone = 'Asia/Shanghai', "
        "output_format_json_quote_64bit_integers = 1"
    )
    assert tail.settings == {
        "output_format_json_quote_decimals": "1",
        "output_format_decimal_trailing_zeros": "0",
        "date_time_output_format": "iso",
        "session_timezone": "Asia/Shanghai",
        "output_format_json_quote_64bit_integers": "1",
    }


@pytest.mark.parametrize(
    ("canonical", "refused"),
    [
        ("SELECT 1\nSETTINGS readonly = 0", "readonly is not an output setting"),
        ("SELECT 1\nSETTINGS max_threads = 64", "max_threads is not an output setting"),
        ("SELECT 1\nSETTINGS output_format_json_quote_decimals = 1, max_execution_time = 1000", "max_execution_time"),
        ("SELECT 1\nSETTINGS date_time_output_format = 'x'", "is not a value of date_time_output_format"),
        ("SELECT 1\nSETTINGS output_format_json_quote_decimals = 2", "is not a value"),
        ("SELECT 1\nSETTINGS session_timezone = '../../etc/passwd'", "is not a value of session_timezone"),
    ],
)
def test_any_other_setting_or_value_is_refused_on_one_line(canonical: str, refused: str) -> None:
    with pytest.raises(QueryRefused, match="SETTINGS clause") as caught:
        tail_of(canonical)
    assert refused in str(caught.value) and "\n" not in str(caught.value)


def test_settings_given_apart_are_checked_like_the_clause() -> None:
    assert checked_settings({"OUTPUT_FORMAT_JSON_QUOTE_DECIMALS": "True"}) == {"output_format_json_quote_decimals": "1"}
    for bad in ({"readonly": "0"}, {"max_result_rows": "0"}, {"date_time_output_format": "iso" * 30}):
        with pytest.raises(QueryRefused, match="SETTINGS clause"):
            checked_settings(bad)


def test_a_table_or_alias_called_settings_is_no_clause() -> None:
    tail = tail_of("SELECT name\nFROM system.settings")
    assert (tail.text, tail.settings) == ("SELECT name\nFROM system.settings", {})
    assert tail_of("SELECT 1 AS settings").settings == {}


def test_split_format_refuses_settings_it_cannot_pass_on() -> None:
    canonical = "SELECT 1\nSETTINGS output_format_json_quote_decimals = 1"
    with pytest.raises(QueryRefused, match="SETTINGS clause"):
        split_format(canonical, tokenize(canonical))


def test_a_set_operation_may_start_with_a_parenthesis() -> None:
    check_tokens(tokenize("(\n    SELECT 1\n)\nEXCEPT\n(\n    SELECT 2\n)"))
    with pytest.raises(QueryRefused, match="INSERT statements"):
        check_tokens(tokenize("(INSERT INTO t SELECT 1)"))


def select_from(table: str, column: str = "", asterisk: bool = False) -> str:
    """The EXPLAIN AST dump of ``SELECT <column or *> FROM <table>``."""
    selected = " Asterisk" if asterisk else f" Identifier {column}"
    return (
        "SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  SelectQuery (children 2)\n"
        f"   ExpressionList (children 1)\n   {selected}\n   TablesInSelectQuery (children 1)\n"
        "    TablesInSelectQueryElement (children 1)\n     TableExpression (children 1)\n"
        f"      TableIdentifier {table}"
    )


@pytest.mark.parametrize(
    "table",
    ["system.processes", "system.errors", "system.disks", "system.query_log", "system.parts", "System.Processes"],
)
def test_system_tables_off_the_list_are_refused(table: str) -> None:
    with pytest.raises(QueryRefused, match=f"system table {table} is not allowed"):
        check_tree(parse_tree(select_from(table, "x")))


def test_a_system_table_used_as_a_set_is_refused_too() -> None:
    dump = (
        "SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  SelectQuery (children 1)\n"
        "   ExpressionList (children 1)\n    Function in (children 1)\n     ExpressionList (children 2)\n"
        "      Literal UInt64_1\n      Identifier system.processes"
    )
    with pytest.raises(QueryRefused, match=r"system\.processes"):
        check_tree(parse_tree(dump))


@pytest.mark.parametrize(
    "table", [*sorted(f"system.{name}" for name in query_guard.ALLOWED_SYSTEM_TABLES), "information_schema.tables"]
)
def test_system_tables_on_the_list_pass(table: str) -> None:
    check_tree(parse_tree(select_from(table, "name")))


@pytest.mark.parametrize("table", ["system.tables", "system.databases"])
def test_tables_and_databases_only_by_named_columns_never_their_paths(table: str) -> None:
    with pytest.raises(QueryRefused, match="name its columns"):
        check_tree(parse_tree(select_from(table, asterisk=True)))
    for column in query_guard.PATH_COLUMNS_OF[table.split(".")[1]]:
        with pytest.raises(QueryRefused, match="paths are not shown"):
            check_tree(parse_tree(select_from(table, f"t.{column}")))


def test_a_path_column_of_another_table_is_no_concern() -> None:
    check_tree(parse_tree(select_from("ringback.events", "data_path")))
    check_tree(parse_tree(select_from("ringback.events", asterisk=True)))


@pytest.mark.parametrize(
    "text", ["SHOW TABLES FROM ringback", "SHOW FULL TABLES", "SHOW DATABASES", "SHOW CHANGED SETTINGS"]
)
def test_show_lists_names_and_own_settings(text: str) -> None:
    check_show(tokenize(text))


@pytest.mark.parametrize("text", ["SHOW CLUSTERS", "SHOW CLUSTER c", "SHOW MERGES", "SHOW FILESYSTEM CACHES"])
def test_show_of_hosts_merges_or_caches_is_refused(text: str) -> None:
    with pytest.raises(QueryRefused, match=f"SHOW {text.split()[1]} is not allowed"):
        check_show(tokenize(text))


def test_the_process_list_and_server_settings_are_refused() -> None:
    with pytest.raises(QueryRefused, match="ShowProcesslistQuery statements"):
        check_tree(parse_tree("ShowProcesslistQuery"))
    assert "getserversetting" in query_guard.REFUSED_FUNCTIONS and "zeros" not in query_guard.ALLOWED_TABLE_FUNCTIONS


def test_output_settings_go_before_readonly_in_the_reader_session() -> None:
    limits = clickhouse.QueryLimits(
        timeout_s=5.0, max_memory_bytes=1 << 20, max_result_rows=10, max_result_bytes=1 << 10, max_threads=1
    )
    session = clickhouse.reader_settings(limits, embedded=True, output={"output_format_json_quote_decimals": "1"})
    assert next(iter(session)) == "output_format_json_quote_decimals" and list(session)[-1] == "readonly"
    assert session["max_result_rows"] == 10

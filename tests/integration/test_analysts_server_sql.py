"""`ringback analysts-sql`: the analysts file as a server's role, users and row policies — every statement
the engine's own parser reads, every table with a tenant column limited for every account."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline import ringback

pytestmark = pytest.mark.integration

ANALYSTS = """
[[analysts]]
name = "finance"
password = "finance-password-0123"
tenants = ["*"]
[[analysts]]
name = "acme-ops"
password_sha256 = "{acme_digest}"
tenants = ["acme", "acme-eu"]
"""
#: Parses each statement with the engine's own parser in a process of its own (one embedded store a process).
PARSE = r"""
import json, sys
import chdb
out = []
for statement in json.load(sys.stdin):
    text = statement.rstrip(";").replace("\\", "\\\\").replace("'", "\\'")
    out.append(str(chdb.query(f"SELECT formatQuery('{text}')", "TSVRaw")).strip())
print(json.dumps(out))
"""


def analysts_sql(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "analysts.toml"
    path.write_text(ANALYSTS.format(acme_digest=hashlib.sha256(b"acme-ops-password-0123").hexdigest()))
    return subprocess.run(
        ringback("analysts-sql", "--analysts-file", str(path), "--data-dir", str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_tenant_table_gets_a_policy_per_account_and_the_engine_reads_every_statement(tmp_path: Path) -> None:
    done = analysts_sql(tmp_path)
    assert done.returncode == 0, done.stderr
    statements = [line for line in done.stdout.splitlines() if line.strip()]
    finance = hashlib.sha256(b"finance-password-0123").hexdigest()
    acme = hashlib.sha256(b"acme-ops-password-0123").hexdigest()
    assert f"CREATE USER OR REPLACE `finance` IDENTIFIED WITH sha256_hash BY '{finance}' DEFAULT ROLE" in done.stdout
    assert f"CREATE USER OR REPLACE `acme-ops` IDENTIFIED WITH sha256_hash BY '{acme}' DEFAULT ROLE" in done.stdout
    assert "CREATE ROLE IF NOT EXISTS analysts_readonly SETTINGS readonly = 1;" in statements
    policies = [
        re.fullmatch(r"CREATE ROW POLICY OR REPLACE (\w+) ON ringback\.(\w+) USING (.+) TO `(.+)`;", s)
        for s in statements
    ]
    limited = {(m.group(2), m.group(4), m.group(3)) for m in policies if m}
    tables = {table for table, _, _ in limited}
    assert {"event_copies", "dead_letters", "event_conflicts", "ledger", "ingests"} <= tables
    for table in tables:
        assert (table, "finance", "1") in limited
        assert (table, "acme-ops", "tenant IN ('acme', 'acme-eu')") in limited
    parsed = subprocess.run(
        [sys.executable, "-c", PARSE], input=json.dumps(statements), capture_output=True, text=True, timeout=120
    )
    assert parsed.returncode == 0, parsed.stderr[-2000:]
    formatted = json.loads(parsed.stdout)
    assert len(formatted) == len(statements)
    assert all(text.startswith(("CREATE ", "GRANT ")) for text in formatted), formatted


def test_without_an_analysts_file_it_says_what_to_give(tmp_path: Path) -> None:
    done = subprocess.run(
        ringback("analysts-sql", "--data-dir", str(tmp_path / "data")), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "--analysts-file" in done.stderr

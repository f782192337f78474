"""What the security model (docs/tenants-security.md) says of secrets, the tenants file and the descriptor
limit, checked on the real code: secrets are compared with the constant-time function, every digest of a tenant is
compared, the tenants file is only ever read, and the connection cap stays below the descriptor limit."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ringback.edge import tenants as tenants_module
from ringback.edge.connections import RESERVED_DESCRIPTORS
from ringback.edge.tenant_source import TenantSource
from ringback.edge.tenants import ACCEPTED, UNKNOWN_TENANT, WRONG_SECRET

OLD_SECRET, NEW_SECRET = "old-secret-0123456789", "new-secret-9876543210"
TENANTS = f"""
allow_anonymous = false
[[tenants]]
id = "acme"
secrets = ["{OLD_SECRET}", "{NEW_SECRET}"]
"""


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every call of hmac.compare_digest (which still decides), with what it compared."""
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tenants_module.hmac, "compare_digest", compare_digest)
    return seen


def test_secrets_are_compared_in_constant_time_against_every_digest(
    tmp_path: Path, comparisons: list[tuple[bytes, bytes]]
) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text(TENANTS)
    table = tenants_module.load(path)
    digest = {secret: hashlib.sha256(secret.encode()).digest() for secret in (OLD_SECRET, NEW_SECRET)}
    for secret, verdict in ((OLD_SECRET, ACCEPTED), (NEW_SECRET, ACCEPTED), ("not-the-secret-000000", WRONG_SECRET)):
        comparisons.clear()
        assert table.check("acme", secret, "203.0.113.1")[0] == verdict
        given = hashlib.sha256(secret.encode()).digest()
        # both digests, even when the first one matched: the time does not tell which did
        assert comparisons == [(given, digest[OLD_SECRET]), (given, digest[NEW_SECRET])]
    comparisons.clear()
    assert table.check("nobody", OLD_SECRET, "203.0.113.1")[0] == UNKNOWN_TENANT
    assert len(comparisons) == 1  # an unknown tenant costs a comparison too


@pytest.fixture
def writes_to(tmp_path: Path) -> Iterator[Callable[[Path], list[str]]]:
    """Records, while watching, every opening for writing, rename (from or onto it), removal or mode change of a
    file."""
    watched: dict[str, list[str]] = {}
    writing = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

    def named(arg: object) -> str:
        return os.path.realpath(arg) if isinstance(arg, str | os.PathLike) else ""

    def hook(event: str, args: tuple[object, ...]) -> None:
        if not watched or event not in ("open", "os.rename", "os.replace", "os.remove", "os.chmod", "os.truncate"):
            return
        # a rename's second argument is the file it lands on: an atomic save over the file writes it too
        paths = args[:2] if event in ("os.rename", "os.replace") else args[:1]
        target = next((name for name in map(named, paths) if name in watched), "")
        if not target:
            return
        if event == "open":
            mode, flags = args[1], args[2]
            if not (isinstance(flags, int) and flags & writing) and not (
                isinstance(mode, str) and set(mode) & set("wax+")
            ):
                return
        watched[target].append(event)

    sys.addaudithook(hook)  # cannot be removed: it does nothing once the test stops watching

    def watch(path: Path) -> list[str]:
        watched[named(path)] = []
        return watched[named(path)]

    yield watch
    watched.clear()


def test_the_tenants_file_is_read_never_written(
    tmp_path: Path, writes_to: Callable[[Path], list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text(TENANTS)
    written = writes_to(path)
    source = TenantSource(str(path))
    assert source.reload()
    assert not written
    path.write_text(TENANTS + '[[tenants]]\nid = "broken"\nsecret = "short"\n')  # the test's own write
    written.clear()
    assert not source.reload()  # refused: nothing is "repaired" in the file either
    import logging

    import structlog

    from ringback.cli import main

    saved, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    try:
        assert main(["config", "--tenants-file", str(path)]) in (0, 2)
    finally:  # the command points the log at this test's captured output, which closes with the test
        structlog.configure(**saved)
        logging.getLogger().handlers[:] = handlers
    capsys.readouterr()
    assert written == []
    assert path.read_text().endswith('secret = "short"\n')


def test_the_connection_cap_stays_below_the_descriptor_limit() -> None:
    """In a process whose descriptor limit (hard) leaves room for 512 connections besides
    RESERVED_DESCRIPTORS, a cap of 100,000 is lowered to those 512; a cap that fits is kept."""
    limit = RESERVED_DESCRIPTORS + 512
    probe = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
        from ringback.edge.connections import descriptor_budget
        print(descriptor_budget(100_000), descriptor_budget(50))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["512", "50"]

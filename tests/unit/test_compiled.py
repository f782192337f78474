"""The compiled hot modules: the build that runs is the one of the sources as they are, and compiled and
pure modules produce the same bytes."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ringback import compiled
from tests.conftest import REPO_ROOT

BUILT = compiled.manifest()
needs_build = pytest.mark.skipif(not BUILT, reason="hot modules not compiled here (no build): they run from source")


def probe(pure: bool) -> tuple[str, int, str]:
    env = {**os.environ, compiled.PURE_ENV: "1" if pure else "0"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.compiled_probe"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    mode, count, digest = done.stdout.split()
    return mode, int(count), digest


@needs_build
def test_the_build_covers_every_listed_module_and_is_current() -> None:
    assert sorted(BUILT) == sorted(compiled.hot_modules()), "`make venv` rebuilds after the list changed"
    assert compiled.stale_modules(BUILT) == [], "a hot module changed since the build: `make venv` rebuilds it"


@needs_build
def test_a_current_build_runs_compiled_in_this_process() -> None:
    if os.environ.get(compiled.PURE_ENV, "") not in ("", "0"):
        pytest.skip(f"{compiled.PURE_ENV} is set: this run is the pure one")
    assert compiled.mode == "compiled"
    for module in compiled.hot_modules():
        importlib.import_module(module)
        assert compiled.loaded_compiled(module), module


@needs_build
def test_compiled_and_pure_modules_give_the_same_bytes() -> None:
    compiled_run, pure_run = probe(pure=False), probe(pure=True)
    assert (compiled_run[0], pure_run[0]) == ("compiled", "pure")
    assert compiled_run[1] > 3000  # every sample callback normalized into events or refusals
    assert compiled_run[1:] == pure_run[1:]


def test_a_source_changed_since_the_build_is_found() -> None:
    module = compiled.hot_modules()[0]
    assert compiled.stale_modules({module: compiled.source_digest(module)}) == []
    assert compiled.stale_modules({module: "0" * 64}) == [module]
    assert compiled.stale_modules({"ringback.no_such_module": "0" * 64}) == ["ringback.no_such_module"]


def test_every_listed_module_exists_and_none_is_listed_twice() -> None:
    listed = compiled.hot_modules()
    assert len(listed) == len(set(listed))
    for module in listed:
        assert compiled.source_path(module).is_file(), module


def test_a_stale_build_runs_every_hot_module_from_source() -> None:
    """A manifest that disagrees with one source: the process says so and loads every listed module
    from its source, compiled or not."""
    module = compiled.hot_modules()[0]
    script = (
        "import json, sys\n"
        "from ringback import compiled\n"
        f"built = {{m: compiled.source_digest(m) for m in compiled.hot_modules()}}\n"
        f"built[{module!r}] = '0' * 64\n"
        "compiled.manifest = lambda: built\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_SourceFirst']\n"
        "print(compiled.choose())\n"
        "import importlib\n"
        "print(any(compiled.loaded_compiled(importlib.import_module(m).__name__) for m in compiled.hot_modules()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, compiled.PURE_ENV: "0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["pure", "False"]
    if BUILT:
        assert "not built from their source as it is now" in done.stderr


def test_an_extension_module_beside_any_source_is_found(tmp_path: Path) -> None:
    """What an older build left beside a module no longer listed is found, so it never runs unvouched."""
    package = tmp_path / "ringback"
    (package / "edge").mkdir(parents=True)
    for name in ("__init__.py", "edge/__init__.py", "edge/door.py", "edge/door.cpython-311-x86_64-linux-gnu.so"):
        (package / name).write_bytes(b"")
    (package / "edge" / "orphan.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")  # no source: not a module
    assert compiled.extension_modules(package) == ["ringback.edge.door"]

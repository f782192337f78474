"""Which of ringback's hot modules run compiled, and the guard that never lets a stale build run.

``make venv`` compiles the modules named in ``ringback/compiled_modules.txt`` with mypyc
(:mod:`ringback.tools.compile`); each gets an extension module beside its source, which Python's
import system prefers. The build writes a manifest of the sources it compiled (their SHA-256). At
start-up (``import ringback``) the manifest is checked against the sources as they are now:

- all equal: the compiled modules run;
- any source changed since the build, or ``RINGBACK_PURE_PYTHON=1``: every one of them runs from its
  source (the compiled modules call each other natively, so a mix is never loaded), and a changed source
  is reported once on standard error — rebuild with ``make venv``;
- no build (no compiler, or never built): the sources run, as they always may;
- an extension module the manifest does not name (an older build's): that module and every listed one
  run from source, and it is reported the same way.

The compiled and pure modules give the same results; a test compares their output byte for byte.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
MODULES_FILE = PACKAGE_DIR / "compiled_modules.txt"
MANIFEST_FILE = PACKAGE_DIR / "compiled_manifest.json"
PURE_ENV = "RINGBACK_PURE_PYTHON"


def hot_modules() -> list[str]:
    """The dotted names of the modules compiled when a compiler is at hand."""
    lines = MODULES_FILE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def source_path(module: str) -> Path:
    return PACKAGE_DIR.parent.joinpath(*module.split(".")).with_suffix(".py")


def source_digest(module: str) -> str:
    return hashlib.sha256(source_path(module).read_bytes()).hexdigest()


def manifest() -> dict[str, str]:
    """Module -> SHA-256 of the source the build compiled ({} when there is no build)."""
    try:
        loaded = json.loads(MANIFEST_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def stale_modules(built: dict[str, str]) -> list[str]:
    """The built modules whose source changed since the build (or is gone)."""
    stale = []
    for module, digest in built.items():
        try:
            if source_digest(module) != digest:
                stale.append(module)
        except OSError:
            stale.append(module)
    return stale


def extension_modules(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Every module of the package that has an extension module beside its source."""
    found = []
    for extension in package_dir.rglob("*.so"):
        source = extension.with_name(extension.name.split(".", 1)[0] + ".py")
        if source.is_file():
            found.append(".".join(source.relative_to(package_dir.parent).with_suffix("").parts))
    return sorted(found)


class _SourceFirst:
    """Finds the listed modules' sources, passing over the extension modules beside them (a meta path
    finder by its ``find_spec``: importlib.abc, its base class, costs 20 ms of every process's start)."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = frozenset(modules)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname))


#: How this process runs the hot modules: "compiled", "pure" (asked for, stale, or not built).
mode = "pure"


def choose() -> str:
    """Decide, once per process and before any hot module is imported, compiled or pure."""
    global mode
    built = manifest()
    # An extension module no manifest vouches for (left by an older build, or copied in) never runs.
    stale = stale_modules(built) + [m for m in extension_modules() if m not in built]
    if not built and not stale:
        mode = "pure"
        return mode
    if stale:
        print(
            f"ringback: {len(stale)} compiled module(s) not built from their source as it is now "
            f"({', '.join(stale[:3])}): running every hot module from source; `make venv` rebuilds them",
            file=sys.stderr,
        )
    if stale or os.environ.get(PURE_ENV, "") not in ("", "0"):
        sys.meta_path.insert(0, _SourceFirst([*built, *stale]))
        mode = "pure"
    else:
        mode = "compiled"
    return mode


def loaded_compiled(module: str) -> bool:
    """Whether ``module`` (imported) runs from its extension module."""
    spec = sys.modules[module].__spec__
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)

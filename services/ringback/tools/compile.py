"""Compile ringback's hot modules with mypyc (``make venv`` runs this; best effort).

``python -m ringback.tools.compile`` builds one extension module per module listed in
``ringback/compiled_modules.txt``, beside its source, and writes the manifest that
:mod:`ringback.compiled` checks at start-up. Without a C compiler or Python's headers it removes any
earlier build, says so in one line and exits 0: ringback then runs every module from source, only
slower. ``--clean`` removes the build; ``--strict`` exits 1 when the build fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ringback import compiled

#: One shared library for the group (the compiled modules call each other natively through it).
GROUP = "ringback_compiled"
SERVICES_DIR = compiled.PACKAGE_DIR.parent
#: mypyc's optimisation level (the C compiler's -O): 2 builds in about half the time of 3 and runs as fast here.
OPT_LEVEL = "2"


def built_files() -> list[Path]:
    """Every extension module an earlier build left, of modules listed now or before (the package has
    no other), and the group's shared library."""
    return [*SERVICES_DIR.glob(f"{GROUP}__mypyc*.so"), *compiled.PACKAGE_DIR.rglob("*.so")]


def clean() -> None:
    compiled.MANIFEST_FILE.unlink(missing_ok=True)
    for path in built_files():
        path.unlink(missing_ok=True)


def build() -> None:
    """Compile into a scratch folder, then move the extension modules beside their sources."""
    from mypyc.build import mypycify  # a build-time dependency only: imported when building
    from setuptools import setup

    modules = compiled.hot_modules()
    digests = {module: compiled.source_digest(module) for module in modules}
    paths = [str(compiled.source_path(module).relative_to(SERVICES_DIR)) for module in modules]
    with tempfile.TemporaryDirectory(prefix="ringback-compile-") as scratch:
        cwd = Path.cwd()
        os.chdir(SERVICES_DIR)  # mypyc names modules by their path from here
        try:
            extensions = mypycify(
                paths, opt_level=OPT_LEVEL, multi_file=True, group_name=GROUP, target_dir=str(Path(scratch) / "c")
            )
            setup(
                name=GROUP,
                ext_modules=extensions,
                script_args=[
                    "--quiet",
                    "build_ext",
                    "--build-lib",
                    str(Path(scratch) / "lib"),
                    "--build-temp",
                    str(Path(scratch) / "tmp"),
                ],
            )
        finally:
            os.chdir(cwd)
        clean()
        for built in (Path(scratch) / "lib").rglob("*.so"):
            destination = SERVICES_DIR / built.relative_to(Path(scratch) / "lib")
            shutil.move(str(built), destination)
    compiled.MANIFEST_FILE.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ringback.tools.compile", description=__doc__.split("\n")[0])
    parser.add_argument("--clean", action="store_true", help="Remove the build: every module runs from source.")
    parser.add_argument("--strict", action="store_true", help="Exit 1 when the build fails.")
    args = parser.parse_args(argv)
    if args.clean:
        clean()
        return 0
    try:
        build()
    except (Exception, SystemExit) as exc:  # setuptools reports a missing compiler as SystemExit
        clean()
        print(f"ringback: hot modules not compiled ({type(exc).__name__}: {exc}); running from source", file=sys.stderr)
        return 1 if args.strict else 0
    print(f"ringback: {len(compiled.hot_modules())} hot modules compiled with mypyc", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

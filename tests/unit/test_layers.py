"""The house's floors: every module of ringback imports only from its own layer or those below it, the
roles (edge, normalizer, sink, consumer kit) never from one another, and no modules import each other
in a circle. Read from the source with ``ast`` (imports inside functions count too)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SOURCE = REPO_ROOT / "services"
#: From the ground up; a module belongs to the first layer one of whose prefixes it starts with.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "ground",
        (
            "ringback.compiled",
            "ringback.config",
            "ringback.logs",
            "ringback.metrics",
            "ringback.rates",
            "ringback.routes",
            "ringback.normalized_event",
        ),
    ),
    ("runtime", ("ringback.runtime",)),
    ("roles", ("ringback.edge", "ringback.normalizer", "ringback.sink", "ringback.consumer")),
    ("running", ("ringback.supervisor", "ringback.sql")),
    (
        "operations",
        ("ringback.pipeline_status", "ringback.replay", "ringback.reconcile", "ringback.audit"),
    ),
    ("tools", ("ringback.tools",)),
    ("command line", ("ringback.cli", "ringback.__main__")),
)
ROLES = ("ringback.edge", "ringback.normalizer", "ringback.sink", "ringback.consumer")


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every ringback import in ``path``, relative ones resolved."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: str) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base]).strip(".")
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "ringback" or name.startswith("ringback."):
                yield node.lineno, name


def owner(name: str, prefixes: tuple[str, ...]) -> str | None:
    return next((p for p in prefixes if name == p or name.startswith(p + ".")), None)


def layer(name: str) -> int | None:
    for index, (_, prefixes) in enumerate(LAYERS):
        if owner(name, prefixes):
            return index
    return None


MODULES = {module_name(path): path for path in sorted((SOURCE / "ringback").rglob("*.py"))}


def known(name: str) -> str:
    """The module an imported name lives in (``from pkg import mod`` names a module; ``from mod import x`` not)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def test_every_module_is_on_a_floor() -> None:
    assert [name for name in MODULES if name != "ringback" and layer(name) is None] == []


def test_no_module_imports_from_a_floor_above_its_own() -> None:
    upward = [
        f"{path.relative_to(SOURCE)}:{line} {module} ({LAYERS[layer(module) or 0][0]}) imports {target} "
        f"({LAYERS[layer(target) or 0][0]})"
        for module, path in MODULES.items()
        for line, name in imports(path)
        if (target := known(name)) and (layer(target) or 0) > (layer(module) or 0)
    ]
    assert upward == []


def test_the_roles_do_not_import_one_another() -> None:
    across = [
        f"{path.relative_to(SOURCE)}:{line} imports {name}"
        for module, path in MODULES.items()
        if (mine := owner(module, ROLES))
        for line, name in imports(path)
        if (theirs := owner(name, ROLES)) and theirs != mine
    ]
    assert across == []


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk of ``graph`` (module -> the modules it imports) runs into."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the walk's path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_no_modules_import_each_other_in_a_circle() -> None:
    graph = {
        module: {target for _, name in imports(path) if (target := known(name)) and target != module}
        for module, path in MODULES.items()
    }
    assert circles(graph) == []


def test_the_check_sees_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


@pytest.mark.parametrize(
    "source",
    [
        "import ringback.edge.journal",
        "from ringback.edge import journal",
        "from ..edge.journal import Journal",
        "def later():\n    from ringback.edge.journal import Journal",
    ],
)
def test_the_check_sees_an_import_upward_in_any_spelling(source: str) -> None:
    ((_, name),) = imports_in(source, "ringback.runtime")
    assert known(name) == "ringback.edge.journal"
    assert (layer(known(name)) or 0) > (layer("ringback.runtime.raw") or 0)

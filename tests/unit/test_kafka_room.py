"""aiokafka stays in its room: no module of ringback imports the Kafka client except the backend's Kafka
implementation (:mod:`ringback.runtime.kafka`); everything above it sees the protocols of
:mod:`ringback.runtime.stream.backend` and the broker errors by ringback's names. Checked on the source
itself, every module, every import (also inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
PACKAGE = SERVICES / "ringback"
CLIENT = "aiokafka"
#: The one implementation of the backend.
ALLOWED = {"ringback/runtime/kafka.py"}
#: The billing-job consumer kit (``ringback.consumer``) is a standalone kit jobs run on their own: it
#: keeps its own adapter on aiokafka, in one module.
ALLOWED_UNDER = ("ringback/consumer/kafka.py",)


def is_client(name: str | None) -> bool:
    return name is not None and (name == CLIENT or name.startswith(CLIENT + "."))


def client_imports(tree: ast.AST) -> list[int]:
    """Lines that import the client: ``import``, ``from … import``, ``__import__``/``import_module``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module] if node.level == 0 else []
        else:
            names = []
        if any(is_client(name) for name in names):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if called in ("__import__", "import_module") and is_client(str(node.args[0].value)):
                lines.append(node.lineno)
    return sorted(lines)


def allowed(module: str) -> bool:
    return module in ALLOWED or module.startswith(ALLOWED_UNDER)


def test_only_the_kafka_backend_imports_the_client() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50  # the walk found the package
    found = {
        module: lines
        for path in modules
        if not allowed(module := path.relative_to(SERVICES).as_posix())
        and (lines := client_imports(ast.parse(path.read_text(), str(path))))
    }
    assert not found, f"{CLIENT} imported outside runtime/kafka.py (module: lines): {found}"


def test_the_walk_sees_every_kind_of_import() -> None:
    source = """
import aiokafka.errors as errors
def later():
    from aiokafka import AIOKafkaProducer
    return __import__("aiokafka")
from aiokafkaesque import nothing
from . import aiokafka
"""
    assert client_imports(ast.parse(source)) == [2, 4, 5]

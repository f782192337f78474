"""One walk over a parsed JSON document: how deep it nests, how many keys it holds, whether it has
binary floats, and which objects give one field twice with different values.

A field is given twice when two keys of one object are equal but for letter case (``oriamount`` /
``OriAmount``) or, once trimmed, surrounding whitespace (``stateDesc`` / ``" stateDesc "``). The same
value under both spellings is harmless; different values are an ``Ambiguity``, located by its path
from the document's root so that an adapter can reject exactly the report that holds it. (Exact
duplicate keys never reach a parsed dict; ``jsonbody`` finds those.)

The walk is iterative, so no document can exhaust Python's recursion limit here, and refuses
documents nested deeper than ``MAX_DEPTH`` before anything else recurses into them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ringback.normalizer.outcome import Rejected

#: Vendor bodies nest three or four levels; nothing readable is deeper. Keeps every later step that
#: recurses (orjson's serializer stops at 254 levels, ``json.loads`` at Python's recursion limit) safe.
MAX_DEPTH = 64
JSON_WHITESPACE = " \t\r\n"

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Ambiguity:
    path: Path  # the object holding the field, from the document's root
    field: str

    def under(self, prefix: Path) -> bool:
        return self.path[: len(prefix)] == prefix

    def rejected(self) -> Rejected:
        return Rejected(
            "ambiguous_field", f"{self.field!r} is given more than once with different values (in {where(self.path)})"
        )


def too_deep() -> Rejected:
    return Rejected("invalid_json", f"body is not valid JSON: nested deeper than {MAX_DEPTH} levels")


def where(path: Path) -> str:
    """A JSONPath: ``$.cdr[1].ext`` for ("cdr", 1, "ext"), ``$`` for the root."""
    return "$" + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)


@dataclass(slots=True)
class Shape:
    keys: int = 0  # keys of every object, as parsed (before trimming merged any)
    has_float: bool = False
    trimmed: bool = False  # some key lost surrounding whitespace
    ambiguities: list[Ambiguity] = field(default_factory=list)


def inspect(root: Any, conflicts: dict[int, tuple[dict[str, Any], list[str]]] | None = None) -> Shape:
    """Walk ``root``, trimming object keys in place. ``conflicts``: objects already known to repeat a
    key with different values (by ``id``), from a parser that sees every pair."""
    shape = Shape()
    keys, has_float = 0, type(root) is float
    pending: list[tuple[Any, Path]] = [(root, ())] if type(root) is dict or type(root) is list else []
    while pending:
        node, path = pending.pop()
        if len(path) >= MAX_DEPTH:
            raise too_deep()
        if type(node) is dict:
            keys += len(node)
            # Keys in lower case without whitespace (the common case) cannot be another key's spelling;
            # asked of all of them joined, at C speed.
            joined = "".join(node)
            padded = " " in joined or "\t" in joined or "\n" in joined or "\r" in joined
            if conflicts or padded or joined.lower() != joined:
                _settle(node, path, shape, conflicts, padded)
            kinds = set(map(type, node.values()))
            steps: Iterable[Any] = node
        else:
            kinds = set(map(type, node))
            steps = range(len(node))
        if float in kinds:
            has_float = True
        if dict in kinds or list in kinds:
            for step in steps:
                child = node[step]
                if type(child) is dict or type(child) is list:
                    pending.append((child, (*path, step)))
    shape.keys, shape.has_float = keys, has_float
    return shape


def _settle(
    obj: dict[str, Any],
    path: Path,
    shape: Shape,
    conflicts: dict[int, tuple[dict[str, Any], list[str]]] | None,
    padded: bool,
) -> None:
    trimmed, fields = settle_keys(obj, padded)
    if conflicts and id(obj) in conflicts:
        fields = [*conflicts[id(obj)][1], *fields]
    shape.trimmed |= trimmed
    shape.ambiguities += [Ambiguity(path, name) for name in dict.fromkeys(fields)]


def settle_keys(obj: dict[str, Any], padded: bool = True) -> tuple[bool, list[str]]:
    """Trim ``obj``'s keys and compare keys equal but for letter case or surrounding whitespace.

    Returns whether a key was trimmed, and the fields given twice with different values. Spellings
    that differ only in case are all kept (an adapter reading one exact name still finds it); keys
    equal once trimmed become one. ``padded``: False when no key holds whitespace at all.
    """
    names = [key.strip(JSON_WHITESPACE) for key in obj] if padded else list(obj)
    trimmed = padded and names != list(obj)
    if not trimmed and len(set(map(str.lower, names))) == len(names):
        return False, []
    kept: dict[str, Any] = {}
    first_by_fold: dict[str, str] = {}
    conflicting: list[str] = []
    for name, value in zip(names, obj.values(), strict=True):
        first = first_by_fold.setdefault(name.lower(), name)
        if name in kept or first != name:
            if not same_json(kept[first], value) and first not in conflicting:
                conflicting.append(first)
            if name in kept:
                continue  # equal once trimmed: one key
        kept[name] = value
    if trimmed:
        obj.clear()
        obj.update(kept)
    return trimmed, conflicting


def same_json(a: Any, b: Any) -> bool:
    """The same JSON value: same types (``1`` is not ``"1"``, nor ``true``, nor ``1.0``), same content."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if type(x) is not type(y):
            return False
        if type(x) is dict:
            if x.keys() != y.keys():
                return False
            pending.extend((x[key], y[key]) for key in x)
        elif type(x) is list:
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif x != y:
            return False
    return True

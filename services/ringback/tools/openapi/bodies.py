"""The request bodies of every route, from the ``<format>_schema`` modules beside the adapters."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

from ringback.normalizer import adapters
from ringback.normalizer.adapters.schema_parts import Schema, VendorFormat
from ringback.routes import ROUTES, Route

SCHEMA_MODULE_SUFFIX = "_schema"


class UndocumentedRoute(LookupError):
    """A route of the table has no vendor format beside its adapter."""


class ConflictingBodies(RuntimeError):
    """Two schema modules describe the same route, or name two schemas alike."""


@dataclass(frozen=True)
class Bodies:
    formats: dict[str, VendorFormat]  # by route name
    owners: dict[str, ModuleType]  # the schema module of each route


def schema_modules() -> list[ModuleType]:
    return [
        importlib.import_module(f"{adapters.__name__}.{info.name}")
        for info in pkgutil.iter_modules(adapters.__path__)
        if info.name.endswith(SCHEMA_MODULE_SUFFIX)
    ]


@lru_cache(maxsize=1)
def bodies() -> Bodies:
    formats: dict[str, VendorFormat] = {}
    owners: dict[str, ModuleType] = {}
    for module in schema_modules():
        for route_name, fmt in module.FORMATS.items():
            if route_name in formats:
                raise ConflictingBodies(f"route {route_name!r} described by {owners[route_name].__name__} and {module}")
            formats[route_name] = fmt
            owners[route_name] = module
    return Bodies(formats, owners)


def vendor_format(route: Route) -> VendorFormat:
    try:
        return bodies().formats[route.name]
    except KeyError:
        raise UndocumentedRoute(
            f"route {route.name!r} has no vendor format in a {adapters.__name__}.<format>{SCHEMA_MODULE_SUFFIX} module"
        ) from None


def vendor_schemas(routes: tuple[Route, ...] = ROUTES) -> dict[str, Schema]:
    """The body schemas grouped by vendor (tag) in the order the tags come, each group in route order."""
    found = bodies()
    tags = list(dict.fromkeys(vendor_format(route).tag for route in routes))
    schemas: dict[str, Schema] = {}
    seen: set[str] = set()
    for route in sorted(routes, key=lambda route: tags.index(vendor_format(route).tag)):
        module = found.owners[route.name]
        if module.__name__ in seen:
            continue
        seen.add(module.__name__)
        for name, schema in module.SCHEMAS.items():
            if name in schemas:
                raise ConflictingBodies(f"schema {name!r} named twice (again in {module.__name__})")
            schemas[name] = schema
    return schemas

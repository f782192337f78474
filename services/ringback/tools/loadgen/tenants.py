"""Whom the generator sends as: tenants from the command line or a tenants file, checked as the edge checks them."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

from ringback.tools.loadgen.parties import Tenant


def tenants_for(ids: Sequence[str], secrets: Sequence[str], tenants_file: str = "") -> tuple[list[Tenant], list[str]]:
    """The tenants to send as, and the ids of those skipped: ``--tenant``/``--secret`` pairs if given,
    else every tenant of the tenants file with a plain secret (one kept only as a digest has no URL we
    can build), else none (the tenant-less routes). Raises ValueError with a message for the user."""
    if ids or secrets:
        if len(ids) != len(secrets):
            raise ValueError(f"give one --secret per --tenant ({len(ids)} tenants, {len(secrets)} secrets)")
        return [tenant(tenant_id, secret) for tenant_id, secret in zip(ids, secrets, strict=True)], []
    if not tenants_file:
        return [], []
    usable, skipped = tenants_from_file(tenants_file)
    if not usable:
        raise ValueError(f"no tenant of {tenants_file} has a plain secret (secret or secrets) to build its URLs from")
    return usable, skipped


def tenants_from_file(path: str | Path) -> tuple[list[Tenant], list[str]]:
    """(tenants with a plain secret, the first of their list; ids of those with only a digest). The file
    is checked as the edge checks it, so a file the edge would refuse is refused here too."""
    from ringback.edge import tenants as edge_tenants

    edge_tenants.load(Path(path))
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    usable, skipped = [], []
    for entry in data.get("tenants", []):
        secrets = [entry["secret"]] if "secret" in entry else list(entry.get("secrets", []))
        if secrets:
            usable.append(Tenant(entry["id"], secrets[0]))
        else:
            skipped.append(entry["id"])
    return usable, skipped


def tenant(tenant_id: str, secret: str) -> Tenant:
    """A tenant from the command line, checked as the edge would (id pattern, secret usable in a URL)."""
    from ringback.edge.tenants import TENANT_ID

    if not TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} must match [a-z0-9_-]{{1,64}}")
    if not secret or "/" in secret or secret != secret.strip():
        raise ValueError(f"the secret of tenant {tenant_id!r} must be non-empty, without '/' or surrounding spaces")
    return Tenant(tenant_id, secret)

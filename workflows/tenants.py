"""Which instances belong to one city (a tenant). Grid codes follow GB/T 2260: the first four digits
name the prefecture-level city (two for the province, two for the city), so 320703001000001 is a
grid of 320700, and every instance scoped to one of its grids starts with "3207". A signal thrown by
an instance reaches the waiting instances of its own city only (engine.signals)."""

from __future__ import annotations

from engine.visibility import Viewer

CITY_DIGITS = 4


def tenant_prefix(scope: str | None) -> str | None:
    """The scope prefix shared by every instance of the city `scope` lies in; None for no scope."""
    if scope is None:
        return None
    head = scope[:CITY_DIGITS]
    return head if len(head) == CITY_DIGITS and head.isdigit() else scope


def works_in(viewer: Viewer, tenant: str) -> bool:
    """Whether the viewer works in the city `tenant`: everyone who sees everything, and staff whose
    scope lies in that city (a grid of it) or contains it (a province)."""
    if viewer.sees_all:
        return True
    if not viewer.scope:
        return False
    city = tenant_prefix(tenant) or tenant
    return viewer.scope.startswith(city) or city.startswith(viewer.scope)

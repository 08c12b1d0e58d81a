"""The principal a request acts for: an agency system (OAuth2 client) or a person with an account.

Every route of every service runs for exactly one principal, put into ``request.state.principal`` by the
authentication dependency (``huhang.auth``) before the route runs. Routes and policies read it with
``Depends(current_principal)``. Principals carry ids and codes only: never a name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from fastapi import HTTPException, Request

from contracts.agencies import Agency


class Role(StrEnum):
    child_director = "child_director"  # 儿童主任: a village's children
    agency_officer = "agency_officer"  # works an agency's inbox and cases
    supervisor = "supervisor"  # an agency's or a township's supervisor: sees and reassigns its unit's work
    auditor = "auditor"  # reads everything for audit, changes nothing
    administrator = "administrator"  # manages accounts and clients
    system = "system"  # the platform's own workers (router, sweeps, care checks) calling its APIs


PrincipalKind = Literal["client", "person"]


@dataclass(frozen=True)
class Principal:
    subject: str  # the client id or the account id (pseudonymous: never a name)
    kind: PrincipalKind
    agency: Agency
    roles: frozenset[Role] = field(default_factory=frozenset)
    township: str | None = None  # the area the principal works in, when bound to one
    village: str | None = None

    def has(self, *roles: Role) -> bool:
        return any(role in self.roles for role in roles)


def current_principal(request: Request) -> Principal:
    """The principal of this request (FastAPI dependency). 401 when the request was not authenticated."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise HTTPException(status_code=401, detail="authentication required", headers={"WWW-Authenticate": "Bearer"})
    return principal

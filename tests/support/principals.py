"""The principals the authorization tests act as, and the one place that turns a principal into request headers.

Requests carry real bearer tokens minted with the app's own key ring (tests/support/auth.py): nothing of the
authentication or the authorization is bypassed.
"""

from __future__ import annotations

from fastapi import FastAPI

from contracts.agencies import Agency
from huhang.auth.principal import Principal, Role
from tests.support.auth import SYSTEM, bearer

TOWNSHIP = "虹桥镇"
VILLAGE = "溪西村"
OTHER_VILLAGE = "溪东村"


def person(name: str, agency: Agency, *roles: Role, township: str | None = None,
           village: str | None = None) -> Principal:
    return Principal(f"acct-{name}", "person", agency, frozenset(roles or {Role.agency_officer}), township, village)


def system_client(name: str, agency: Agency) -> Principal:
    """An agency's own system (OAuth2 client credentials)."""
    return Principal(f"client-{name}", "client", agency, frozenset({Role.agency_officer}))


AUDITOR = person("auditor", Agency.justice, Role.auditor)
ADMINISTRATOR = person("admin", Agency.civil_affairs, Role.administrator)
LEAD_OFFICER = person("ca-officer", Agency.civil_affairs)
LEAD_SUPERVISOR = person("ca-supervisor", Agency.civil_affairs, Role.supervisor)
WCWC_OFFICER = person("wcwc-officer", Agency.wcwc)
POLICE_OFFICER = person("police-officer", Agency.police)
POLICE_SYSTEM = system_client("police", Agency.police)
HRSS_OFFICER = person("hrss-officer", Agency.hrss)
EDUCATION_OFFICER = person("education-officer", Agency.education)
JUSTICE_OFFICER = person("justice-officer", Agency.justice)
TOWNSHIP_OFFICER = person("township-officer", Agency.township, township=TOWNSHIP)
CHILD_DIRECTOR = person("director", Agency.village, Role.child_director, township=TOWNSHIP, village=VILLAGE)
OTHER_CHILD_DIRECTOR = person(
    "other-director", Agency.village, Role.child_director, township=TOWNSHIP, village=OTHER_VILLAGE
)

EVERYONE: dict[str, Principal] = {
    "system": SYSTEM,
    "auditor": AUDITOR,
    "administrator": ADMINISTRATOR,
    "lead_officer": LEAD_OFFICER,
    "lead_supervisor": LEAD_SUPERVISOR,
    "wcwc_officer": WCWC_OFFICER,
    "police_officer": POLICE_OFFICER,
    "police_system": POLICE_SYSTEM,
    "hrss_officer": HRSS_OFFICER,
    "education_officer": EDUCATION_OFFICER,
    "justice_officer": JUSTICE_OFFICER,
    "township_officer": TOWNSHIP_OFFICER,
    "child_director": CHILD_DIRECTOR,
    "other_child_director": OTHER_CHILD_DIRECTOR,
}


def as_(app: FastAPI, principal: Principal) -> dict[str, str]:
    """The headers of a request made as ``principal``."""
    return bearer(app, principal)

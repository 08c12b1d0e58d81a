"""Need-to-know, as pure functions: may this principal see or change this case, this child, this inbox?

The rules (issue 5, "Who may do what"):
- the platform's own workers (``system``) and ``auditor`` see everything; auditors never write;
- the lead agency (``civil_affairs``) and the supervising agencies (``wcwc``) see every case;
- an agency sees a case while it holds, or after it held, a referral on it that was not rejected, cancelled or
  entered in error (access follows referral state: a rejected referral removes it; a completed one keeps it);
  a child's file is seen through any of the child's cases;
- a township or village principal (or a child director) sees the children of its area: a township its villages,
  a village or child director its own village;
- a person holding an open break-the-glass grant on the case sees it until the grant expires or is found not
  justified.

What is data here is kept as data (the sets below); the functions only combine them. Nothing here reads a
database: the facts come from ``huhang.access.case_access`` and the clock from the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from contracts.agencies import LEAD_AGENCY, OUTSIDE_GOVERNMENT, SUPERVISING_AGENCIES, Agency
from contracts.vocabulary import ReferralStatus
from huhang.auth.principal import Principal, Role

# Roles that see every case and child.
SEE_ALL_ROLES = frozenset({Role.system, Role.auditor})
# Agencies that see every case and child: the lead and the supervising agencies.
SEE_ALL_AGENCIES = frozenset({LEAD_AGENCY, *SUPERVISING_AGENCIES})
# Roles that work cases: every access but the unconditional roles' needs one of them, so that an administrator
# (who manages accounts) sees no child's data, even in the lead agency.
CASE_ROLES = frozenset({Role.agency_officer, Role.supervisor, Role.child_director})
# Roles that may change case data (a principal needs one of them, besides access). Auditors read only;
# administrators manage accounts, not cases.
WRITE_ROLES = frozenset({Role.system, Role.agency_officer, Role.supervisor, Role.child_director})
# Roles that read the access log and the break-glass register.
OVERSIGHT_ROLES = frozenset({Role.system, Role.auditor})
# Agencies whose principals are bound to an area and see the children living in it.
AREA_AGENCIES = frozenset({Agency.township, Agency.village})
AREA_ROLES = frozenset({Role.child_director})
# Referral statuses that do not give (or no longer give) access to the case.
NO_ACCESS_STATUSES = frozenset({ReferralStatus.rejected, ReferralStatus.cancelled, ReferralStatus.entered_in_error})
# Who keeps the child-director roster (appointments, departures, training): civil affairs and the townships.
ROSTER_AGENCIES = frozenset({Agency.civil_affairs, Agency.township})
# Who reviews break-the-glass access: a supervisor of the lead agency.
BREAK_GLASS_REVIEWER_AGENCY = LEAD_AGENCY
BREAK_GLASS_REVIEWER_ROLES = frozenset({Role.supervisor})


class Basis(StrEnum):
    """Why access was allowed (or that it was not): recorded in the access log as the outcome."""

    role = "role"
    agency = "agency"  # lead or supervising agency
    referral = "referral"
    area = "area"
    own_agency = "own_agency"
    break_glass = "break-glass"
    denied = "denied"


@dataclass(frozen=True)
class Decision:
    basis: Basis

    @property
    def allowed(self) -> bool:
        return self.basis is not Basis.denied

    @property
    def outcome(self) -> str:
        """The access log's outcome: allowed, denied or break-glass."""
        if self.basis is Basis.denied:
            return "denied"
        return "break-glass" if self.basis is Basis.break_glass else "allowed"


DENIED = Decision(Basis.denied)


@dataclass(frozen=True)
class Grant:
    """An open break-the-glass grant: who holds it and until when."""

    grant_id: UUID
    subject: str
    expires_at: datetime


@dataclass(frozen=True)
class RecordFacts:
    """What the policy needs to know about a case, or about a child across all of the child's cases."""

    township: str | None = None
    village: str | None = None
    holding_agencies: frozenset[str] = frozenset()  # agencies holding or having held a granting referral
    grants: tuple[Grant, ...] = field(default=())


def sees_everything(principal: Principal) -> Decision | None:
    """The unconditional part of the policy: roles and agencies that see every record; ``DENIED`` for a principal
    with no role that works cases; ``None`` when it depends on the record. Organisations outside government
    (charities) see no case, child or agency queue here: only what a relief match shows them (issue 10)."""
    if principal.agency in OUTSIDE_GOVERNMENT:
        return DENIED
    if principal.has(*SEE_ALL_ROLES):
        return Decision(Basis.role)
    if not principal.has(*CASE_ROLES):
        return DENIED
    if principal.agency in SEE_ALL_AGENCIES:
        return Decision(Basis.agency)
    return None


def is_area_bound(principal: Principal) -> bool:
    return principal.agency in AREA_AGENCIES or principal.has(*AREA_ROLES)


def area_covers(principal: Principal, township: str | None, village: str | None) -> bool:
    """A township principal covers its villages; a village principal or child director its own village."""
    if not is_area_bound(principal) or principal.township is None or township is None:
        return False
    if principal.township != township:
        return False
    if principal.village is not None:
        return principal.village == village
    # A child director must be bound to a village; a township principal covers the whole township.
    return not principal.has(*AREA_ROLES) or principal.agency is Agency.township


def may_read(principal: Principal, facts: RecordFacts | None, now: datetime) -> Decision:
    """May the principal see the case (or the child) these facts describe? ``None``: not known (yet)."""
    unconditional = sees_everything(principal)
    if unconditional is not None:
        return unconditional
    if facts is None:
        return DENIED
    if principal.agency.value in facts.holding_agencies:
        return Decision(Basis.referral)
    if area_covers(principal, facts.township, facts.village):
        return Decision(Basis.area)
    if any(g.subject == principal.subject and g.expires_at > now for g in facts.grants):
        return Decision(Basis.break_glass)
    return DENIED


def may_write(principal: Principal, facts: RecordFacts | None, now: datetime) -> Decision:
    """Changing a case or child needs a writing role and access to it."""
    if not principal.has(*WRITE_ROLES):
        return DENIED
    return may_read(principal, facts, now)


def may_create(principal: Principal) -> Decision:
    """Filing a report or registering a child concerns no record the principal could already be denied."""
    return Decision(Basis.role) if principal.has(*WRITE_ROLES) else DENIED


def may_read_agency_queue(principal: Principal, agency: Agency) -> Decision:
    """An agency's inbox and notification feed: its own, or any for those who see everything."""
    unconditional = sees_everything(principal)
    if unconditional is not None:
        return unconditional
    return Decision(Basis.own_agency) if principal.agency is agency else DENIED


def may_act_for(principal: Principal, agency: Agency) -> bool:
    """A command names the acting agency: it must be the caller's own (the platform's workers act for any)."""
    return principal.has(Role.system) or principal.agency is agency


def may_search_area(principal: Principal, township: str | None) -> tuple[Decision, str | None]:
    """Searches over children (e.g. probable duplicates): everything for those who see everything; an area-bound
    principal only its own township (the filter is forced to it). Returns the decision and the township filter."""
    unconditional = sees_everything(principal)
    if unconditional is not None:
        return unconditional, township
    if is_area_bound(principal) and principal.township is not None:
        if township is not None and township != principal.township:
            return DENIED, township
        return Decision(Basis.area), principal.township
    return DENIED, township


def may_oversee(principal: Principal) -> Decision:
    """The access log and the break-glass register: the lead agency, auditors and the platform."""
    if principal.has(*OVERSIGHT_ROLES):
        return Decision(Basis.role)
    if principal.agency is LEAD_AGENCY and principal.has(*CASE_ROLES):
        return Decision(Basis.agency)
    return DENIED


def may_review_break_glass(principal: Principal) -> bool:
    return principal.agency is BREAK_GLASS_REVIEWER_AGENCY and principal.has(*BREAK_GLASS_REVIEWER_ROLES)


def may_break_glass(principal: Principal) -> bool:
    """Break-the-glass is for people who work cases; not for auditors, administrators or machine clients."""
    return (principal.kind == "person" and principal.agency not in OUTSIDE_GOVERNMENT
            and principal.has(Role.agency_officer, Role.supervisor, Role.child_director))


def may_run_platform_jobs(principal: Principal) -> bool:
    """The router's open-referrals call, the sweeps and the daily re-derivation: the platform's workers only."""
    return principal.has(Role.system)


def may_keep_roster(principal: Principal) -> Decision:
    if principal.has(Role.system):
        return Decision(Basis.role)
    if principal.agency in ROSTER_AGENCIES and principal.has(Role.agency_officer, Role.supervisor):
        return Decision(Basis.agency)
    return DENIED


def may_read_roster(principal: Principal) -> Decision:
    """The child-director roster (names, phone numbers, their children): whoever keeps it or oversees it, and the
    area's own people (township and village); not other agencies."""
    unconditional = sees_everything(principal)
    if unconditional is not None:
        return unconditional
    if principal.agency in ROSTER_AGENCIES or is_area_bound(principal):
        return Decision(Basis.agency)
    return DENIED


def holding_agencies(referrals: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The agencies that hold or held a granting referral, from (agency, status) pairs."""
    return frozenset(agency for agency, status in referrals if status not in NO_ACCESS_STATUSES)


def may_match_relief(principal: Principal) -> Decision:
    """Matching needs to relief and charity services, approving matches (issue 10): the lead agency's officers
    and supervisors, and the platform's workers."""
    if principal.has(Role.system):
        return Decision(Basis.role)
    if principal.agency is LEAD_AGENCY and principal.has(Role.agency_officer, Role.supervisor):
        return Decision(Basis.agency)
    return DENIED

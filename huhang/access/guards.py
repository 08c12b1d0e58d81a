"""The FastAPI dependencies that enforce need-to-know on every route reading or changing a case or a child.

A route declares what it touches (``CaseReader``, ``ChildWriter``, ``AgencyQueue``...); the dependency
authenticates (the same dependency the app puts on every router: FastAPI runs it once per request), asks the
policy (``huhang.access.policy``) with the facts of the case-access read model, records the access in the access
log and, when refused, answers **403** problem+json (type ``urn:huhang:problem:forbidden``).

403, not 404: case and child ids are random UUIDs that reach a caller only through a referral, a notification or
a report it filed, so confirming that one exists tells little; and an officer refused in an emergency must learn
that the case exists to break the glass (``POST /v1/cases/{case_id}/break-glass``). Records not known to the
read model (yet) are refused to everyone but those who see everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from contracts.agencies import LEAD_AGENCY, OUTSIDE_GOVERNMENT, SUPERVISING_AGENCIES, Agency
from contracts.vocabulary import AccessPurpose
from huhang.access.access_log import AccessEntry, AccessLog
from huhang.access.case_access import CaseAccess
from huhang.access.disclosure import AnswerKind, View, redact
from huhang.access.policy import (
    AREA_AGENCIES,
    CASE_ROLES,
    DENIED,
    Basis,
    Decision,
    RecordFacts,
    holding_agencies,
    may_act_for,
    may_create,
    may_keep_roster,
    may_match_relief,
    may_oversee,
    may_read,
    may_read_agency_queue,
    may_read_roster,
    may_run_platform_jobs,
    may_search_area,
    may_write,
    sees_everything,
)
from huhang.auth.dependency import authenticate
from huhang.auth.principal import Principal, Role
from huhang.problems import DomainError, FieldError, problem_doc


class Forbidden(DomainError):
    status = 403
    type = "urn:huhang:problem:forbidden"


FORBIDDEN_DOC = problem_doc(403, "Not for this caller (need-to-know; see `detail`)")


# The dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool, a
# hop (and a wait for a free worker under load) per dependency per request. Those that query a read model stay
# plain ``def`` so that they never block the event loop.
async def get_case_access(request: Request) -> CaseAccess:
    return request.app.state.case_access


async def get_access_log(request: Request) -> AccessLog:
    return request.app.state.access_log


PrincipalDep = Annotated[Principal, Depends(authenticate)]
CaseAccessDep = Annotated[CaseAccess, Depends(get_case_access)]
AccessLogDep = Annotated[AccessLog, Depends(get_access_log)]


async def purpose_of(
    x_purpose: Annotated[
        AccessPurpose | None, Header(alias="X-Purpose", description="Why the record is read (recorded).")
    ] = None,
    purpose: Annotated[AccessPurpose | None, Query(description="As `X-Purpose`, for links.")] = None,
) -> AccessPurpose | None:
    return x_purpose or purpose


PurposeDep = Annotated[AccessPurpose | None, Depends(purpose_of)]


@dataclass(frozen=True)
class Access:
    """An allowed access: who, on which basis, for what purpose. Routes use it to redact their answer."""

    principal: Principal
    decision: Decision
    purpose: AccessPurpose | None

    def view(self, kind: AnswerKind) -> View:
        return View.packaged(kind, self.principal, self.purpose)

    def redact(self, kind: AnswerKind, document: dict[str, Any]) -> dict[str, Any]:
        return redact(document, self.view(kind))

    def answer(self, kind: AnswerKind, model: BaseModel, status_code: int = 200) -> JSONResponse:
        """The route's answer as JSON with what this caller may not see left out (listed in ``redacted``)."""
        return JSONResponse(self.redact(kind, model.model_dump(mode="json")), status_code=status_code)


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return route.path if isinstance(route, APIRoute) else request.url.path


def _decide(
    request: Request, log: AccessLog, principal: Principal, decision: Decision, action: str,
    purpose: AccessPurpose | None, *, case_id: UUID | None = None, child_id: UUID | None = None,
    refusal: str = "",
) -> Access:
    log.record(AccessEntry(
        at=datetime.now(UTC), subject=principal.subject, agency=principal.agency.value, action=action,
        route=f"{request.method} {_route(request)}", outcome=decision.outcome,
        case_id=str(case_id) if case_id else None, child_id=str(child_id) if child_id else None,
        purpose=purpose.value if purpose else None,
    ))
    if not decision.allowed:
        raise Forbidden(refusal or f"{principal.agency.value} may not {action} this record.")
    return Access(principal, decision, purpose)


def _on_record(kind: str, action: str, facts_of: Callable[[CaseAccess, UUID], RecordFacts | None],
               rule: Callable[[Principal, RecordFacts | None, datetime], Decision]) -> Callable[..., Access]:
    hint = " A person with an emergency may break the glass: POST /v1/cases/{case_id}/break-glass." if kind == "case" \
        else ""

    def check(record_id: UUID, request: Request, principal: Principal, access: CaseAccess, log: AccessLog,
              purpose: AccessPurpose | None) -> Access:
        decision = rule(principal, facts_of(access, record_id), datetime.now(UTC))
        ids = {"case_id": record_id} if kind == "case" else {"child_id": record_id}
        return _decide(
            request, log, principal, decision, action, purpose, **ids,
            refusal=f"{principal.agency.value} has no access to this {kind}: no referral on it, not its area, "
            f"no open break-the-glass grant.{hint}" if action == "read" else
            f"{principal.agency.value} may not change this {kind}.",
        )

    return check


_read_case = _on_record("case", "read", CaseAccess.facts_for_case, may_read)
_write_case = _on_record("case", "write", CaseAccess.facts_for_case, may_write)
_read_child = _on_record("child", "read", CaseAccess.facts_for_child, may_read)
_write_child = _on_record("child", "write", CaseAccess.facts_for_child, may_write)


def _path_value(request: Request, name: str) -> str | None:
    """A path parameter read here rather than declared again: the route declares and validates it (declaring it
    twice would report a malformed value twice)."""
    value = request.path_params.get(name)
    return None if value is None else str(value)


def _path_id(request: Request, name: str) -> UUID | None:
    """The record id from the path; ``None`` when malformed (the route's own validation answers 422)."""
    try:
        return UUID(_path_value(request, name) or "")
    except ValueError:
        return None


def _guard(check: Callable[..., Access], name: str) -> Callable[..., Access]:
    def dependency(request: Request, principal: PrincipalDep, purpose: PurposeDep) -> Access:
        record_id = _path_id(request, name)
        if record_id is None:  # refused by the route's own validation before the route runs
            return Access(principal, DENIED, purpose)
        # the read model and the log from the app's state, not as dependencies: each one FastAPI solves costs
        # every request that passes this guard
        state = request.app.state
        return check(record_id, request, principal, state.case_access, state.access_log, purpose)

    return dependency


case_reader = _guard(_read_case, "case_id")
case_writer = _guard(_write_case, "case_id")
child_reader = _guard(_read_child, "child_id")
child_writer = _guard(_write_child, "child_id")


def case_access_check(case_id: UUID, request: Request, principal: Principal, access: CaseAccess, log: AccessLog,
                      purpose: AccessPurpose | None, *, write: bool) -> Access:
    """For routes that learn the case only after loading something else (a referral by its id)."""
    return (_write_case if write else _read_case)(case_id, request, principal, access, log, purpose)


def referral_case_check(case_id: UUID, holders: Iterable[tuple[str, str]], request: Request, principal: Principal,
                         access: CaseAccess, log: AccessLog, purpose: AccessPurpose | None, *, write: bool) -> Access:
    """For a referral's routes: the referral names its own holders, as (agency, status) pairs. The case-access
    read model learns of them a moment later, from the event stream; an owner acting on a referral that has just
    reached its inbox must not be refused in between."""
    held = holding_agencies(holders)

    def facts_of(known: CaseAccess, record_id: UUID) -> RecordFacts:
        facts = known.facts_for_case(record_id) or RecordFacts()
        return replace(facts, holding_agencies=facts.holding_agencies | held)

    check = _on_record("case", "write" if write else "read", facts_of, may_write if write else may_read)
    return check(case_id, request, principal, access, log, purpose)


def child_access_check(child_id: UUID, request: Request, principal: Principal, access: CaseAccess, log: AccessLog,
                       purpose: AccessPurpose | None, *, write: bool) -> Access:
    """For routes that touch a second child (the other file of a duplicate pair)."""
    return (_write_child if write else _read_child)(child_id, request, principal, access, log, purpose)


async def agency_queue(request: Request, principal: PrincipalDep, log: AccessLogDep, purpose: PurposeDep) -> Access:
    """An agency's inbox or notification feed (path parameter ``agency``): a search, logged (queued: no I/O)."""
    try:
        agency = Agency(_path_value(request, "agency") or "")
    except ValueError:  # refused by the route's own validation before the route runs
        return Access(principal, DENIED, purpose)
    return _decide(request, log, principal, may_read_agency_queue(principal, agency), "search", purpose,
                   refusal=f"{principal.agency.value} may read only its own inbox and feed.")


def agency_integration(request: Request, principal: PrincipalDep) -> Principal:
    """An agency's own integration settings (webhook subscriptions, path parameter ``agency``): the agency's own
    writing roles and the platform only; not even those who see everything (the endpoints and secrets are the
    agency's)."""
    try:
        agency = Agency(_path_value(request, "agency") or "")
    except ValueError:  # refused by the route's own validation before the route runs
        return principal
    if principal.agency in OUTSIDE_GOVERNMENT and not principal.has(Role.system):
        # an organisation outside government would hear every organisation's referrals under one agency code
        raise Forbidden("Organisations outside government receive their referrals through the relief API.")
    if not (may_act_for(principal, agency) and may_create(principal).allowed):
        raise Forbidden(f"{principal.agency.value} may manage only its own agency's integrations.")
    return principal


async def creator(principal: PrincipalDep) -> Access:
    """Filing a report, registering a child, importing a survey, appointing a director: a writing role."""
    decision = may_create(principal)
    if not decision.allowed:
        raise Forbidden(f"{principal.agency.value} ({', '.join(sorted(principal.roles))}) may not record this.")
    return Access(principal, decision, None)


def fact_reporter(agency: Agency) -> Callable[[Principal], Access]:
    """Facts an agency's own system reports (a school's dropout, a hospital's emergency treatment): a writing role
    of that agency (the platform's workers for any). Other agencies report what they saw as a report."""

    def dependency(principal: PrincipalDep) -> Access:
        decision = may_create(principal)
        if not decision.allowed or not may_act_for(principal, agency):
            raise Forbidden(f"Only {agency.value} reports this fact; others file a report (POST /v1/reports).")
        return Access(principal, decision, None)

    return dependency


def province_sync(principal: PrincipalDep) -> Principal:
    """The province's export: the lead agency's system (a client, not a person) and the platform only."""
    if not (principal.has(Role.system) or (principal.agency is LEAD_AGENCY and principal.kind == "client")):
        raise Forbidden("Only the lead agency's system (a client of civil_affairs) reads the province sync.")
    return principal


def roster_keeper(principal: PrincipalDep) -> Principal:
    """Appointing child directors, their departures and training: civil affairs and the townships."""
    if not may_keep_roster(principal).allowed:
        raise Forbidden("Only civil affairs and the townships keep the child-director roster.")
    return principal


def roster_reader(principal: PrincipalDep) -> Principal:
    """Reading the child-director roster: civil affairs, the townships and villages, overseers."""
    if not may_read_roster(principal).allowed:
        raise Forbidden("The child-director roster is read by civil affairs, the townships and villages, and auditors.")
    return principal


def operations_reader(principal: PrincipalDep) -> Principal:
    """Operational figures (the streams' lag, ``huhang/ops_api.py``): platform administrators, auditors and the
    platform's own workers. Ids and numbers only, nothing about a child: not an access to a record, not logged."""
    if not principal.has(Role.administrator, Role.auditor, Role.system):
        raise Forbidden("Only platform administrators, auditors and the platform's workers read operational figures.")
    return principal


def platform_job(principal: PrincipalDep) -> Principal:
    """The router's, the sweeps' and the daily jobs' own routes: the platform's workers only."""
    if not may_run_platform_jobs(principal):
        raise Forbidden("Only the platform's own workers (role system) call this.")
    return principal


def overseer(request: Request, principal: PrincipalDep, log: AccessLogDep, purpose: PurposeDep) -> Access:
    """The access log and the break-glass register: the lead agency, auditors, the platform. Reading is logged."""
    return _decide(request, log, principal, may_oversee(principal), "search", purpose,
                   refusal="Only the lead agency and auditors read the access log and the break-glass register.")


def relief_lead(principal: PrincipalDep) -> Principal:
    """Matching needs to the resource directory and approving matches: the lead agency (issue 10)."""
    if not may_match_relief(principal).allowed:
        raise Forbidden("Only the lead agency (civil affairs) matches needs to relief and charity services.")
    return principal


def spot_check_lead(principal: PrincipalDep) -> Principal:
    """Drawing the annual archive spot check (issue 8): the lead agency's supervisors and the platform."""
    if not (principal.has(Role.system) or (principal.agency is LEAD_AGENCY and principal.has(Role.supervisor))):
        raise Forbidden("Only a supervisor of the lead agency (civil affairs) draws a spot check.")
    return principal


def spot_checker(principal: PrincipalDep) -> Principal:
    """Recording a sampled file's results: the lead agency's officers and supervisors, and the platform."""
    if not (principal.has(Role.system)
            or (principal.agency is LEAD_AGENCY and principal.has(Role.agency_officer, Role.supervisor))):
        raise Forbidden("Only civil affairs records the results of a spot check.")
    return principal


def spot_check_reader(request: Request, principal: PrincipalDep, log: AccessLogDep, purpose: PurposeDep) -> Access:
    """A spot check's sample (child ids), progress and summary: the lead and supervising agencies' case workers,
    auditors and the platform. Reading is logged, as a search."""
    unconditional = sees_everything(principal)
    allowed = unconditional is not None and unconditional.allowed and principal.agency not in AREA_AGENCIES
    return _decide(request, log, principal, unconditional if allowed and unconditional else DENIED, "search",
                   purpose, refusal="Only civil affairs, the working committee office and auditors read spot checks.")


def case_integrity_reader(request: Request, principal: PrincipalDep, log: AccessLogDep, purpose: PurposeDep) -> Access:
    """A case's tamper check (``GET /v1/cases/{case_id}/integrity``): auditors, the lead and supervising agencies'
    case workers and the platform, who see every case anyway; not the agencies holding a referral on it nor the
    area's principals (the answer is about the stores, not the child). Logged as a read of the case."""
    unconditional = sees_everything(principal)
    allowed = unconditional is not None and unconditional.allowed and principal.agency not in AREA_AGENCIES
    case_id = _path_id(request, "case_id")
    if case_id is None:  # refused by the route's own validation before the route runs
        return Access(principal, DENIED, purpose)
    return _decide(request, log, principal, unconditional if allowed and unconditional else DENIED, "read", purpose,
                   case_id=case_id,
                   refusal="Only auditors, civil affairs and the working committee office run a case's tamper check.")


def indicator_report_reader(principal: Principal, township: str | None) -> None:
    """Monthly and annual indicator reports (shared figures, small cells suppressed): civil affairs, wcwc,
    auditors and the platform for any unit; a township's own principals for their township's report only
    (``township`` None: the county's report)."""
    unconditional = sees_everything(principal)
    if unconditional is not None and unconditional.allowed and principal.agency not in AREA_AGENCIES:
        return
    if principal.agency is Agency.township and principal.has(*CASE_ROLES) and principal.township is not None \
            and township == principal.township:
        return
    raise Forbidden(
        "Indicator reports are read by civil affairs, the working committee office and auditors; a township reads "
        "its own township's report.",
        errors=[FieldError(field="unit", reason="not a unit this caller reads reports of")],
    )


@dataclass(frozen=True)
class IndicatorReader:
    """Who reads indicator figures (issue 8), and how far: ``full`` (civil affairs, wcwc, auditors, the platform:
    every unit, small cells shown unless published), else one ``township``'s units (its own principals), one
    ``village`` (``<township>/<village>``, its child directors) or one ``agency``'s own referral figures (any
    agency's case workers); all with small cells suppressed."""

    principal: Principal
    full: bool
    township: str | None = None
    agency: Agency | None = None
    village: str | None = None


def indicator_reader(principal: PrincipalDep) -> IndicatorReader:
    unconditional = sees_everything(principal)
    if unconditional is not None and unconditional.allowed and principal.agency not in AREA_AGENCIES:
        return IndicatorReader(principal, full=True)
    if principal.agency is Agency.township and principal.township is not None and principal.has(*CASE_ROLES):
        return IndicatorReader(principal, full=False, township=principal.township)
    if principal.agency is Agency.village and principal.township is not None and principal.village is not None \
            and principal.has(*CASE_ROLES):
        return IndicatorReader(principal, full=False, village=f"{principal.township}/{principal.village}")
    if principal.agency not in OUTSIDE_GOVERNMENT and principal.agency not in AREA_AGENCIES \
            and principal.has(*CASE_ROLES):
        return IndicatorReader(principal, full=False, agency=principal.agency)
    raise Forbidden("Indicators are read by civil affairs, the working committee office, auditors, the townships "
                    "and villages (their own) and agencies (their own referral figures).")


def indicator_unit_check(reader: IndicatorReader, unit_kind: str, unit: str | None, agency_figure: bool) -> None:
    """A reader asks for one unit kind (and unit): refused (403 naming ``unit``) outside its scope."""
    if reader.full:
        return
    if reader.township is not None and unit is not None and (
        (unit_kind == "township" and unit == reader.township)
        or (unit_kind == "village" and unit.startswith(f"{reader.township}/"))
    ):
        return
    if reader.agency is not None and agency_figure and unit_kind == "agency" and unit == reader.agency.value:
        return
    if reader.village is not None and unit_kind == "village" and unit == reader.village:
        return
    raise Forbidden("Not a unit this caller reads indicators of.",
                    errors=[FieldError(field="unit", reason="outside the caller's township or agency")])


def indicator_drill_down(request: Request, principal: Principal, log: AccessLog, purpose: AccessPurpose | None,
                         unit_kind: str, unit: str) -> Access:
    """The child ids behind a figure: civil affairs and wcwc, and the township or village principals whose area is
    the unit; logged as a search."""
    decision = DENIED
    if principal.agency in SUPERVISING_AGENCIES and principal.has(*CASE_ROLES):
        decision = Decision(Basis.agency)
    elif principal.agency in AREA_AGENCIES and principal.has(*CASE_ROLES) and principal.township is not None:
        own_village = f"{principal.township}/{principal.village}"
        township_unit = principal.agency is Agency.township and (
            (unit_kind == "township" and unit == principal.township)
            or (unit_kind == "village" and unit.startswith(f"{principal.township}/"))
        )
        village_unit = principal.agency is Agency.village and unit_kind == "village" and unit == own_village
        if township_unit or village_unit:
            decision = Decision(Basis.area)
    return _decide(request, log, principal, decision, "search", purpose,
                   refusal="The children behind a figure are shown to civil affairs, the working committee office "
                           "and the unit's own township or village.")


def area_search(request: Request, principal: Principal, log: AccessLog, purpose: AccessPurpose | None,
                township: str | None) -> str | None:
    """A search over children by area (probable duplicates): logged; an area-bound caller gets its own township."""
    decision, township = may_search_area(principal, township)
    _decide(request, log, principal, decision, "search", purpose,
            refusal="Only the lead agency, auditors and the area's own township or village search children here.")
    return township


def acting_for(principal: Principal, agency: Agency, field: str) -> None:
    """A command names the acting agency in its body: it must be the caller's own."""
    if not may_act_for(principal, agency):
        raise Forbidden(
            f"{principal.agency.value} may not act as {agency.value}.",
            errors=[FieldError(field=field, reason=f"must be the caller's own agency ({principal.agency.value})")],
        )


CaseReader = Annotated[Access, Depends(case_reader)]
CaseWriter = Annotated[Access, Depends(case_writer)]
ChildReader = Annotated[Access, Depends(child_reader)]
ChildWriter = Annotated[Access, Depends(child_writer)]
AgencyQueue = Annotated[Access, Depends(agency_queue)]
Creator = Annotated[Access, Depends(creator)]
PlatformJob = Annotated[Principal, Depends(platform_job)]
OperationsReader = Annotated[Principal, Depends(operations_reader)]
RosterKeeper = Annotated[Principal, Depends(roster_keeper)]
RosterReader = Annotated[Principal, Depends(roster_reader)]
Overseer = Annotated[Access, Depends(overseer)]
ReliefLead = Annotated[Principal, Depends(relief_lead)]
SpotCheckLead = Annotated[Principal, Depends(spot_check_lead)]
SpotChecker = Annotated[Principal, Depends(spot_checker)]
SpotCheckReader = Annotated[Access, Depends(spot_check_reader)]
CaseIntegrityReader = Annotated[Access, Depends(case_integrity_reader)]
ProvinceSync = Annotated[Principal, Depends(province_sync)]
AgencyIntegration = Annotated[Principal, Depends(agency_integration)]
IndicatorReaderDep = Annotated[IndicatorReader, Depends(indicator_reader)]

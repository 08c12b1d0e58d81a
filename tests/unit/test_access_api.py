"""Need-to-know over HTTP, on the embedded app: every route with every kind of caller (allow or 403, and which
fields are visible), access following referral state, break-the-glass with its review, and the access log."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from contracts.agencies import Agency
from contracts.commands import OPEN_REFERRALS_EXAMPLE
from contracts.envelope import CloudEvent
from huhang.access.access_log import access_log_table
from huhang.access.case_access import CaseAccess
from huhang.auth.principal import Principal
from huhang.bootstrap import build_services, embedded_api, subscription_consumers
from huhang.service import Service
from huhang.settings import Settings
from huhang.storage import read_model_engine
from huhang.streams import drain
from services.intake.schemas import CHILD_REGISTRATION_EXAMPLE, CHILD_REPORT_EXAMPLE
from tests.support.auth import SYSTEM
from tests.support.principals import (
    AUDITOR,
    CHILD_DIRECTOR,
    EDUCATION_OFFICER,
    EVERYONE,
    HRSS_OFFICER,
    JUSTICE_OFFICER,
    LEAD_OFFICER,
    LEAD_SUPERVISOR,
    POLICE_OFFICER,
    TOWNSHIP,
    VILLAGE,
    as_,
)

ID_CARD = CHILD_REGISTRATION_EXAMPLE["child"]["id_card_number"]
NAME = CHILD_REGISTRATION_EXAMPLE["child"]["name"]
REASON = "儿童主任报告孩子今晚独自在家且受伤，需要立即查看监护人联系方式和既往报告。"


@dataclass
class Platform:
    app: FastAPI
    client: TestClient
    services: dict[str, Service]
    settings: Settings
    child_id: uuid.UUID
    case_id: uuid.UUID
    referrals: dict[str, uuid.UUID]

    def get(self, path: str, principal: Principal, **kwargs: Any) -> Any:
        return self.client.get(path, headers={**as_(self.app, principal), **kwargs.pop("headers", {})}, **kwargs)

    def post(self, path: str, principal: Principal, **kwargs: Any) -> Any:
        return self.client.post(path, headers={**as_(self.app, principal), **kwargs.pop("headers", {})}, **kwargs)

    def catch_up(self) -> None:
        """Every read model of every service up to date (what the background followers do in a running app)."""
        for service in self.services.values():
            for consumer in subscription_consumers(self.settings, service, self.services):
                consumer.poll_timeout_s = 0.01
                drain(consumer)


def open_referral(platform: Platform, agency: Agency) -> uuid.UUID:
    referral_id = uuid.uuid4()
    command = {
        **OPEN_REFERRALS_EXAMPLE["referrals"][0], "referral_id": str(referral_id), "case_id": str(platform.case_id),
        "child_id": str(platform.child_id), "owner_agency": agency.value, "township": TOWNSHIP, "village": VILLAGE,
        "source_event_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4()),
        "due_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    }
    answer = platform.post("/v1/referrals", SYSTEM, json={"referrals": [command]})
    assert answer.status_code == 200, answer.text
    return referral_id


def build_platform() -> Platform:
    settings = Settings(storage="memory", access_log_flush_interval_s=0.05, notifications_stream_max_s=0.2)
    services = build_services(settings)
    app = embedded_api(settings, services)
    client = TestClient(app)
    registered = client.post("/v1/children", json=CHILD_REGISTRATION_EXAMPLE, headers=as_(app, SYSTEM))
    assert registered.status_code == 201, registered.text
    child_id = uuid.UUID(registered.json()["child_id"])
    reported = client.post(f"/v1/children/{child_id}/reports", json=CHILD_REPORT_EXAMPLE, headers=as_(app, SYSTEM))
    assert reported.status_code == 201, reported.text
    platform = Platform(app, client, services, settings, child_id, uuid.UUID(reported.json()["case_id"]), {})
    for agency in (Agency.police, Agency.hrss, Agency.education):
        platform.referrals[agency.value] = open_referral(platform, agency)
    platform.catch_up()
    return platform


def close(platform: Platform) -> None:
    for service in platform.services.values():
        service.application.close()


@pytest.fixture(scope="module")
def shared() -> Iterator[Platform]:
    """One platform for the read-only walk (every refused or invalid request changes nothing)."""
    platform = build_platform()
    yield platform
    close(platform)


@pytest.fixture
def platform() -> Iterator[Platform]:
    built = build_platform()
    yield built
    close(built)


# --- every route, every caller ------------------------------------------------------------------------------------

# Callers by what they may do with the case on hand: referrals held by police, hrss and education; the child lives
# in 虹桥镇/溪西村.
READERS = {"system", "auditor", "lead_officer", "lead_supervisor", "wcwc_officer", "police_officer", "police_system",
           "hrss_officer", "education_officer", "township_officer", "child_director"}
WRITERS = READERS - {"auditor"}
CREATORS = set(EVERYONE) - {"auditor", "administrator"}
POLICE_QUEUE = {"system", "auditor", "lead_officer", "lead_supervisor", "wcwc_officer", "police_officer",
                "police_system"}
OVERSEERS = {"system", "auditor", "lead_officer", "lead_supervisor"}
ROSTER_KEEPERS = {"system", "lead_officer", "lead_supervisor", "township_officer"}
AREA_SEARCHERS = {"system", "auditor", "lead_officer", "lead_supervisor", "wcwc_officer", "township_officer",
                  "child_director", "other_child_director"}
ROSTER_READERS = {"system", "auditor", "lead_officer", "lead_supervisor", "wcwc_officer", "township_officer",
                  "child_director", "other_child_director"}
EVERYBODY = set(EVERYONE)
PLATFORM = {"system"}
POLICE_INTEGRATION = {"system", "police_officer", "police_system"}  # the agency's own webhooks: itself only
RELIEF_LEADS = {"system", "lead_officer", "lead_supervisor"}
SPOT_CHECK_READERS = {"system", "auditor", "lead_officer", "lead_supervisor", "wcwc_officer"}  # and county reports
OPERATORS = {"system", "auditor", "administrator"}  # operational figures (huhang/ops_api.py)
INDICATOR_READERS = set(EVERYONE) - {"administrator"}  # each within its scope (unit, agency): 403 outside it
FULL_INDICATOR_READERS = {"system", "auditor", "lead_officer", "lead_supervisor", "wcwc_officer"}

# Who is let through, route by route. A route missing here fails the walk: a new route must be classified.
# "Body first": the route validates its body before its own checks; an empty body answers 422 to everyone (those
# routes' rules are tested on their own below).
ALLOWED: dict[str, set[str]] = {
    "GET /healthz": EVERYBODY,
    "GET /readyz": EVERYBODY,
    "GET /.well-known/jwks.json": EVERYBODY,
    "POST /v1/oauth/token": EVERYBODY,
    "POST /v1/reports": CREATORS,
    "GET /v1/cases/{case_id}": READERS,
    "GET /v1/cases/{case_id}/timeline": READERS,
    "GET /v1/cases/{case_id}/history": READERS,
    "GET /v1/cases/{case_id}/integrity": SPOT_CHECK_READERS,  # the tamper check: auditors, lead, wcwc
    "GET /v1/cases/{case_id}/referrals": READERS,
    "GET /v1/children/{child_id}": READERS,
    "POST /v1/children": CREATORS,
    "PUT /v1/children/{child_id}/facts": WRITERS,
    "GET /v1/children/{child_id}/history": READERS,
    "GET /v1/duplicates": AREA_SEARCHERS,
    "POST /v1/children/{child_id}/duplicates/{other_id}/confirm": WRITERS,
    "POST /v1/children/{child_id}/duplicates/{other_id}/dismiss": WRITERS,
    "POST /v1/children/{child_id}/reports": WRITERS,
    "POST /v1/children/rederivations": PLATFORM,
    "POST /v1/children/{child_id}/erasure": EVERYBODY,  # body first (administrators and the platform only)
    "POST /v1/survey-imports": CREATORS,
    "POST /v1/cases/{case_id}/break-glass": EVERYBODY,  # body first
    "POST /v1/cases/{case_id}/break-glass/{grant_id}/review": EVERYBODY,  # body first
    "GET /v1/break-glass": OVERSEERS,
    "GET /v1/access-log": OVERSEERS,
    "GET /v1/agencies/{agency}/referrals": POLICE_QUEUE,
    "GET /v1/agencies/{agency}/notifications": POLICE_QUEUE,
    "POST /v1/agencies/{agency}/webhooks": POLICE_INTEGRATION,
    "GET /v1/agencies/{agency}/webhooks": POLICE_INTEGRATION,
    "GET /v1/agencies/{agency}/webhooks/{webhook_id}": POLICE_INTEGRATION,
    "PATCH /v1/agencies/{agency}/webhooks/{webhook_id}": POLICE_INTEGRATION,
    "DELETE /v1/agencies/{agency}/webhooks/{webhook_id}": POLICE_INTEGRATION,
    "POST /v1/agencies/{agency}/webhooks/{webhook_id}/secret/rotate": POLICE_INTEGRATION,
    "GET /v1/agencies/{agency}/webhooks/{webhook_id}/dead-letters": POLICE_INTEGRATION,
    "POST /v1/agencies/{agency}/webhooks/{webhook_id}/dead-letters/{delivery_id}/replay": POLICE_INTEGRATION,
    "POST /v1/agencies/{agency}/webhooks/{webhook_id}/replay": POLICE_INTEGRATION,
    "GET /v1/agencies/{agency}/notifications/stream": POLICE_QUEUE,
    "POST /v1/notification-digests": PLATFORM,
    "POST /v1/children/{child_id}/school-dropouts": {"system", "education_officer"},
    "POST /v1/children/{child_id}/school-returns": {"system", "education_officer"},
    "POST /v1/children/{child_id}/job-assistance": {"system", "hrss_officer"},
    "POST /v1/children/{child_id}/emergency-treatments": PLATFORM,  # and the health agency's own system
    "GET /v1/province-sync/children": PLATFORM,  # and the lead agency's own system (a client)
    "GET /v1/referrals/{referral_id}": READERS,
    "POST /v1/referrals/{referral_id}/status": WRITERS,
    "POST /v1/referrals/{referral_id}/transfer": WRITERS,
    "POST /v1/referrals/{referral_id}/transfer/answer": EVERYBODY,  # the proposed owner has no access yet
    "POST /v1/referrals/{referral_id}/assignee": WRITERS,
    "POST /v1/referrals/{referral_id}/escalations": WRITERS,
    "POST /v1/referral-sweeps": PLATFORM,
    "POST /v1/referrals": PLATFORM,
    "POST /v1/cases/{case_id}/guardianship-assessments": WRITERS,
    "POST /v1/cases/{case_id}/court-orders": WRITERS,
    "POST /v1/cases/{case_id}/interventions": WRITERS,
    "GET /v1/children/{child_id}/guardianship": READERS,
    "GET /v1/children/{child_id}/interventions": READERS,
    "POST /v1/child-directors": ROSTER_KEEPERS,
    "GET /v1/child-directors": ROSTER_READERS,
    "GET /v1/child-directors/coverage": ROSTER_READERS,
    "GET /v1/child-directors/{director_id}": ROSTER_READERS,
    "POST /v1/child-directors/{director_id}/leave": ROSTER_KEEPERS,
    "POST /v1/child-directors/{director_id}/trainings": ROSTER_KEEPERS,
    "PUT /v1/children/{child_id}/child-director": WRITERS,
    "GET /v1/children/{child_id}/child-director": READERS,
    "POST /v1/children/{child_id}/entrusted-care-agreements": WRITERS,
    "POST /v1/children/{child_id}/entrusted-care-agreements/{agreement_id}/signature": WRITERS,
    "POST /v1/children/{child_id}/parent-contacts": WRITERS,
    "POST /v1/children/{child_id}/visits": WRITERS,
    "GET /v1/children/{child_id}/care": READERS,
    "GET /v1/care/worklist": AREA_SEARCHERS,
    "POST /v1/care-checks": PLATFORM,
    "GET /v1/organisations": EVERYBODY,
    "GET /v1/organisations/{organisation_id}": EVERYBODY,
    "PUT /v1/organisations/{organisation_id}": RELIEF_LEADS,
    "POST /v1/organisation-imports": RELIEF_LEADS,
    "POST /v1/cases/{case_id}/needs": WRITERS,
    "GET /v1/cases/{case_id}/needs": READERS,
    "GET /v1/cases/{case_id}/needs/{need_id}/matches": READERS,
    "POST /v1/cases/{case_id}/needs/{need_id}/matches": RELIEF_LEADS,
    "POST /v1/cases/{case_id}/needs/{need_id}/matches/{match_id}/approval": RELIEF_LEADS,
    "POST /v1/cases/{case_id}/needs/{need_id}/matches/{match_id}/consent": WRITERS,
    "GET /v1/organisations/{organisation_id}/offers": RELIEF_LEADS,
    "POST /v1/organisations/{organisation_id}/offers/{match_id}/acceptance": PLATFORM,
    "POST /v1/organisations/{organisation_id}/offers/{match_id}/outcome": PLATFORM,
    "POST /v1/cases/{case_id}/needs/{need_id}/matches/{match_id}/withdrawal": RELIEF_LEADS,
    "POST /v1/organisations/{organisation_id}/offers/{match_id}/decline": PLATFORM,
    "GET /v1/relief/figures": OVERSEERS,
    "POST /v1/spot-checks": {"system", "lead_supervisor"},
    "GET /v1/spot-checks/{spot_check_id}": SPOT_CHECK_READERS,
    "POST /v1/spot-checks/{spot_check_id}/files/{child_id}": {"system", "lead_officer", "lead_supervisor"},
    "GET /v1/spot-checks/{spot_check_id}/summary": SPOT_CHECK_READERS,
    "GET /v1/reports/indicators/monthly": SPOT_CHECK_READERS,  # the county's report; a township reads its own
    "GET /v1/reports/indicators/annual": SPOT_CHECK_READERS,
    "GET /v1/indicators": INDICATOR_READERS,
    "GET /v1/indicators/values": FULL_INDICATOR_READERS | {"township_officer"},  # townships by default: its own
    "GET /v1/indicators/colour-changes": INDICATOR_READERS,  # filtered to the caller's scope
    "GET /v1/indicators/{code}/trend": INDICATOR_READERS,  # then 422: unit_kind and unit are required
    "GET /v1/indicators/{code}/children": INDICATOR_READERS,  # then 422 (the unit's own area: tested apart)
    "GET /v1/ops/streams": OPERATORS,
    "GET /v1/parked-events": OPERATORS,  # poison events (huhang/parking_api.py)
    "POST /v1/parked-events/{parked_id}/retry": {"system", "administrator"},
}
UNAUTHENTICATED_ROUTES = {"GET /healthz", "GET /readyz", "GET /.well-known/jwks.json", "POST /v1/oauth/token"}


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every API route of the app, through included routers (FastAPI keeps them nested)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)
        elif isinstance(route, APIRoute):
            yield route


def operations(app: FastAPI) -> list[tuple[str, str]]:
    found = {(method, route.path) for route in api_routes(app.routes) for method in route.methods or ()}
    return sorted(found, key=lambda op: (op[1], op[0]))


def concrete(path: str, platform: Platform) -> str:
    values = {
        "case_id": platform.case_id, "child_id": platform.child_id, "other_id": platform.child_id,
        "referral_id": platform.referrals["police"], "agency": "police", "code": "visit_compliance",
    }
    for name in ("grant_id", "director_id", "agreement_id", "organisation_id", "need_id", "match_id", "webhook_id",
                 "delivery_id", "parked_id", "spot_check_id"):
        values[name] = uuid.uuid4()
    return path.format(**{k: str(v) for k, v in values.items()})


def test_every_route_of_the_app_is_classified(shared):
    assert {f"{m} {p}" for m, p in operations(shared.app)} == set(ALLOWED)


@pytest.mark.parametrize("caller", sorted(EVERYONE))
def test_every_route_lets_through_exactly_the_callers_allowed(shared, caller):
    principal = EVERYONE[caller]
    wrong = []
    for method, path in operations(shared.app):
        operation = f"{method} {path}"
        response = shared.client.request(
            method, concrete(path, shared), headers=as_(shared.app, principal),
            json={} if method in {"POST", "PUT"} else None,
        )
        allowed = caller in ALLOWED[operation]
        if response.status_code >= 500 or (response.status_code == 403) == allowed:
            wrong.append(f"{operation}: {response.status_code} (allowed: {allowed})")
        if response.status_code == 403:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == "urn:huhang:problem:forbidden"
    assert not wrong, "\n".join(wrong)


def test_every_route_but_the_open_ones_needs_a_token(shared):
    for method, path in operations(shared.app):
        if f"{method} {path}" in UNAUTHENTICATED_ROUTES:
            continue
        response = shared.client.request(method, concrete(path, shared), json={} if method != "GET" else None)
        assert response.status_code == 401, f"{method} {path}"


# --- which fields each caller sees --------------------------------------------------------------------------------


def visible(document: dict[str, Any]) -> set[str]:
    facts = document.get("facts") or {}
    return {*document, *(f"facts.{k}" for k in facts)}


@pytest.mark.parametrize(
    ("principal", "sees", "hidden", "id_card"),
    [
        (HRSS_OFFICER, {"name", "facts.guardians", "facts.needs", "parents_away_since"},
         {"facts.school", "facts.entrusted_caregiver"}, "3303**********1224"),
        (EDUCATION_OFFICER, {"name", "facts.school", "facts.guardians"}, {"facts.entrusted_caregiver"},
         "3303**********1224"),
        (POLICE_OFFICER, {"name", "facts.school", "facts.entrusted_caregiver", "facts.needs"}, set(), ID_CARD),
        (LEAD_OFFICER, {"name", "facts.school", "facts.entrusted_caregiver", "facts.needs"}, set(), ID_CARD),
        (CHILD_DIRECTOR, {"name", "facts.school", "facts.entrusted_caregiver"}, set(), "3303**********1224"),
        (AUDITOR, {"name", "facts.school", "facts.entrusted_caregiver"}, set(), "3303**********1224"),
    ],
    ids=lambda v: getattr(v, "subject", None) or "",
)
def test_the_child_file_shows_each_agency_its_sections(shared, principal, sees, hidden, id_card):
    answer = shared.get(f"/v1/children/{shared.child_id}", principal)

    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert sees <= visible(document)
    assert not hidden & visible(document)
    assert set(hidden) <= set(document["redacted"])
    assert document["id_card_number"] == id_card


def test_hrss_sees_a_parents_work_not_the_guardians_health(shared):
    guardians = shared.get(f"/v1/children/{shared.child_id}", HRSS_OFFICER).json()["facts"]["guardians"]

    assert {"relation", "status"} <= set(guardians[0])
    assert not any("serious_illness" in g for g in guardians)


def test_the_childs_history_is_redacted_and_masked_like_the_file(shared):
    document = shared.get(f"/v1/children/{shared.child_id}/history", HRSS_OFFICER).json()

    registered = next(e for e in document["entries"] if e["change"] == "registered")
    assert registered["details"]["id_card_number"] == "3303**********1224"
    assert ID_CARD not in str(document)


@pytest.mark.parametrize(("principal", "concern_visible"), [(POLICE_OFFICER, True), (HRSS_OFFICER, False),
                                                             (EDUCATION_OFFICER, False), (LEAD_OFFICER, True)],
                         ids=lambda v: getattr(v, "subject", None) or str(v))
def test_a_case_shows_the_reported_concern_only_to_agencies_that_see_protection_matters(
    shared, principal, concern_visible
):
    case = shared.get(f"/v1/cases/{shared.case_id}", principal).json()
    timeline = shared.get(f"/v1/cases/{shared.case_id}/timeline", principal).json()

    assert ("concern_category" in case["reports"][0]) is concern_visible
    assert ("caregiver_unable" in str(timeline["events"])) is concern_visible
    assert (case["reports"][0].get("report_id") is not None)


# --- access follows referral state --------------------------------------------------------------------------------


def test_an_agency_that_rejects_its_referral_loses_access_to_the_case(platform):
    assert platform.get(f"/v1/cases/{platform.case_id}", POLICE_OFFICER).status_code == 200
    referral = platform.referrals["police"]
    for status in ("received", "rejected"):
        body = {"status": status, "agency": "police", **({"reason_code": "out_of_area"} if status == "rejected"
                                                          else {})}
        answer = platform.post(f"/v1/referrals/{referral}/status", POLICE_OFFICER, json=body)
        assert answer.status_code == 200, answer.text

    platform.catch_up()

    assert platform.get(f"/v1/cases/{platform.case_id}", POLICE_OFFICER).status_code == 403
    assert platform.get(f"/v1/children/{platform.child_id}", POLICE_OFFICER).status_code == 403
    assert platform.get(f"/v1/cases/{platform.case_id}", HRSS_OFFICER).status_code == 200


def test_a_command_may_not_name_another_agency_than_the_callers(platform):
    referral = platform.referrals["police"]

    answer = platform.post(f"/v1/referrals/{referral}/status", HRSS_OFFICER,
                           json={"status": "received", "agency": "police"})

    assert answer.status_code == 403
    assert answer.json()["errors"] == [{"field": "agency", "reason": "must be the caller's own agency (hrss)"}]


def test_an_inbox_is_read_by_its_own_agency(platform):
    assert platform.get("/v1/agencies/police/referrals", POLICE_OFFICER).status_code == 200
    assert platform.get("/v1/agencies/police/referrals", HRSS_OFFICER).status_code == 403
    assert platform.get("/v1/agencies/police/notifications", EDUCATION_OFFICER).status_code == 403


# --- break-the-glass ----------------------------------------------------------------------------------------------


def published(service: Service) -> list[CloudEvent]:
    """Every integration event a service has published (what its relay sends to Kafka)."""
    events: list[CloudEvent] = []
    after = 0
    while notifications := service.application.select_notifications(after, 500):
        for notification in notifications:
            events.extend(service.application.integration_events(notification, service.to_integration_events()))
        after = notifications[-1].id
    return events


def break_glass(platform: Platform, principal: Principal, **body: Any) -> Any:
    return platform.post(f"/v1/cases/{platform.case_id}/break-glass", principal,
                         json={"reason": REASON, "purpose": "emergency_protection", **body})


def test_breaking_the_glass_opens_the_case_for_a_bounded_time_and_flags_it_for_review(platform):
    assert platform.get(f"/v1/cases/{platform.case_id}", JUSTICE_OFFICER).status_code == 403

    opened = break_glass(platform, JUSTICE_OFFICER)

    assert opened.status_code == 201, opened.text
    grant = opened.json()
    expires = datetime.fromisoformat(grant["expires_at"]) - datetime.fromisoformat(grant["opened_at"])
    assert expires == timedelta(hours=4)
    assert (grant["agency"], grant["subject"], grant["justified"]) == ("justice", JUSTICE_OFFICER.subject, None)
    assert platform.get(f"/v1/cases/{platform.case_id}", JUSTICE_OFFICER).status_code == 200
    assert platform.get(f"/v1/children/{platform.child_id}", JUSTICE_OFFICER).status_code == 200
    register = platform.get("/v1/break-glass", LEAD_OFFICER, params={"unreviewed": "true"}).json()["items"]
    assert [g["grant_id"] for g in register] == [grant["grant_id"]]

    # Another service's read model (a process of its own) honours the grant from intake's published events alone.
    elsewhere = CaseAccess(read_model_engine(Settings(storage="memory"), "elsewhere"))
    elsewhere.handle(published(platform.services["intake"]))
    facts = elsewhere.facts_for_case(platform.case_id)
    assert facts is not None
    assert [str(g.grant_id) for g in facts.grants] == [grant["grant_id"]]
    platform.catch_up()
    timeline = platform.get(f"/v1/cases/{platform.case_id}/timeline", LEAD_OFFICER).json()["events"]
    assert "cn.huhang.access.break-glass-opened.v1" in [e["type"] for e in timeline]
    assert REASON not in str(timeline)


def test_the_lead_agency_finds_a_break_the_glass_not_justified_and_the_access_ends(platform):
    grant = break_glass(platform, JUSTICE_OFFICER).json()["grant_id"]
    review = f"/v1/cases/{platform.case_id}/break-glass/{grant}/review"

    assert platform.post(review, LEAD_OFFICER, json={"justified": False}).status_code == 403  # not a supervisor
    answer = platform.post(review, LEAD_SUPERVISOR, json={"justified": False, "note": "非紧急情况。"})

    assert answer.status_code == 200, answer.text
    assert (answer.json()["justified"], answer.json()["reviewer_agency"]) == (False, "civil_affairs")
    assert platform.get(f"/v1/cases/{platform.case_id}", JUSTICE_OFFICER).status_code == 403
    assert platform.get("/v1/break-glass", AUDITOR, params={"unreviewed": "true"}).json()["items"] == []
    assert platform.post(review, LEAD_SUPERVISOR, json={"justified": True}).status_code == 409


@pytest.mark.parametrize(
    ("body", "field"), [({"reason": "太短"}, "reason"), ({"purpose": "curiosity"}, "purpose")],
)
def test_breaking_the_glass_needs_a_stated_reason_and_a_known_purpose(platform, body, field):
    answer = break_glass(platform, JUSTICE_OFFICER, **body)

    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_only_people_without_access_break_the_glass(platform):
    assert break_glass(platform, POLICE_OFFICER).status_code == 409  # already has access
    assert break_glass(platform, AUDITOR).status_code == 403
    missing = platform.post(f"/v1/cases/{uuid.uuid4()}/break-glass", JUSTICE_OFFICER,
                            json={"reason": REASON, "purpose": "emergency_protection"})
    assert missing.status_code == 404


def test_a_grant_lapses_when_its_time_is_up(platform):
    from huhang.access.policy import may_read

    grant = break_glass(platform, JUSTICE_OFFICER).json()
    facts = platform.app.state.case_access.facts_for_case(platform.case_id)

    later = datetime.fromisoformat(grant["expires_at"]) + timedelta(seconds=1)
    assert may_read(JUSTICE_OFFICER, facts, later).allowed is False


# --- the access log -----------------------------------------------------------------------------------------------


def test_reads_searches_and_refusals_are_logged_with_purpose_and_outcome_for_the_lead_and_auditors(platform):
    platform.get(f"/v1/cases/{platform.case_id}", POLICE_OFFICER, headers={"X-Purpose": "investigation"})
    platform.get(f"/v1/children/{platform.child_id}", JUSTICE_OFFICER)
    break_glass(platform, JUSTICE_OFFICER)
    platform.get(f"/v1/children/{platform.child_id}", JUSTICE_OFFICER, params={"purpose": "emergency_protection"})
    platform.get("/v1/agencies/police/referrals", POLICE_OFFICER)

    by_case = platform.get("/v1/access-log", AUDITOR, params={"case_id": str(platform.case_id)}).json()["items"]
    by_child = platform.get("/v1/access-log", LEAD_OFFICER, params={"child_id": str(platform.child_id),
                                                                      "subject": JUSTICE_OFFICER.subject}).json()
    searches = platform.get("/v1/access-log", LEAD_OFFICER, params={"subject": POLICE_OFFICER.subject}).json()

    police_read = next(e for e in by_case if e["subject"] == POLICE_OFFICER.subject)
    assert (police_read["agency"], police_read["action"], police_read["route"], police_read["purpose"],
            police_read["outcome"]) == ("police", "read", "GET /v1/cases/{case_id}", "investigation", "allowed")
    assert [(e["outcome"], e["purpose"]) for e in by_child["items"]] == [
        ("denied", None), ("break-glass", "emergency_protection")
    ]
    assert ("search", "GET /v1/agencies/{agency}/referrals") in [(e["action"], e["route"]) for e in searches["items"]]
    assert platform.get("/v1/access-log", POLICE_OFFICER).status_code == 403


def test_reading_the_log_is_itself_logged_and_the_log_holds_no_personal_data(platform):
    platform.get(f"/v1/children/{platform.child_id}", LEAD_OFFICER)
    platform.get("/v1/access-log", AUDITOR)

    entries = platform.get("/v1/access-log", AUDITOR, params={"subject": AUDITOR.subject}).json()["items"]

    assert [e["route"] for e in entries] == ["GET /v1/access-log"] * 2  # this read too
    log = platform.app.state.access_log
    log.flush()
    with log.engine.connect() as conn:
        raw = str([tuple(r) for r in conn.execute(select(access_log_table))])
        assert conn.execute(text("SELECT count(*) FROM access_log")).scalar_one() >= 3
    assert NAME not in raw
    assert ID_CARD not in raw
    assert "虹桥镇" not in raw


def test_the_log_is_written_in_the_background_without_a_read_of_it(platform):
    import time

    platform.get(f"/v1/cases/{platform.case_id}", POLICE_OFFICER)
    log = platform.app.state.access_log
    deadline = time.monotonic() + 5
    count = 0
    while time.monotonic() < deadline and count == 0:
        with log.engine.connect() as conn:
            count = conn.execute(
                text("SELECT count(*) FROM access_log WHERE subject = :s"), {"s": POLICE_OFFICER.subject}
            ).scalar_one()
        time.sleep(0.05)

    assert count == 1

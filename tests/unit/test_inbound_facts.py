"""Inbound facts over HTTP on the embedded platform: each agency system's fact becomes the same contract event an
internal producer would publish, once per Idempotency-Key; only the fact's own agency reports it; court orders take
the same key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from contracts.cases import care_case_id
from contracts.envelope import CloudEvent
from contracts.events import (
    EmergencyTreatmentReported,
    JobAssistanceGiven,
    SchoolDropoutReported,
    SchoolReturnReported,
)
from contracts.routing import load_rules
from huhang.bootstrap import build_services, embedded_api, subscription_consumers
from huhang.settings import Settings
from huhang.streams import drain
from services.intake.main import intake_integration_events
from services.intake.schemas import CHILD_REGISTRATION_EXAMPLE, CHILD_REPORT_EXAMPLE
from tests.support.auth import SYSTEM, bearer, officer

SCHOOL = officer(Agency.education)
HRSS = officer(Agency.hrss)
HOSPITAL = officer(Agency.health)
COURT = officer(Agency.court)
POLICE = officer(Agency.police)


class Platform:
    def __init__(self) -> None:
        self.settings = Settings(storage="memory", access_log_flush_interval_s=0.05)
        self.services = build_services(self.settings)
        self.app = embedded_api(self.settings, self.services)
        self.client = TestClient(self.app)
        registered = self.post("/v1/children", SYSTEM, CHILD_REGISTRATION_EXAMPLE)
        assert registered.status_code == 201, registered.text
        self.child_id = uuid.UUID(registered.json()["child_id"])

    def post(self, path: str, principal: Any, body: dict[str, Any], key: str | None = None) -> Any:
        headers = bearer(self.app, principal)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.post(path, json=body, headers=headers)

    def catch_up(self) -> None:
        """Every read model up to date (what the background followers do in a running app)."""
        for service in self.services.values():
            for consumer in subscription_consumers(self.settings, service, self.services):
                consumer.poll_timeout_s = 0.01
                drain(consumer)

    def published(self) -> list[CloudEvent]:
        """Every integration event intake's log now holds (what its relay publishes)."""
        application: Any = self.services["intake"].application
        notifications = application.recorder.select_notifications(None, 10_000)
        return [ce for n in notifications for ce in intake_integration_events(application.mapper.to_domain_event(n))]


@pytest.fixture
def platform() -> Iterator[Platform]:
    built = Platform()
    yield built
    for service in built.services.values():
        service.application.close()


DROPOUT = {"school_code": "3303820001", "last_attended_on": "2026-11-20"}


def test_a_school_reports_a_dropout_as_the_contract_event_routed_like_an_internal_one(platform):
    answer = platform.post(f"/v1/children/{platform.child_id}/school-dropouts", SCHOOL, DROPOUT, "drop-1")

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["case_id"] == str(care_case_id(platform.child_id))
    assert body["event_type"] == SchoolDropoutReported.event_type
    [event] = [e for e in platform.published() if isinstance(e, SchoolDropoutReported)]
    assert str(event.id) == body["event_id"]
    assert event.subject == body["case_id"]
    assert event.actoragency is Agency.education
    assert event.data.school_code == "3303820001"
    assert event.data.last_attended_on == date(2026, 11, 20)
    assert (event.data.township, event.data.village) == (
        CHILD_REGISTRATION_EXAMPLE["child"]["township"], CHILD_REGISTRATION_EXAMPLE["child"]["village"],
    )
    routed = {r.agency for r in load_rules().route(event)}
    assert routed == {Agency.education, Agency.police, Agency.civil_affairs}


def test_a_retry_with_the_same_key_records_nothing_twice_and_answers_the_same(platform):
    path = f"/v1/children/{platform.child_id}/school-dropouts"
    first = platform.post(path, SCHOOL, DROPOUT, "drop-2")
    again = platform.post(path, SCHOOL, DROPOUT, "drop-2")
    other = platform.post(path, SCHOOL, {**DROPOUT, "school_code": "3303820002"}, "drop-2")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert len([e for e in platform.published() if isinstance(e, SchoolDropoutReported)]) == 1


def test_every_kind_of_fact_maps_to_its_contract_event(platform):
    child = platform.child_id
    answers = [
        platform.post(f"/v1/children/{child}/school-returns", SCHOOL,
                      {"school_code": "3303820001", "returned_on": "2026-11-27"}, "ret-1"),
        platform.post(f"/v1/children/{child}/job-assistance", HRSS,
                      {"parent_relation": "mother", "assistance_kind": "skills_training", "given_on": "2026-11-27"},
                      "job-1"),
        platform.post(f"/v1/children/{child}/emergency-treatments", SYSTEM,
                      {"hospital_code": "330382H001", "treated_on": "2026-11-27", "cause": "suspected_abuse",
                       "admitted": True}, "er-1"),
    ]
    assert [a.status_code for a in answers] == [201, 201, 201], [a.text for a in answers]
    kinds = {type(e) for e in platform.published()}
    assert {SchoolReturnReported, JobAssistanceGiven, EmergencyTreatmentReported} <= kinds
    [treatment] = [e for e in platform.published() if isinstance(e, EmergencyTreatmentReported)]
    assert treatment.actoragency is Agency.health
    assert {r.agency for r in load_rules().route(treatment)} == {Agency.police, Agency.civil_affairs}


def test_a_fact_about_one_of_the_childs_protection_cases_is_about_that_case(platform):
    reported = platform.post(f"/v1/children/{platform.child_id}/reports", SYSTEM, CHILD_REPORT_EXAMPLE)
    case_id = reported.json()["case_id"]
    path = f"/v1/children/{platform.child_id}/school-dropouts"

    mine = platform.post(path, SCHOOL, {**DROPOUT, "case_id": case_id}, "drop-case")
    other = platform.post(path, SCHOOL, {**DROPOUT, "case_id": str(uuid.uuid4())}, "drop-other")

    assert mine.json()["case_id"] == case_id
    assert other.status_code == 422
    assert other.json()["errors"] == [{"field": "case_id", "reason": "not a case of this child"}]


@pytest.mark.parametrize(
    ("path", "principal"),
    [("school-dropouts", POLICE), ("school-returns", HRSS), ("job-assistance", SCHOOL),
     ("emergency-treatments", SCHOOL)],
)
def test_only_the_facts_own_agency_reports_it(platform, path, principal):
    answer = platform.post(f"/v1/children/{platform.child_id}/{path}", principal, DROPOUT, "k")

    assert answer.status_code == 403
    assert answer.json()["type"] == "urn:huhang:problem:forbidden"


def test_a_hospital_reports_treatments(platform):
    answer = platform.post(f"/v1/children/{platform.child_id}/emergency-treatments", HOSPITAL,
                           {"hospital_code": "330382H001", "treated_on": "2026-11-27", "cause": "injury"}, "er-2")
    assert answer.status_code == 201, answer.text


def test_a_fact_needs_a_key_a_known_child_and_a_valid_body(platform):
    path = f"/v1/children/{platform.child_id}/school-dropouts"
    assert platform.post(path, SCHOOL, DROPOUT).status_code == 400
    unknown = platform.post(f"/v1/children/{uuid.uuid4()}/school-dropouts", SCHOOL, DROPOUT, "k-unknown")
    assert unknown.status_code == 404
    future = platform.post(path, SCHOOL, {**DROPOUT, "last_attended_on": "2999-01-01"}, "k-future")
    assert future.status_code == 422
    assert future.json()["errors"][0]["field"] == "last_attended_on"
    assert platform.post(path, SCHOOL, DROPOUT, "k-unknown").status_code == 201  # refusals freed their keys


def test_a_court_order_retried_with_its_key_is_recorded_once(platform):
    reported = platform.post(f"/v1/children/{platform.child_id}/reports", SYSTEM, CHILD_REPORT_EXAMPLE)
    case_id = reported.json()["case_id"]
    order = {"child_id": str(platform.child_id), "agency": "court", "order_kind": "personal_safety_protection",
             "court_case_number": "(2026)浙0382民保令12号", "issued_on": "2026-11-27"}
    path = f"/v1/cases/{case_id}/court-orders"
    platform.catch_up()

    first = platform.post(path, SYSTEM, order, "order-1")
    again = platform.post(path, SYSTEM, order, "order-1")

    assert first.status_code == 201, first.text
    assert again.status_code == 201
    assert again.json()["order_id"] == first.json()["order_id"]
    assert again.headers["Idempotent-Replayed"] == "true"

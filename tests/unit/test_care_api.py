"""Guardianship care over HTTP: agreements, parent contacts, visits (with a report filed in one step), a child's
care, the checks; problem+json for every refusal, and nothing recorded when a request is refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient

from huhang.bootstrap import build_services, embedded_api, service_api, subscription_consumers
from huhang.settings import Settings
from huhang.streams import drain
from services.guardianship.care_schemas import (
    AGREEMENT_EXAMPLE,
    CARE_CHECK_EXAMPLE,
    PARENT_CONTACT_EXAMPLE,
    SIGNATURE_EXAMPLE,
    VISIT_EXAMPLE,
)
from services.guardianship.main import GuardianshipService, build
from tests.support.auth import client_for
from tests.unit.test_visit_regime import child_file, merged
from workflows.intake_gateway import HttpIntakeGateway

AS_OF = "2026-06-01"


@pytest.fixture
def service() -> Iterator[GuardianshipService]:
    built = build(Settings(storage="memory"))
    yield built
    built.application.close()


@pytest.fixture
def client(service: GuardianshipService) -> TestClient:
    return client_for(service_api(service.settings, service))


@pytest.fixture
def child_id(service: GuardianshipService) -> uuid.UUID:
    """A left-behind child guardianship knows of: registered 31 January 2026, parents away."""
    known = uuid.uuid4()
    service.known_children.handle([child_file(known, parents_away_since=date(2026, 1, 1))])
    return known


def agreement(**changes: Any) -> dict[str, Any]:
    return {**AGREEMENT_EXAMPLE, **changes}


def visit(**changes: Any) -> dict[str, Any]:
    body = {"kind": "contact", "visited_on": "2026-03-02", "agency": "village", "findings": ["all_well"]}
    return {**body, **changes}


def care(client: TestClient, child_id: uuid.UUID, as_of: str = AS_OF) -> dict[str, Any]:
    response = client.get(f"/v1/children/{child_id}/care", params={"as_of": as_of})
    assert response.status_code == 200, response.text
    return response.json()


def fields(response: Any) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json"
    return [e["field"] for e in response.json()["errors"]]


# --- every example of the documentation works as it stands ------------------------------------------------------


def test_the_documented_examples_are_accepted(client, child_id):
    base = f"/v1/children/{child_id}"
    example_visit = {k: v for k, v in VISIT_EXAMPLE.items() if k != "report"}  # the report needs intake: below

    created = client.post(f"{base}/entrusted-care-agreements", json=agreement(signed=False, signed_on=None))
    signed = client.post(f"{base}/entrusted-care-agreements/{created.json()['agreement_id']}/signature",
                         json=SIGNATURE_EXAMPLE)
    answers = [
        created, signed,
        client.post(f"{base}/entrusted-care-agreements", json=AGREEMENT_EXAMPLE),
        client.post(f"{base}/parent-contacts", json=PARENT_CONTACT_EXAMPLE),
        client.post(f"{base}/visits", json=example_visit),
        client.post("/v1/care-checks", json=CARE_CHECK_EXAMPLE),
    ]

    assert [a.status_code for a in answers] == [201, 200, 201, 201, 201, 200]


# --- a child's care -----------------------------------------------------------------------------------------------


def test_an_unknown_child_answers_404_naming_child_id(client):
    response = client.get(f"/v1/children/{uuid.uuid4()}/care")

    assert response.status_code == 404
    assert fields(response) == ["child_id"]


def test_a_merged_child_answers_409_naming_the_survivor(client, service, child_id):
    survivor = uuid.uuid4()
    service.known_children.handle([child_file(survivor), merged(survivor, child_id)])

    response = client.post(f"/v1/children/{child_id}/visits", json=visit())

    assert response.status_code == 409
    assert response.json()["errors"] == [{"field": "child_id", "reason": f"merged into {survivor}"}]


def test_a_new_childs_care_shows_what_is_due_from_registration(client, child_id):
    body = care(client, child_id, "2026-02-28")

    assert (body["next_contact_due_on"], body["next_home_visit_due_on"]) == ("2026-02-28", "2026-04-30")
    assert (body["contact_overdue_days"], body["home_visit_overdue_days"]) == (0, 0)
    assert body["entrusted_care"] == "missing"
    assert body["parent_contact"]["days_without_contact"] == 28  # since registration, 31 January
    assert body["case_id"] != str(child_id)


def test_the_day_after_the_due_day_shows_the_contact_overdue_by_one_day(client, child_id):
    assert care(client, child_id, "2026-03-01")["contact_overdue_days"] == 1


# --- entrusted care -----------------------------------------------------------------------------------------------


def test_a_signed_agreement_answers_201_and_puts_entrusted_care_in_force(client, child_id):
    response = client.post(f"/v1/children/{child_id}/entrusted-care-agreements", json=agreement())

    assert response.status_code == 201
    assert response.json()["caregiver_name"] == "王秀英"
    body = care(client, child_id)
    assert body["entrusted_care"] == "in_force"
    assert [a["agreement_id"] for a in body["agreements"]] == [response.json()["agreement_id"]]


def test_an_agreement_is_in_force_on_its_end_day_and_expired_the_day_after(client, child_id):
    client.post(f"/v1/children/{child_id}/entrusted-care-agreements", json=agreement(end_on="2026-05-31"))

    assert care(client, child_id, "2026-05-31")["entrusted_care"] == "in_force"
    assert care(client, child_id, "2026-06-01")["entrusted_care"] == "expired"


def test_an_unsigned_agreement_is_unsigned_until_its_signature_is_recorded(client, child_id):
    created = client.post(f"/v1/children/{child_id}/entrusted-care-agreements",
                          json=agreement(signed=False, signed_on=None)).json()
    assert care(client, child_id)["entrusted_care"] == "unsigned"

    signed = client.post(
        f"/v1/children/{child_id}/entrusted-care-agreements/{created['agreement_id']}/signature",
        json={"signed_on": "2026-03-02", "agency": "village"},
    )

    assert signed.status_code == 200
    assert (signed.json()["signed"], signed.json()["signed_on"]) == (True, "2026-03-02")
    assert care(client, child_id)["entrusted_care"] == "in_force"


def test_signing_twice_on_the_same_day_changes_nothing_and_on_another_day_answers_409(client, child_id):
    created = client.post(f"/v1/children/{child_id}/entrusted-care-agreements",
                          json=agreement(signed=False, signed_on=None)).json()
    url = f"/v1/children/{child_id}/entrusted-care-agreements/{created['agreement_id']}/signature"

    again = [client.post(url, json={"signed_on": "2026-03-02", "agency": "village"}) for _ in range(2)]
    other = client.post(url, json={"signed_on": "2026-03-03", "agency": "village"})

    assert [a.status_code for a in again] == [200, 200]
    assert other.status_code == 409
    assert fields(other) == ["signed_on"]


def test_signing_an_unknown_agreement_answers_404(client, child_id):
    client.post(f"/v1/children/{child_id}/entrusted-care-agreements", json=agreement())

    response = client.post(f"/v1/children/{child_id}/entrusted-care-agreements/{uuid.uuid4()}/signature",
                           json=SIGNATURE_EXAMPLE)

    assert response.status_code == 404
    assert fields(response) == ["agreement_id"]


@pytest.mark.parametrize(("changes", "field"), [
    ({"end_on": "2026-02-28", "start_on": "2026-03-01"}, "end_on"),
    ({"signed": True, "signed_on": None}, "signed_on"),
    ({"signed": False, "signed_on": "2026-02-26"}, "signed_on"),
    ({"signed_on": "2099-01-01"}, "signed_on"),
    ({"relation": "stranger"}, "relation"),
    ({"caregiver_name": " "}, "caregiver_name"),
])
def test_an_invalid_agreement_answers_422_naming_the_field_and_records_nothing(client, child_id, changes, field):
    response = client.post(f"/v1/children/{child_id}/entrusted-care-agreements", json=agreement(**changes))

    assert response.status_code == 422
    assert fields(response) == [field]
    assert care(client, child_id)["agreements"] == []


def test_an_agency_that_does_not_record_care_answers_403(client, child_id):
    response = client.post(f"/v1/children/{child_id}/entrusted-care-agreements", json=agreement(recorded_by="police"))

    assert response.status_code == 403
    assert fields(response) == ["recorded_by"]


# --- parent contact -----------------------------------------------------------------------------------------------


def test_a_parent_contact_answers_201_and_restarts_the_count(client, child_id):
    response = client.post(f"/v1/children/{child_id}/parent-contacts", json=PARENT_CONTACT_EXAMPLE | {
        "contacted_on": "2026-05-25"})

    assert response.status_code == 201
    state = care(client, child_id)["parent_contact"]
    assert state == {"last_contact_on": "2026-05-25", "days_without_contact": 7, "consecutive_misses": 0,
                     "missed": False}
    assert care(client, child_id, "2026-06-02")["parent_contact"]["missed"] is True


def test_a_parent_contact_in_the_future_answers_422(client, child_id):
    response = client.post(f"/v1/children/{child_id}/parent-contacts",
                           json=PARENT_CONTACT_EXAMPLE | {"contacted_on": "2099-01-01"})

    assert response.status_code == 422
    assert fields(response) == ["contacted_on"]


def test_a_childs_parents_at_home_have_no_parent_contact_and_need_no_agreement(client, service):
    at_home = uuid.uuid4()
    service.known_children.handle([child_file(at_home, parents_away=False, categories=("disabled",))])

    body = care(client, at_home)

    assert (body["parent_contact"], body["entrusted_care"]) == (None, "not_required")


# --- visits -------------------------------------------------------------------------------------------------------


def test_a_home_visit_answers_201_with_the_next_due_contact_and_visit(client, child_id):
    response = client.post(f"/v1/children/{child_id}/visits", json=visit(kind="home_visit", visited_on="2026-01-31"))

    assert response.status_code == 201
    body = response.json()
    assert (body["next_contact_due_on"], body["next_home_visit_due_on"]) == ("2026-02-28", "2026-04-30")
    assert body["report"] is None
    assert care(client, child_id, "2026-02-28")["visits"][0]["visit_id"] == body["visit_id"]


def test_a_child_with_a_frequent_visit_reason_is_due_a_home_visit_a_month_after_the_last(client, service):
    frequent = uuid.uuid4()
    service.known_children.handle([child_file(frequent, reasons=("child_disability",))])

    body = client.post(f"/v1/children/{frequent}/visits", json=visit(kind="home_visit")).json()

    assert body["next_home_visit_due_on"] == "2026-04-02"
    assert care(client, frequent)["frequent_reasons"] == ["child_disability"]


def test_a_visit_names_a_child_director_on_the_roster_or_answers_422(client, child_id):
    director = client.post("/v1/child-directors", json={
        "name": "陈丽华", "township": "虹桥镇", "village": "溪西村", "appointed_on": "2025-04-15"}).json()

    known = client.post(f"/v1/children/{child_id}/visits", json=visit(director_id=director["director_id"]))
    unknown = client.post(f"/v1/children/{child_id}/visits", json=visit(director_id=str(uuid.uuid4())))

    assert known.status_code == 201, known.text
    assert unknown.status_code == 422
    assert fields(unknown) == ["director_id"]
    assert len(care(client, child_id)["visits"]) == 1


def test_all_well_with_a_problem_answers_422_and_records_nothing(client, child_id):
    response = client.post(f"/v1/children/{child_id}/visits", json=visit(findings=["all_well", "child_unwell"]))

    assert response.status_code == 422
    assert fields(response) == ["findings"]
    assert care(client, child_id)["visits"] == []


def test_suspected_abuse_without_a_report_answers_422_naming_report(client, child_id):
    response = client.post(f"/v1/children/{child_id}/visits", json=visit(findings=["suspected_abuse"]))

    assert response.status_code == 422
    assert fields(response) == ["report"]


@pytest.mark.parametrize(("changes", "field"), [
    ({"visited_on": "2099-01-01"}, "visited_on"),
    ({"findings": []}, "findings"),
    ({"findings": ["all_well", "all_well"]}, "findings"),
    ({"kind": "phone"}, "kind"),
    ({"notes": "x" * 2001}, "notes"),
])
def test_an_invalid_visit_answers_422_naming_the_field(client, child_id, changes, field):
    response = client.post(f"/v1/children/{child_id}/visits", json=visit(**changes))

    assert response.status_code == 422
    assert fields(response) == [field]


def test_a_retried_visit_with_the_same_key_is_recorded_once_and_another_body_is_refused(client, child_id):
    url, key = f"/v1/children/{child_id}/visits", {"Idempotency-Key": "visit-2026-03-02"}

    first, again = client.post(url, json=visit(), headers=key), client.post(url, json=visit(), headers=key)
    other = client.post(url, json=visit(findings=["child_unwell"]), headers=key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["visit_id"] == first.json()["visit_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422
    assert fields(other) == ["Idempotency-Key"]
    assert len(care(client, child_id)["visits"]) == 1


def test_a_visit_with_a_report_and_intake_out_of_reach_answers_503_and_records_nothing(client, service, child_id):
    service.care.intake = HttpIntakeGateway("http://127.0.0.1:9", timeout_s=2.0)

    response = client.post(f"/v1/children/{child_id}/visits", json=VISIT_EXAMPLE)

    assert response.status_code == 503
    assert fields(response) == ["report"]
    assert care(client, child_id)["visits"] == []


def test_the_care_checks_endpoint_raises_once(client, child_id):
    first = client.post("/v1/care-checks", json={"now": "2026-06-01T02:00:00Z"}).json()
    second = client.post("/v1/care-checks", json={"now": "2026-06-01T02:00:00Z"}).json()

    assert (first["visit_overdue"], first["parent_contact_missed"], first["entrusted_care_flagged"]) == (2, 1, 1)
    assert (second["visit_overdue"], second["parent_contact_missed"], second["entrusted_care_flagged"]) == (0, 0, 0)


# --- a report filed from a visit (embedded: intake in this process) ----------------------------------------------

REPORT = {
    "reporter": {"agency": "education", "role": "teacher"},
    "child": {"name": "李小雨", "sex": "female", "birth_date": "2016-05-12", "township": "虹桥镇",
              "village": "溪西村", "categories": ["left_behind"]},
    "concern_category": "lack_of_care", "urgency": "routine", "observed_on": "2026-02-27", "observations": "独自在家",
}


@pytest.fixture
def platform() -> Iterator[tuple[TestClient, dict[str, Any]]]:
    settings = Settings(storage="memory")
    services = build_services(settings)
    yield client_for(embedded_api(settings, services)), services
    for s in services.values():
        s.application.close()


def registered(api: TestClient, services: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID]:
    """A child registered by a first report (intake), known to guardianship: the child and the first case."""
    answer = api.post("/v1/reports", json=REPORT).json()
    for consumer in subscription_consumers(services["guardianship"].settings, services["guardianship"], services):
        consumer.poll_timeout_s = 0.01
        drain(consumer)
    return uuid.UUID(answer["child_id"]), uuid.UUID(answer["case_id"])


def test_a_visit_files_its_report_with_intake_in_one_step_and_answers_the_case(platform):
    api, services = platform
    child, case_id = registered(api, services)

    response = api.post(f"/v1/children/{child}/visits", json=VISIT_EXAMPLE, headers={"Idempotency-Key": "v-1"})

    assert response.status_code == 201, response.text
    report = response.json()["report"]
    assert report["case_id"] == str(case_id)  # the child's open case, as intake decided
    reports = api.get(f"/v1/cases/{case_id}").json()["reports"]
    assert report["report_id"] in {r["report_id"] for r in reports}
    assert care(api, child, "2026-11-29")["visits"][0]["report_case_id"] == str(case_id)


def test_a_retried_visit_files_its_report_once(platform):
    api, services = platform
    child, case_id = registered(api, services)
    url, key = f"/v1/children/{child}/visits", {"Idempotency-Key": "v-2"}

    answers = [api.post(url, json=VISIT_EXAMPLE, headers=key) for _ in range(2)]

    assert answers[0].json()["report"] == answers[1].json()["report"]
    assert len(api.get(f"/v1/cases/{case_id}").json()["reports"]) == 2  # the first report and the visit's


def test_a_report_about_a_child_intake_does_not_know_answers_404_and_records_no_visit(platform):
    api, services = platform
    stranger = uuid.uuid4()  # known to guardianship, never registered in intake
    services["guardianship"].known_children.handle([child_file(stranger)])

    response = api.post(f"/v1/children/{stranger}/visits", json=VISIT_EXAMPLE)

    assert response.status_code == 404
    assert care(api, stranger)["visits"] == []


def test_the_http_gateway_files_the_report_at_intakes_api(service):
    settings = Settings(storage="memory")
    intake = build_services(settings, ["intake"])["intake"]
    intake_api = client_for(service_api(settings, intake))
    child = uuid.UUID(intake_api.post("/v1/reports", json=REPORT).json()["child_id"])
    service.known_children.handle([child_file(child)])
    gateway = HttpIntakeGateway("http://testserver")
    gateway.client = intake_api
    service.care.intake = gateway
    client = client_for(service_api(service.settings, service))

    stranger = uuid.uuid4()  # known to guardianship, not to intake
    service.known_children.handle([child_file(stranger)])

    response = client.post(f"/v1/children/{child}/visits", json=VISIT_EXAMPLE)
    refused = client.post(f"/v1/children/{stranger}/visits", json=VISIT_EXAMPLE)

    assert response.status_code == 201, response.text
    assert response.json()["report"]["case_id"]
    assert refused.status_code == 404
    assert fields(refused) == ["child_id"]
    assert care(client, stranger)["visits"] == []

"""The child's file over HTTP: register (201 / 200), the whole file, facts (PUT), history, duplicates to review,
confirm (a merge; 409 when repeated) and dismiss, a report about a registered child by id, re-derivation; every
client mistake a problem+json naming the field, with nothing stored."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from faker import Faker
from fastapi.testclient import TestClient

from huhang.bootstrap import service_api
from huhang.settings import Settings
from services.intake.main import IntakeService, build
from services.intake.schemas import CHILD_REGISTRATION_EXAMPLE, CHILD_REPORT_EXAMPLE, DECISION_EXAMPLE, FACTS_EXAMPLE
from tests.support.auth import client_for

PROBLEM = "application/problem+json"


@pytest.fixture
def service(memory_settings: Settings) -> Iterator[IntakeService]:
    built = build(memory_settings)
    yield built
    built.application.close()


@pytest.fixture
def client(memory_settings: Settings, service: IntakeService) -> TestClient:
    return client_for(service_api(memory_settings, service))


@pytest.fixture
def fake() -> Faker:
    faker = Faker("zh_CN")
    faker.seed_instance(4)
    return faker


def stored(service: IntakeService) -> int:
    return service.application.recorder.max_notification_id() or 0


def registration(fake: Faker, **child: Any) -> dict[str, Any]:
    body = copy.deepcopy(CHILD_REGISTRATION_EXAMPLE)
    body["child"] = {**body["child"], "name": fake.name(), "id_card_number": None, **child}
    return body


def assert_problem(response: Any, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert field in [e["field"] for e in response.json()["errors"]], response.json()


# --- register -----------------------------------------------------------------------------------------------------


def test_the_documented_example_registers_a_child_with_derived_categories(client):
    response = client.post("/v1/children", json=CHILD_REGISTRATION_EXAMPLE)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] is True
    assert body["categories"] == ["left_behind", "difficulty_basic_living"]
    assert response.headers["Location"] == f"/v1/children/{body['child_id']}" == body["links"]["child"]


def test_registering_the_same_child_again_answers_200_and_changes_nothing(client, service, fake):
    body = registration(fake)
    first = client.post("/v1/children", json=body)
    before = stored(service)

    again = client.post("/v1/children", json=body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["child_id"] == first.json()["child_id"]
    assert (again.json()["created"], again.json()["changed"]) == (False, False)
    assert stored(service) == before


def test_categories_cannot_be_typed_in_at_registration(client, service, fake):
    body = registration(fake, categories=["left_behind"])

    assert_problem(client.post("/v1/children", json=body), 422, "child.categories")
    assert stored(service) == 0


@pytest.mark.parametrize(
    ("facts", "field"),
    [
        ({"guardians": [{"relation": "father", "status": "present", "away_since": "2026-01-01"}]},
         "facts.guardians.0.away_since"),
        ({"guardians": [{"relation": "father", "status": "away_for_work", "away_since": "2999-01-01"}]},
         "facts.guardians.0.away_since"),
        ({"guardians": [{"relation": "mother"}, {"relation": "mother"}]}, "facts.guardians"),
        ({"guardians": [{"relation": "uncle"}]}, "facts.guardians.0.relation"),
        ({"needs": [{"kind": "housing", "source": "dibao"}, {"kind": "housing", "source": "tekun"}]}, "facts.needs"),
        ({"disability": {"certificate_level": 2}}, "facts.disability.certificate_level"),
        ({"school": {"enrolled": True, "dropped_out_on": "2026-09-01"}}, "facts.school.dropped_out_on"),
        ({"school": {"grade": 13}}, "facts.school.grade"),
        ({"favourite_colour": "red"}, "facts.favourite_colour"),
    ],
    ids=["away-since-not-away", "away-since-future", "two-mothers", "unknown-relation", "need-twice",
         "certificate-without-disability", "dropout-enrolled", "grade", "unknown-field"],
)
def test_bad_facts_answer_422_naming_the_field_and_store_nothing(client, service, fake, facts, field):
    body = {**registration(fake), "facts": facts}

    assert_problem(client.post("/v1/children", json=body), 422, field)
    assert stored(service) == 0


def test_a_child_of_18_cannot_be_registered(client, fake):
    birth = date.today().replace(year=date.today().year - 18) - timedelta(days=1)
    assert_problem(client.post("/v1/children", json=registration(fake, birth_date=birth.isoformat())), 422,
                   "child.birth_date")


# --- the file, facts, history -------------------------------------------------------------------------------------


def test_the_file_shows_identity_facts_with_their_source_categories_with_reasons_and_cases(client, fake):
    child_id = client.post("/v1/children", json=registration(fake)).json()["child_id"]

    file = client.get(f"/v1/children/{child_id}").json()

    assert {"child_id", "name", "sex", "birth_date", "township", "village", "categories", "case_ids"} <= set(file)
    assert file["categories"] == ["left_behind", "difficulty_basic_living"]
    assert file["category_reasons"] == ["left_behind:both_parents_away", "difficulty_basic_living:dibao"]
    assert file["facts"]["school"]["name"] == "虹桥镇第一小学"
    assert file["facts_provenance"]["guardians"]["source"] == "registration"
    assert file["facts_provenance"]["guardians"]["recorded_by"] == "village"
    assert file["parents_away"] is True
    assert file["has_entrusted_caregiver"] is True
    assert file["merged_into"] is None
    assert file["duplicates_pending"] == []


def test_an_unknown_child_is_a_404_problem(client):
    response = client.get("/v1/children/8b0e3a52-9a51-4c43-8b6a-1f7c3f0a6e21")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


def test_putting_facts_re_derives_the_categories(client, fake):
    child_id = client.post("/v1/children", json=registration(fake)).json()["child_id"]

    response = client.put(f"/v1/children/{child_id}/facts", json=FACTS_EXAMPLE)

    assert response.status_code == 200, response.text
    assert response.json()["changed"] is True
    assert response.json()["categories"] == ["disabled"]
    history = client.get(f"/v1/children/{child_id}/history").json()["entries"]
    derived = history[-1]
    assert derived["change"] == "categories_derived"
    assert derived["details"]["removed"] == ["left_behind", "difficulty_basic_living"]
    assert derived["details"]["added"] == ["disabled"]
    assert history[-2]["change"] == "facts_recorded"
    assert (history[-2]["source"], history[-2]["agency"]) == ("home_visit", "village")


def test_putting_bad_facts_answers_422_naming_the_field(client, service, fake):
    child_id = client.post("/v1/children", json=registration(fake)).json()["child_id"]
    before = stored(service)
    body = {**FACTS_EXAMPLE, "facts": {"guardians": [{"relation": "father", "status": "away_for_work",
                                                     "works_outside_county": "maybe"}]}}

    assert_problem(client.put(f"/v1/children/{child_id}/facts", json=body), 422,
                   "facts.guardians.0.works_outside_county")
    assert_problem(client.put(f"/v1/children/{child_id}/facts", json={**FACTS_EXAMPLE, "source": "自由文本"}), 422,
                   "source")
    assert stored(service) == before


def test_putting_facts_for_an_unknown_child_is_404(client):
    response = client.put("/v1/children/8b0e3a52-9a51-4c43-8b6a-1f7c3f0a6e21/facts", json=FACTS_EXAMPLE)
    assert response.status_code == 404


# --- duplicates ---------------------------------------------------------------------------------------------------


@pytest.fixture
def pair(client) -> tuple[str, str]:
    first = registration(Faker(), name="陈晓明", sex="male", birth_date="2016-05-03")
    second = registration(Faker(), name="陳曉明", sex="male", birth_date="2016-05-03")
    a = client.post("/v1/children", json=first).json()
    b = client.post("/v1/children", json=second).json()
    assert [d["child_id"] for d in b["duplicates"]] == [a["child_id"]]
    return a["child_id"], b["child_id"]


def test_probable_duplicates_are_listed_for_review(client, pair):
    a, b = pair

    listed = client.get("/v1/duplicates", params={"status": "pending"}).json()

    (item,) = listed["items"]
    assert (item["child_id"], item["other_child_id"], item["status"]) == (b, a, "pending")
    assert item["links"]["confirm"] == f"/v1/children/{b}/duplicates/{a}/confirm"
    assert listed["next_cursor"] is None


def test_confirming_merges_and_confirming_again_is_a_409_problem(client, service, pair):
    a, b = pair

    merged = client.post(f"/v1/children/{a}/duplicates/{b}/confirm", json=DECISION_EXAMPLE)
    before = stored(service)
    again = client.post(f"/v1/children/{a}/duplicates/{b}/confirm", json=DECISION_EXAMPLE)

    assert merged.status_code == 200, merged.text
    assert (merged.json()["child_id"], merged.json()["merged_child_id"]) == (a, b)
    assert client.get(f"/v1/children/{b}").json()["merged_into"] == a
    assert client.get(f"/v1/children/{a}").json()["absorbed"] == [b]
    assert_problem(again, 409, "other_id")
    assert stored(service) == before
    assert client.get("/v1/duplicates").json()["items"] == []
    assert client.get("/v1/duplicates", params={"status": "confirmed"}).json()["items"][0]["resolved_by"] == (
        "civil_affairs"
    )


def test_dismissing_answers_204_and_a_second_dismissal_409(client, pair):
    a, b = pair

    first = client.post(f"/v1/children/{a}/duplicates/{b}/dismiss", json={"by": "village", "note": "双胞胎"})
    second = client.post(f"/v1/children/{a}/duplicates/{b}/dismiss", json={"by": "village"})

    assert first.status_code == 204
    assert_problem(second, 409, "other_id")
    assert client.get(f"/v1/children/{a}").json()["duplicates_pending"] == []


def test_a_decision_needs_a_known_agency(client, pair):
    a, b = pair
    assert_problem(client.post(f"/v1/children/{a}/duplicates/{b}/confirm", json={"by": "mayor"}), 422, "by")


def test_dismissing_a_pair_never_flagged_is_404(client, fake):
    a = client.post("/v1/children", json=registration(fake)).json()["child_id"]
    b = client.post("/v1/children", json=registration(fake)).json()["child_id"]
    assert client.post(f"/v1/children/{a}/duplicates/{b}/dismiss", json=DECISION_EXAMPLE).status_code == 404


# --- a report about a registered child ----------------------------------------------------------------------------


def test_a_report_about_a_registered_child_is_filed_once_per_idempotency_key(client, service, fake):
    child_id = client.post("/v1/children", json=registration(fake)).json()["child_id"]
    headers = {"Idempotency-Key": "visit-2026-11-26-01"}

    first = client.post(f"/v1/children/{child_id}/reports", json=CHILD_REPORT_EXAMPLE, headers=headers)
    before = stored(service)
    again = client.post(f"/v1/children/{child_id}/reports", json=CHILD_REPORT_EXAMPLE, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201), first.text
    assert first.json()["child_id"] == child_id
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert stored(service) == before
    assert client.get(f"/v1/children/{child_id}").json()["case_ids"] == [first.json()["case_id"]]


def test_the_same_key_with_another_body_is_422_naming_the_header(client, fake):
    child_id = client.post("/v1/children", json=registration(fake)).json()["child_id"]
    headers = {"Idempotency-Key": "visit-x"}
    client.post(f"/v1/children/{child_id}/reports", json=CHILD_REPORT_EXAMPLE, headers=headers)

    changed = {**CHILD_REPORT_EXAMPLE, "urgency": "routine"}
    assert_problem(client.post(f"/v1/children/{child_id}/reports", json=changed, headers=headers), 422,
                   "Idempotency-Key")


def test_a_report_about_an_unknown_child_is_404(client):
    response = client.post("/v1/children/8b0e3a52-9a51-4c43-8b6a-1f7c3f0a6e21/reports", json=CHILD_REPORT_EXAMPLE)
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


def test_a_report_observed_in_the_future_is_422(client, fake):
    child_id = client.post("/v1/children", json=registration(fake)).json()["child_id"]
    body = {**CHILD_REPORT_EXAMPLE, "observed_on": (date.today() + timedelta(days=2)).isoformat()}
    assert_problem(client.post(f"/v1/children/{child_id}/reports", json=body), 422, "observed_on")


# --- re-derivation ------------------------------------------------------------------------------------------------


def test_re_derivation_makes_children_left_behind_once_their_parents_reach_three_months(client, fake):
    body = registration(fake)
    since = date.today() - timedelta(days=40)
    for guardian in body["facts"]["guardians"][:2]:
        guardian["away_since"] = since.isoformat()
    child_id = client.post("/v1/children", json=body).json()["child_id"]
    assert "left_behind" not in client.get(f"/v1/children/{child_id}").json()["categories"]

    later = since + timedelta(days=93)  # over three calendar months in any case
    response = client.post("/v1/children/rederivations", json={"as_of": later.isoformat()})

    assert response.status_code == 200
    assert response.json()["changed"] == [child_id]
    assert "left_behind" in client.get(f"/v1/children/{child_id}").json()["categories"]
    assert client.post("/v1/children/rederivations", json={"as_of": later.isoformat()}).json()["changed"] == []

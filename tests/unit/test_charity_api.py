"""Relief and charity matching over HTTP on the embedded app: the directory and its import, the full loop
need → match → referral → outcome, and the two gates (nothing identifying reaches a charity before approval by
the lead agency AND the guardian's consent)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faker import Faker
from fastapi import FastAPI
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from contracts.events import NeedRecorded
from huhang.auth.principal import Principal, Role
from huhang.bootstrap import build_services, embedded_api, subscription_consumers
from huhang.service import Service
from huhang.settings import Settings
from huhang.streams import drain
from services.intake.schemas import CHILD_REGISTRATION_EXAMPLE, CHILD_REPORT_EXAMPLE
from services.referral.needs_integration import to_need_events
from tests.support.auth import SYSTEM, bearer
from tests.support.principals import CHILD_DIRECTOR, LEAD_OFFICER, POLICE_OFFICER, TOWNSHIP, VILLAGE

CHARITY = Principal("client-charity-a", "client", Agency.charity, frozenset({Role.agency_officer}))
OTHER_CHARITY = Principal("client-charity-b", "client", Agency.charity, frozenset({Role.agency_officer}))
TODAY = datetime.now(UTC).date()


@dataclass
class World:
    app: FastAPI
    client: TestClient
    services: dict[str, Service]
    case_id: uuid.UUID
    child_id: uuid.UUID
    organisation_id: uuid.UUID
    service_id: uuid.UUID
    secrets: dict[str, str]

    def call(self, method: str, path: str, principal: Principal, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers=bearer(self.app, principal), **kwargs)


def organisation(organisation_id: uuid.UUID, service_id: uuid.UUID, fake: Faker, **service: Any) -> dict[str, Any]:
    location_id = str(uuid.uuid5(organisation_id, "hq"))
    return {
        "id": str(organisation_id), "name": f"{fake.city_name()}慈善会", "kind": "charity",
        "members": [CHARITY.subject],
        "locations": [{"id": location_id, "name": "服务点", "township": TOWNSHIP}],
        "contacts": [{"name": "服务台", "phone": "0577-6200000"}],
        "services": [{
            "id": str(service_id), "name": "助学金", "category": "tuition_supplies", "capacity": 3,
            "eligibility": {"minimum_age": 6, "maximum_age": 17}, "service_areas": [{"township": TOWNSHIP}],
            "location_ids": [location_id], **service,
        }],
    }


@pytest.fixture
def world() -> Iterator[World]:
    fake = Faker("zh_CN")
    settings = Settings(storage="memory")
    services = build_services(settings)
    app = embedded_api(settings, services)
    client = TestClient(app)
    registered = client.post("/v1/children", json=CHILD_REGISTRATION_EXAMPLE, headers=bearer(app, SYSTEM))
    assert registered.status_code == 201, registered.text
    child_id = uuid.UUID(registered.json()["child_id"])
    reported = client.post(f"/v1/children/{child_id}/reports", json=CHILD_REPORT_EXAMPLE, headers=bearer(app, SYSTEM))
    assert reported.status_code == 201, reported.text
    for service in services.values():  # the case-access read model knows the case and its area
        for consumer in subscription_consumers(settings, service, services):
            consumer.poll_timeout_s = 0.01
            drain(consumer)
    secrets = {"guardian_name": fake.name(), "guardian_phone": fake.phone_number(), "address": fake.street_address()}
    w = World(app, client, services, uuid.UUID(reported.json()["case_id"]), child_id, uuid.uuid4(), uuid.uuid4(),
              secrets)
    saved = w.call("PUT", f"/v1/organisations/{w.organisation_id}", LEAD_OFFICER,
                   json=organisation(w.organisation_id, w.service_id, fake))
    assert saved.status_code == 201, saved.text
    yield w
    for service in services.values():
        service.application.close()


def record_need(w: World, principal: Principal = CHILD_DIRECTOR, key: str = "visit-1", **changes: Any) -> Any:
    body = {
        "child_id": str(w.child_id), "category": "tuition_supplies", "township": TOWNSHIP, "village": VILLAGE,
        "birth_date": str(TODAY.replace(year=TODAY.year - 10) - timedelta(days=3)), "child_categories": ["left_behind"],
        "found_by": principal.agency.value, "finding_key": key, "details": w.secrets, **changes,
    }
    return w.call("POST", f"/v1/cases/{w.case_id}/needs", principal, json=body)


def needs_path(w: World, need_id: str) -> str:
    return f"/v1/cases/{w.case_id}/needs/{need_id}"


def proposed(w: World) -> tuple[str, str]:
    need = record_need(w)
    assert need.status_code == 201, need.text
    need_id = need.json()["need_id"]
    match = w.call("POST", f"{needs_path(w, need_id)}/matches", LEAD_OFFICER, json={"service_id": str(w.service_id)})
    assert match.status_code == 201, match.text
    return need_id, match.json()["match_id"]


def approve(w: World, need_id: str, match_id: str) -> Any:
    return w.call("POST", f"{needs_path(w, need_id)}/matches/{match_id}/approval", LEAD_OFFICER)


def consent(w: World, need_id: str, match_id: str) -> Any:
    return w.call("POST", f"{needs_path(w, need_id)}/matches/{match_id}/consent", CHILD_DIRECTOR,
                  json={"consent_on": str(TODAY), "given_by": "grandparent", "agency": "village"})


def offers(w: World, principal: Principal = CHARITY) -> Any:
    return w.call("GET", f"/v1/organisations/{w.organisation_id}/offers", principal)


def identifying(w: World, text: str) -> list[str]:
    """What a charity must not see before both gates: the child's and the case's ids, names, the secrets."""
    child = CHILD_REGISTRATION_EXAMPLE["child"]
    found = [v for v in (*w.secrets.values(), child["name"], child["id_card_number"], str(w.child_id),
                         str(w.case_id), VILLAGE) if v in text]
    return found


# --- the full loop -----------------------------------------------------------------------------------------------


def test_need_match_referral_outcome_closes_the_loop(world):
    w = world
    need_id, match_id = proposed(w)
    ranked = w.call("GET", f"{needs_path(w, need_id)}/matches", LEAD_OFFICER)
    assert [r["service_id"] for r in ranked.json()] == [str(w.service_id)]

    assert approve(w, need_id, match_id).status_code == 200
    answer = consent(w, need_id, match_id)
    assert answer.status_code == 200, answer.text
    referral_id = answer.json()["match"]["referral_id"]
    assert answer.json()["match"]["status"] == "referred"

    [offer] = offers(w).json()
    assert offer["details"] == w.secrets
    assert offer["referral_id"] == referral_id

    assert w.call("POST", f"/v1/organisations/{w.organisation_id}/offers/{match_id}/acceptance", CHARITY
                  ).status_code == 200
    done = w.call("POST", f"/v1/organisations/{w.organisation_id}/offers/{match_id}/outcome", CHARITY,
                  json={"outcome": "service_delivered", "delivered_on": str(TODAY), "amount_yuan": "800.00"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"

    referral = w.call("GET", f"/v1/referrals/{referral_id}", LEAD_OFFICER).json()
    assert (referral["owner_agency"], referral["status"]) == ("charity", "completed")
    assert [h["status"] for h in referral["history"] if h.get("status")] == [
        "requested", "accepted", "in-progress", "completed"]
    [needs] = w.call("GET", f"/v1/cases/{w.case_id}/needs", CHILD_DIRECTOR).json()
    assert needs["status"] == "met"
    figures = w.call("GET", "/v1/relief/figures", LEAD_OFFICER).json()
    assert figures["needs"] == [{"category": "tuition_supplies", "township": TOWNSHIP, "open": 0, "matched": 0,
                                 "met": 1}]


def test_an_outcome_names_an_amount_or_a_service(world):
    need_id, match_id = proposed(world)
    approve(world, need_id, match_id)
    consent(world, need_id, match_id)

    answer = world.call("POST", f"/v1/organisations/{world.organisation_id}/offers/{match_id}/outcome", CHARITY,
                        json={"outcome": "service_delivered", "delivered_on": str(TODAY)})

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "amount_yuan"


# --- the gates ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["approval", "consent"])
def test_nothing_identifying_reaches_the_charity_before_both_gates(world, first):
    need_id, match_id = proposed(world)
    seen = [offers(world).text]
    (approve if first == "approval" else consent)(world, need_id, match_id)
    seen.append(offers(world).text)

    for text in seen:
        assert identifying(world, text) == []
        [offer] = json.loads(text)
        assert offer["details"] is None
        assert offer["referral_id"] is None
        assert offer["age_band"] == "6-11"
        assert offer["township"] == TOWNSHIP

    (consent if first == "approval" else approve)(world, need_id, match_id)
    assert sorted(identifying(world, offers(world).text)) == sorted([*world.secrets.values(), VILLAGE])


def test_a_charity_cannot_act_on_a_match_before_both_gates(world):
    need_id, match_id = proposed(world)
    approve(world, need_id, match_id)

    answer = world.call("POST", f"/v1/organisations/{world.organisation_id}/offers/{match_id}/acceptance", CHARITY)

    assert answer.status_code == 409


def test_only_the_lead_agency_approves_and_proposes(world):
    need_id, match_id = proposed(world)

    for principal in (CHILD_DIRECTOR, POLICE_OFFICER, CHARITY):
        assert approve_as(world, need_id, match_id, principal).status_code == 403
    assert world.call("POST", f"{needs_path(world, need_id)}/matches", CHILD_DIRECTOR,
                      json={"service_id": str(world.service_id)}).status_code == 403


def approve_as(w: World, need_id: str, match_id: str, principal: Principal) -> Any:
    return w.call("POST", f"{needs_path(w, need_id)}/matches/{match_id}/approval", principal)


def test_a_charity_sees_no_case_child_or_referral_even_after_the_match(world):
    need_id, match_id = proposed(world)
    approve(world, need_id, match_id)
    referral_id = consent(world, need_id, match_id).json()["match"]["referral_id"]

    for path in (f"/v1/cases/{world.case_id}", f"/v1/children/{world.child_id}", f"/v1/referrals/{referral_id}",
                 f"/v1/cases/{world.case_id}/needs", "/v1/agencies/charity/referrals", "/v1/relief/figures"):
        assert world.call("GET", path, CHARITY).status_code == 403, path


def test_another_charity_sees_none_of_the_organisations_offers(world):
    proposed(world)

    assert offers(world, OTHER_CHARITY).status_code == 403
    assert world.call("PUT", f"/v1/organisations/{world.organisation_id}", OTHER_CHARITY,
                      json={}).status_code == 403


# --- needs, eligibility through the API ---------------------------------------------------------------------------


def test_a_need_recorded_twice_for_the_same_finding_is_one_need(world):
    first, again = record_need(world), record_need(world)

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["need_id"] == again.json()["need_id"]


def test_a_need_may_be_recorded_only_as_the_callers_own_agency(world):
    assert record_need(world, found_by="police").status_code == 403


def test_a_full_service_is_not_offered_and_cannot_be_matched(world):
    fake = Faker("zh_CN")
    world.call("PUT", f"/v1/organisations/{world.organisation_id}", LEAD_OFFICER,
               json=organisation(world.organisation_id, world.service_id, fake, capacity=1))
    proposed(world)
    second = record_need(world, key="visit-2").json()["need_id"]

    assert world.call("GET", f"{needs_path(world, second)}/matches", LEAD_OFFICER).json() == []
    answer = world.call("POST", f"{needs_path(world, second)}/matches", LEAD_OFFICER,
                        json={"service_id": str(world.service_id)})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "service_id"


def test_a_child_too_old_on_the_day_is_not_matched(world):
    born = TODAY.replace(year=TODAY.year - 18) + timedelta(days=1)  # 17 today, 18 tomorrow
    need_id = record_need(world, birth_date=str(born)).json()["need_id"]
    path = f"{needs_path(world, need_id)}/matches"

    assert len(world.call("GET", path, LEAD_OFFICER).json()) == 1
    assert world.call("GET", path, LEAD_OFFICER, params={"on": str(TODAY + timedelta(days=1))}).json() == []


def test_the_integration_event_carries_ids_and_codes_only(world):
    need_id = uuid.UUID(record_need(world).json()["need_id"])
    referral = world.services["referral"].application

    [recorded] = [e for d in referral.events.get(need_id) for e in to_need_events(d)]

    assert isinstance(recorded, NeedRecorded)
    text = recorded.model_dump_json()
    child = CHILD_REGISTRATION_EXAMPLE["child"]
    assert [v for v in (*world.secrets.values(), child["name"], child["id_card_number"]) if v in text] == []
    assert "birth" not in text
    assert str(need_id) in text


# --- the directory -----------------------------------------------------------------------------------------------


def test_a_member_updates_its_organisation_but_not_its_members(world):
    fake = Faker("zh_CN")
    document = organisation(world.organisation_id, world.service_id, fake)
    path = f"/v1/organisations/{world.organisation_id}"

    assert world.call("PUT", path, CHARITY, json=document).json()["changed"] is True
    assert world.call("PUT", path, CHARITY, json={**document, "members": [CHARITY.subject, "client-x"]}
                      ).status_code == 403
    assert "members" not in world.call("GET", path, CHARITY).json()
    assert world.call("GET", path, LEAD_OFFICER).json()["members"] == [CHARITY.subject]


def test_a_new_organisation_is_registered_by_the_lead_agency_only(world):
    other = uuid.uuid4()
    answer = world.call("PUT", f"/v1/organisations/{other}", CHARITY,
                        json=organisation(other, uuid.uuid4(), Faker("zh_CN")))

    assert answer.status_code == 403


CSV = (
    "organization_id,organization_name,organization_kind,service_id,service_name,category,minimum_age,maximum_age,"
    "child_categories,townships,capacity,cost,status,location_township\n"
    "{org},乐清市阳光助学会,charity,{s1},学习用品,tuition_supplies,6,15,left_behind,虹桥镇|淡溪镇,20,free,active,虹桥镇\n"
    "{org},乐清市阳光助学会,charity,{s2},周末辅导,tutoring,6,12,,,,,active,虹桥镇\n"
)


def test_the_directory_imports_from_csv_and_an_import_run_twice_changes_nothing(world):
    org, s1, s2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    body = CSV.format(org=org, s1=s1, s2=s2).encode()
    headers = {"content-type": "text/csv", **bearer(world.app, LEAD_OFFICER)}

    first = world.client.post("/v1/organisation-imports", content=body, headers=headers)
    again = world.client.post("/v1/organisation-imports", content=body, headers=headers)

    assert first.json() == {"organisations": 1, "created": 1, "changed": 0, "unchanged": 0}, first.text
    assert again.json() == {"organisations": 1, "created": 0, "changed": 0, "unchanged": 1}
    document = world.call("GET", f"/v1/organisations/{org}", LEAD_OFFICER).json()
    assert {s["category"] for s in document["services"]} == {"tuition_supplies", "tutoring"}


def test_an_hsds_json_import_with_a_bad_row_saves_nothing_and_names_the_field(world):
    fake = Faker("zh_CN")
    good, bad = uuid.uuid4(), uuid.uuid4()
    broken = organisation(bad, uuid.uuid4(), fake)
    broken["services"][0]["eligibility"] = {"minimum_age": 12, "maximum_age": 6}

    answer = world.call("POST", "/v1/organisation-imports", LEAD_OFFICER,
                        json={"organizations": [organisation(good, uuid.uuid4(), fake), broken]})

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"].startswith("organizations[1].services.0.eligibility")
    assert world.call("GET", f"/v1/organisations/{good}", LEAD_OFFICER).status_code == 404


# --- withdrawal and decline ---------------------------------------------------------------------------------------


def referred(w: World) -> tuple[str, str, str]:
    need_id, match_id = proposed(w)
    approve(w, need_id, match_id)
    return need_id, match_id, consent(w, need_id, match_id).json()["match"]["referral_id"]


def test_a_withdrawn_match_cancels_its_referral_and_the_need_is_matched_again(world):
    need_id, match_id, referral_id = referred(world)

    answer = world.call("POST", f"{needs_path(world, need_id)}/matches/{match_id}/withdrawal", LEAD_OFFICER,
                        json={"reason_code": "consent_refused"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "open"
    assert world.call("GET", f"/v1/referrals/{referral_id}", LEAD_OFFICER).json()["status"] == "cancelled"
    assert offers(world).json() == []
    again = world.call("POST", f"{needs_path(world, need_id)}/matches", LEAD_OFFICER,
                       json={"service_id": str(world.service_id)})
    assert again.status_code == 201
    assert again.json()["match_id"] != match_id


def test_a_charity_declines_before_accepting_and_its_referral_is_rejected(world):
    _, match_id, referral_id = referred(world)
    decline = f"/v1/organisations/{world.organisation_id}/offers/{match_id}/decline"

    assert world.call("POST", decline, OTHER_CHARITY, json={"reason_code": "out_of_area"}).status_code == 403
    assert world.call("POST", decline, CHARITY, json={"reason_code": "out_of_area"}).status_code == 200
    referral = world.call("GET", f"/v1/referrals/{referral_id}", LEAD_OFFICER).json()
    assert (referral["status"], referral["history"][-1]["reason_code"]) == ("rejected", "out_of_area")


def test_a_charity_that_accepted_cannot_decline(world):
    _, match_id, _ = referred(world)
    world.call("POST", f"/v1/organisations/{world.organisation_id}/offers/{match_id}/acceptance", CHARITY)

    answer = world.call("POST", f"/v1/organisations/{world.organisation_id}/offers/{match_id}/decline", CHARITY,
                        json={"reason_code": "other"})

    assert answer.status_code == 409

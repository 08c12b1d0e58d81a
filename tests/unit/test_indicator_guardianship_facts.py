"""Guardianship's facts the indicators count, as contract events (issue 8): a parent contact, an entrusted-care
agreement signed (with its term), a child director appointed, trained and leaving.

First what guardianship publishes for each, with the right fields and nothing personal (names, phones, the course's
title, notes); then end to end in one process (embedded, in memory): a child registered at intake, care and the
roster recorded through guardianship's HTTP API, the consumers drained, and the indicators' figures for the
child's village and township move as they should.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from faker import Faker
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from contracts.cases import care_case_id
from contracts.envelope import CloudEvent
from contracts.events import (
    ChildDirectorAssigned,
    ChildDirectorLeft,
    ChildDirectorTrained,
    EntrustedCareAgreementSigned,
    ParentContactRecorded,
)
from huhang.bootstrap import build_services, embedded_api, service_api, subscription_consumers
from huhang.settings import Settings
from huhang.streams import drain
from services.guardianship.care import CareFile
from services.guardianship.integration import to_integration_events
from services.guardianship.ladder_schemas import china_today
from services.guardianship.main import GuardianshipService, build
from services.intake.schemas import CHILD_REGISTRATION_EXAMPLE
from tests.support.auth import client_for
from tests.unit.test_visit_regime import child_file

pytestmark = pytest.mark.timeout(120)

TODAY = china_today()
CAREGIVER, DIRECTOR, PHONE, COURSE = "王秀英", "陈丽华", "13857712345", "乐清市儿童主任全覆盖培训"


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
    known = uuid.uuid4()
    service.known_children.handle([child_file(known, parents_away_since=date(2026, 1, 1))])
    return known


def published(service: GuardianshipService) -> list[CloudEvent]:
    """Everything guardianship's log maps to, from the start (a follower's position is left alone)."""
    app = service.application
    mapping = service.to_integration_events()
    return [e for n in app.recorder.select_notifications(start=1, limit=100_000)
            for e in mapping(app.mapper.to_domain_event(n))]


def only(events: list[CloudEvent], cls: type[CloudEvent]) -> Any:
    found = [e for e in events if isinstance(e, cls)]
    assert len(found) == 1, found
    return found[0]


def agreement(**changes: Any) -> dict[str, Any]:
    body = {"caregiver_name": CAREGIVER, "relation": "grandparent", "start_on": "2026-03-01", "end_on": "2027-02-28",
            "signed": True, "signed_on": "2026-02-26", "recorded_by": "village"}
    return {**body, **changes}


def appoint(api: TestClient, township: str = "虹桥镇", village: str = "溪西村") -> str:
    response = api.post("/v1/child-directors", json={
        "name": DIRECTOR, "phone": PHONE, "township": township, "village": village, "appointed_on": "2024-04-15",
    })
    assert response.status_code == 201, response.text
    return str(response.json()["director_id"])


def train(api: TestClient, director_id: str, on: date = TODAY) -> str:
    response = api.post(f"/v1/child-directors/{director_id}/trainings",
                        json={"trained_on": on.isoformat(), "course": COURSE, "hours": 8})
    assert response.status_code == 201, response.text
    return str(response.json()["training_id"])


def leave(api: TestClient, director_id: str) -> None:
    response = api.post(f"/v1/child-directors/{director_id}/leave",
                        json={"left_on": TODAY.isoformat(), "reason": "post_changed"})
    assert response.status_code == 200, response.text


def assert_nothing_personal(event: CloudEvent, *values: str) -> None:
    text = event.model_dump_json()
    for value in values:
        assert value not in text


# --- what guardianship publishes ------------------------------------------------------------------------------------


def test_a_parent_contact_is_published_with_its_codes_and_the_childs_care_case(client, service, child_id):
    response = client.post(f"/v1/children/{child_id}/parent-contacts", json={
        "contacted_on": "2026-11-24", "channel": "video", "parent": "mother", "recorded_by": "village",
    })
    assert response.status_code == 201, response.text

    event = only(published(service), ParentContactRecorded)

    assert event.subject == str(care_case_id(child_id))
    assert event.actoragency == Agency.village
    assert event.data.model_dump(mode="json") == {
        "contact_id": response.json()["contact_id"], "child_id": str(child_id),
        "case_id": str(care_case_id(child_id)), "contacted_on": "2026-11-24", "channel": "video", "parent": "mother",
    }


def test_an_agreement_recorded_signed_is_published_with_its_term(client, service, child_id):
    response = client.post(f"/v1/children/{child_id}/entrusted-care-agreements", json=agreement())
    assert response.status_code == 201, response.text

    event = only(published(service), EntrustedCareAgreementSigned)

    assert event.subject == str(care_case_id(child_id))
    assert event.data.model_dump(mode="json") == {
        "agreement_id": response.json()["agreement_id"], "child_id": str(child_id),
        "case_id": str(care_case_id(child_id)), "signed_on": "2026-02-26", "starts_on": "2026-03-01",
        "expires_on": "2027-02-28",
    }
    assert_nothing_personal(event, CAREGIVER, "grandparent")


def test_an_unsigned_agreement_publishes_nothing_until_its_signature_which_carries_the_term(client, service, child_id):
    base = f"/v1/children/{child_id}/entrusted-care-agreements"
    created = client.post(base, json=agreement(signed=False, signed_on=None, end_on=None))
    assert created.status_code == 201, created.text
    assert [e for e in published(service) if isinstance(e, EntrustedCareAgreementSigned)] == []

    signed = client.post(f"{base}/{created.json()['agreement_id']}/signature",
                         json={"signed_on": "2026-03-02", "agency": "township"})
    assert signed.status_code == 200, signed.text

    event = only(published(service), EntrustedCareAgreementSigned)
    assert event.actoragency == Agency.township
    assert (event.data.signed_on, event.data.starts_on, event.data.expires_on) == (
        date(2026, 3, 2), date(2026, 3, 1), None
    )


def test_a_signature_stored_before_signatures_carried_the_term_replays_and_is_not_published():
    """Such a stored event has no ``start_on``/``end_on`` at all (the mapper sets the stored state as it was)."""
    child_id, agreement_id = uuid.uuid4(), uuid.uuid4()
    care = CareFile(child_id=child_id)
    care.record_agreement(agreement_id, CAREGIVER, "grandparent", date(2026, 3, 1), date(2027, 2, 28), False, None,
                          "village", "f")
    old = object.__new__(CareFile.AgreementSigned)  # type: ignore[attr-defined]
    object.__setattr__(old, "__dict__", {
        "originator_id": care.id, "originator_version": care.version + 1, "timestamp": datetime.now(UTC),
        "agreement_id": agreement_id, "child_id": child_id, "signed_on": date(2026, 3, 2), "recorded_by": "village",
    })

    old.mutate(care)

    assert care.agreements[str(agreement_id)]["signed"] is True
    assert to_integration_events(old) == []


def test_a_director_appointed_trained_and_leaving_is_published_about_the_director(client, service):
    director_id = appoint(client)
    training_id = train(client, director_id, date(2026, 6, 18))
    leave(client, director_id)

    events = published(service)
    appointed, trained, left = (only(events, cls) for cls in (ChildDirectorAssigned, ChildDirectorTrained,
                                                              ChildDirectorLeft))

    assert {appointed.subject, trained.subject, left.subject} == {director_id}
    assert appointed.data.model_dump(mode="json") == {
        "director_id": director_id, "township": "虹桥镇", "village": "溪西村", "appointed_on": "2024-04-15",
    }
    assert trained.data.model_dump(mode="json") == {
        "training_id": training_id, "director_id": director_id, "trained_on": "2026-06-18", "hours": 8.0,
    }
    assert left.data.model_dump(mode="json") == {"director_id": director_id, "left_on": TODAY.isoformat()}
    for event in (appointed, trained, left):
        assert event.actoragency == Agency.civil_affairs
        assert_nothing_personal(event, DIRECTOR, PHONE, COURSE, "post_changed")


# --- end to end: guardianship's HTTP API to the indicators' figures (embedded, in memory) -----------------------------


@pytest.fixture
def platform() -> Iterator[tuple[TestClient, dict[str, Any]]]:
    settings = Settings(storage="memory")
    services = build_services(settings)
    yield client_for(embedded_api(settings, services)), services
    for s in services.values():
        s.application.close()


def settle(services: dict[str, Any]) -> None:
    """Drain what guardianship and the indicators follow (intake's child files; every service's events)."""
    for name in ("guardianship", "indicators"):
        for consumer in subscription_consumers(services[name].settings, services[name], services):
            consumer.poll_timeout_s = 0.01
            drain(consumer, limit_s=20)


def figure(services: dict[str, Any], code: str, kind: str, unit: str) -> tuple[int, int] | None:
    """(numerator, denominator) of one indicator for one unit now; None when it has no value."""
    found = [v for v in services["indicators"].queries.values(code, kind, unit, datetime.now(UTC), False)
             if v.breakdown is None]
    assert len(found) <= 1, found
    return (found[0].numerator, found[0].denominator) if found else None


def test_guardianships_facts_move_the_indicators_of_the_childs_village_and_township(platform):
    api, services = platform
    township, village = "虹桥镇", "溪西村"
    body = json.loads(json.dumps(CHILD_REGISTRATION_EXAMPLE))
    body["child"] = {**body["child"], "name": Faker("zh_CN").name(), "id_card_number": None,
                     "township": township, "village": village}
    registered = api.post("/v1/children", json=body)
    assert registered.status_code == 201, registered.text
    child_id = registered.json()["child_id"]
    settle(services)
    place = f"{township}/{village}"

    assert figure(services, "parent_contact_compliance", "village", place) == (0, 1)
    assert figure(services, "entrusted_care_coverage", "village", place) == (0, 1)
    assert figure(services, "director_coverage", "township", township) == (0, 1)
    assert figure(services, "training_coverage", "township", township) is None  # no director to train

    contact = api.post(f"/v1/children/{child_id}/parent-contacts", json={
        "contacted_on": (TODAY - timedelta(days=2)).isoformat(), "channel": "phone", "parent": "father",
        "recorded_by": "village",
    })
    created = api.post(f"/v1/children/{child_id}/entrusted-care-agreements", json=agreement(
        start_on=(TODAY - timedelta(days=30)).isoformat(), end_on=(TODAY + timedelta(days=335)).isoformat(),
        signed=False, signed_on=None,
    ))
    assert (contact.status_code, created.status_code) == (201, 201), (contact.text, created.text)
    director_id = appoint(api, township, village)
    settle(services)

    assert figure(services, "parent_contact_compliance", "village", place) == (1, 1)
    assert figure(services, "entrusted_care_coverage", "village", place) == (0, 1)  # not signed yet
    assert figure(services, "director_coverage", "township", township) == (1, 1)
    assert figure(services, "training_coverage", "township", township) == (0, 1)

    signed = api.post(f"/v1/children/{child_id}/entrusted-care-agreements/{created.json()['agreement_id']}/signature",
                      json={"signed_on": (TODAY - timedelta(days=1)).isoformat(), "agency": "village"})
    assert signed.status_code == 200, signed.text
    train(api, director_id)
    settle(services)

    assert figure(services, "entrusted_care_coverage", "village", place) == (1, 1)
    assert figure(services, "training_coverage", "township", township) == (1, 1)

    leave(api, director_id)
    settle(services)

    assert figure(services, "director_coverage", "township", township) == (0, 1)
    assert figure(services, "training_coverage", "township", township) is None

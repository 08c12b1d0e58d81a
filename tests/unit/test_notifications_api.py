import uuid
from datetime import UTC, datetime

import pytest

from contracts.agencies import Agency
from contracts.events import ReferralRequested, ReferralRequestedData
from contracts.vocabulary import Priority
from huhang.bootstrap import service_api
from huhang.settings import Settings
from services.notifications.main import build
from tests.support.auth import client_for


def referral_requested(owner: Agency) -> ReferralRequested:
    event_id, case_id = uuid.uuid4(), uuid.uuid4()
    return ReferralRequested(
        id=event_id, source="/huhang/referral", subject=str(case_id), time=datetime.now(UTC),
        dataschema=ReferralRequested.schema_uri(), correlationid=event_id, actoragency=Agency.civil_affairs,
        data=ReferralRequestedData(
            referral_id=uuid.uuid4(), case_id=case_id, child_id=uuid.uuid4(), owner_agency=owner,
            requester_agency=Agency.civil_affairs, referral_type="psychological_support", priority=Priority.routine,
            due_at=datetime(2026, 12, 5, 9, 0, tzinfo=UTC), plan_tasks=(2,), rule_id="crisis-to-health",
            rules_version="2026.11", source_event_id=uuid.uuid4(), township="柳市镇", village="东风村",
        ),
    )


@pytest.fixture
def service():
    return build(Settings(storage="memory"))


@pytest.fixture
def client(service):
    return client_for(service_api(service.settings, service))


def test_the_feed_answers_the_items_after_the_cursor_and_the_next_cursor(service, client):
    service.feed.handle([referral_requested(Agency.health) for _ in range(3)])
    first = client.get("/v1/agencies/health/notifications", params={"limit": 2}).json()

    rest = client.get("/v1/agencies/health/notifications", params={"after": first["next_cursor"]}).json()

    assert (len(first["items"]), len(rest["items"])) == (2, 1)
    assert rest["next_cursor"] == rest["items"][0]["sequence"]


def test_an_empty_page_keeps_the_cursor(client):
    response = client.get("/v1/agencies/health/notifications", params={"after": 7})

    assert response.status_code == 200
    assert response.json() == {"agency": "health", "items": [], "next_cursor": 7}


def test_an_unknown_agency_answers_422_problem_naming_the_field(client):
    response = client.get("/v1/agencies/fire_brigade/notifications")

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["path.agency"]

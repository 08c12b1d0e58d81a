"""Reminders (overdue visits, parents who did not call) reach whoever must act, at most once per item and period;
the daily digest is written once per agency and day; texts in Chinese and English."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from contracts.agencies import Agency
from contracts.events import ParentContactMissed, ParentContactMissedData, VisitOverdue, VisitOverdueData
from contracts.vocabulary import VisitKind
from huhang.bootstrap import service_api
from huhang.settings import Settings
from services.notifications.main import build
from tests.support.auth import SYSTEM, client_for, officer

CHILD = uuid.uuid4()
CASE = uuid.uuid4()
PLACE = {"township": "虹桥镇", "village": "溪西村"}
NOV_28_NOON_CST = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)


def envelope(cls: type, at: datetime = NOV_28_NOON_CST) -> dict[str, object]:
    event_id = uuid.uuid4()
    return {"id": event_id, "source": "/huhang/guardianship", "subject": str(CASE), "time": at,
            "dataschema": cls.schema_uri(), "correlationid": event_id, "actoragency": Agency.village}  # type: ignore[attr-defined]


def overdue(days: int, due_on: date = date(2026, 11, 20)) -> VisitOverdue:
    return VisitOverdue(**envelope(VisitOverdue), data=VisitOverdueData(
        child_id=CHILD, case_id=CASE, kind=VisitKind.home_visit, due_on=due_on, days_overdue=days, **PLACE))


def missed(week: int) -> ParentContactMissed:
    return ParentContactMissed(**envelope(ParentContactMissed), data=ParentContactMissedData(
        child_id=CHILD, case_id=CASE, last_contact_on=date(2026, 11, 1), days_without_contact=7 * week + 1,
        consecutive_misses=week, escalated=week >= 2, **PLACE))


@pytest.fixture
def service():
    return build(Settings(storage="memory"))


@pytest.fixture
def client(service):
    return client_for(service_api(service.settings, service))


def feed(client, agency: str) -> list[dict[str, Any]]:
    return client.get(f"/v1/agencies/{agency}/notifications", params={"limit": 200}).json()["items"]


def test_an_overdue_visit_reminds_the_village_once_per_due_day(service, client):
    service.feed.handle([overdue(1)])
    service.feed.handle([overdue(2)])  # the care check ran again: the same item and period
    service.feed.handle([overdue(1, due_on=date(2027, 2, 20))])  # the next period

    items = feed(client, "village")

    assert [i["kind"] for i in items] == ["visit_overdue", "visit_overdue"]
    assert "入户走访已逾期1天" in items[0]["text_zh"]
    assert items[0]["text_en"].startswith("A home visit is 1 day(s) overdue")
    assert feed(client, "township") == []


def test_a_repeatedly_missed_parent_contact_also_reaches_the_township(service, client):
    service.feed.handle([missed(1), missed(1), missed(2)])

    village = feed(client, "village")
    township = feed(client, "township")

    assert [i["kind"] for i in village] == ["parent_contact_missed", "parent_contact_missed"]
    assert [(i["kind"], i["priority"]) for i in township] == [("parent_contact_missed", "urgent")]


def test_the_daily_digest_counts_the_days_notices_once_per_agency_and_day(service, client):
    service.feed.handle([overdue(1), missed(2)])
    run = client_for(service_api(service.settings, service), SYSTEM)

    first = run.post("/v1/notification-digests", json={"day": "2026-11-28"})
    again = run.post("/v1/notification-digests", json={"day": "2026-11-28"})
    other_day = run.post("/v1/notification-digests", json={"day": "2026-11-27"})

    assert first.status_code == 200, first.text
    assert first.json() == {"day": "2026-11-28", "agencies": ["township", "village"]}
    assert again.json() == first.json()
    assert other_day.json()["agencies"] == []
    digests = [i for i in feed(client, "village") if i["kind"] == "daily_digest"]
    assert len(digests) == 1
    assert digests[0]["text_zh"] == "2026-11-28 共 2 条通知：parent_contact_missed 1，visit_overdue 1"


def test_only_the_platform_writes_digests(service):
    officer_client = client_for(service_api(service.settings, service), officer(Agency.civil_affairs))
    assert officer_client.post("/v1/notification-digests", json={}).status_code == 403

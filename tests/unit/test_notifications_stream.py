"""The notification feed's filters (the webhook subscriptions' own: event types, township, village) and its
Server-Sent Events stream (id = cursor, Last-Event-ID honoured, heartbeats, a bounded stream)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from contracts.events import (
    ReferralEscalated,
    ReferralEscalatedData,
    ReferralRequested,
    ReferralRequestedData,
)
from contracts.vocabulary import EscalationKind, Priority
from huhang.bootstrap import service_api
from huhang.settings import Settings
from services.notifications.main import build
from tests.support.auth import bearer, client_for, officer

HONGQIAO, XIXI, XIDONG = "虹桥镇", "溪西村", "溪东村"


def requested(owner: Agency, township: str = HONGQIAO, village: str = XIXI,
              case_id: uuid.UUID | None = None) -> ReferralRequested:
    event_id, case_id = uuid.uuid4(), case_id or uuid.uuid4()
    return ReferralRequested(
        id=event_id, source="/huhang/referral", subject=str(case_id), time=datetime.now(UTC),
        dataschema=ReferralRequested.schema_uri(), correlationid=event_id, actoragency=Agency.civil_affairs,
        data=ReferralRequestedData(
            referral_id=uuid.uuid4(), case_id=case_id, child_id=uuid.uuid4(), owner_agency=owner,
            requester_agency=Agency.civil_affairs, referral_type="psychological_support", priority=Priority.routine,
            due_at=datetime(2026, 12, 5, 9, 0, tzinfo=UTC), plan_tasks=(2,), rule_id="crisis-to-health",
            rules_version="2026.11", source_event_id=uuid.uuid4(), township=township, village=village,
        ),
    )


def escalated(owner: Agency, case_id: uuid.UUID) -> ReferralEscalated:
    event_id = uuid.uuid4()
    return ReferralEscalated(
        id=event_id, source="/huhang/referral", subject=str(case_id), time=datetime.now(UTC),
        dataschema=ReferralEscalated.schema_uri(), correlationid=event_id, actoragency=Agency.civil_affairs,
        data=ReferralEscalatedData(
            referral_id=uuid.uuid4(), case_id=case_id, owner_agency=owner, level=1,
            kind=next(iter(EscalationKind)), supervising_agency=Agency.civil_affairs,
            overdue_since=datetime(2026, 11, 28, tzinfo=UTC),
        ),
    )


@pytest.fixture
def service():
    return build(Settings(storage="memory", notifications_stream_max_s=0.3, notifications_stream_poll_s=0.02,
                          notifications_stream_heartbeat_s=0.05))


@pytest.fixture
def client(service):
    return client_for(service_api(service.settings, service))


def sequences(answer: Any) -> list[int]:
    return [item["sequence"] for item in answer.json()["items"]]


def test_the_feed_filters_by_event_type_township_and_village(service, client):
    here = requested(Agency.health)
    service.feed.handle([here, requested(Agency.health, village=XIDONG), requested(Agency.health, township="柳市镇")])
    service.feed.handle([escalated(Agency.health, here.data.case_id)])  # its place: remembered from the case
    feed = "/v1/agencies/health/notifications"

    everything = client.get(feed)
    in_township = client.get(feed, params={"township": HONGQIAO})
    in_village = client.get(feed, params={"township": HONGQIAO, "village": XIXI})
    escalations = client.get(feed, params={"event_types": ReferralEscalated.event_type})
    both_types = client.get(feed, params=[("event_types", ReferralEscalated.event_type),
                                          ("event_types", ReferralRequested.event_type), ("village", XIXI),
                                          ("township", HONGQIAO)])

    assert len(sequences(everything)) == 4
    assert len(sequences(in_township)) == 3
    assert [i["kind"] for i in in_village.json()["items"]] == ["new_referral", "overdue_reminder"]
    assert [i["kind"] for i in escalations.json()["items"]] == ["overdue_reminder"]
    assert sequences(both_types) == sequences(in_village)


def test_an_unknown_event_type_or_a_village_without_township_answers_422_naming_the_field(client):
    unknown = client.get("/v1/agencies/health/notifications", params={"event_types": "cn.example.nope.v1"})
    village = client.get("/v1/agencies/health/notifications", params={"village": XIXI})

    assert unknown.status_code == village.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "event_types"
    assert village.json()["errors"][0]["field"] == "township"


def parse_sse(text: str) -> list[dict[str, str]]:
    """The events of an event stream (WHATWG rules for the fields used here); comments as {"comment": ...}."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                events.append({"comment": line[1:].strip()})
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if fields:
            events.append(fields)
    return events


def test_the_stream_sends_each_notice_with_its_cursor_as_id_then_heartbeats_and_ends(service, client):
    service.feed.handle([requested(Agency.health) for _ in range(3)])

    answer = client.get("/v1/agencies/health/notifications/stream")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(answer.text)
    notices = [e for e in events if e.get("event") == "notification"]
    assert [int(e["id"]) for e in notices] == [json.loads(e["data"])["sequence"] for e in notices]
    assert len(notices) == 3
    assert {"retry": "3000"} in events
    assert {"comment": "heartbeat"} in events


def test_the_stream_resumes_after_last_event_id_and_takes_the_filters(service, client):
    service.feed.handle([requested(Agency.health), requested(Agency.health), requested(Agency.health, village=XIDONG)])
    first = client.get("/v1/agencies/health/notifications").json()["items"][0]["sequence"]

    resumed = parse_sse(client.get("/v1/agencies/health/notifications/stream",
                                   headers={"Last-Event-ID": str(first)}).text)
    filtered = parse_sse(client.get("/v1/agencies/health/notifications/stream",
                                    params={"township": HONGQIAO, "village": XIDONG}).text)

    assert [int(e["id"]) for e in resumed if "id" in e] == [first + 1, first + 2]
    assert len([e for e in filtered if "id" in e]) == 1


def test_the_stream_delivers_what_arrives_while_it_is_open(service):
    app = service_api(service.settings, service)
    late = threading.Timer(0.1, lambda: service.feed.handle([requested(Agency.health)]))
    late.start()
    started = time.monotonic()
    with TestClient(app) as client:
        text = client.get("/v1/agencies/health/notifications/stream", headers=bearer(app)).text
    late.join()

    assert len([e for e in parse_sse(text) if e.get("event") == "notification"]) == 1
    assert time.monotonic() - started < 5


def test_a_malformed_last_event_id_answers_422(client):
    answer = client.get("/v1/agencies/health/notifications/stream", headers={"Last-Event-ID": "abc"})

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "Last-Event-ID"


def test_the_stream_is_refused_to_another_agency(service):
    app = service_api(service.settings, service)
    police = client_for(app, officer(Agency.police))
    assert police.get("/v1/agencies/health/notifications/stream").status_code == 403

"""The webhook API (`/v1/agencies/{agency}/webhooks`): an agency manages its own subscriptions; bad input answers
422 problem+json naming the field; and, on the embedded platform, a filed report reaches the subscribed endpoint
through the real log followers, signed (checked with the Standard Webhooks reference library)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from contracts.agencies import Agency
from huhang.auth.principal import Role
from huhang.bootstrap import build_services, embedded_api, service_api, subscription_consumers
from huhang.settings import Settings
from huhang.streams import drain
from services.intake.schemas import CHILD_REGISTRATION_EXAMPLE, CHILD_REPORT_EXAMPLE
from services.notifications.main import NotificationsService, build
from tests.support.auth import SYSTEM, client_for, officer
from tests.support.webhook_receiver import Receiver, Reply, webhook_receiver
from tests.unit.test_webhooks_model import referral_requested

POLICE = officer(Agency.police)
TOWNSHIP = officer(Agency.township, township="虹桥镇")
AUDITOR = officer(Agency.justice, Role.auditor)


@pytest.fixture
def service() -> Iterator[NotificationsService]:
    built = build(Settings(storage="memory"))
    yield built
    built.application.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


def as_(service: NotificationsService, principal: object) -> TestClient:
    return client_for(service_api(service.settings, service), principal)  # type: ignore[arg-type]


def test_an_agency_manages_its_own_subscription(service, receiver):
    police = as_(service, POLICE)
    created = police.post("/v1/agencies/police/webhooks", json={
        "url": receiver.url("/police"), "event_types": ["cn.huhang.referral.requested.v1"],
    })
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_")
    assert hook["enabled"] is True
    path = f"/v1/agencies/police/webhooks/{hook['id']}"

    listed = police.get("/v1/agencies/police/webhooks").json()
    assert [h["id"] for h in listed["items"]] == [hook["id"]]
    assert "secret" not in listed["items"][0]  # shown once only
    assert "secret" not in police.get(path).json()

    disabled = police.patch(path, json={"enabled": False}).json()
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "disabled")
    assert police.patch(path, json={"enabled": True}).json()["disabled_reason"] is None

    rotated = police.post(f"{path}/secret/rotate")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != hook["secret"]
    until = datetime.fromisoformat(rotated.json()["previous_secret_until"])
    assert until > datetime.now(UTC) + timedelta(hours=23)

    assert police.delete(path).status_code == 204
    assert police.get(path).status_code == 404
    assert police.delete(path).status_code == 404


def test_deliveries_go_out_signed_and_dead_letters_are_listed_and_replayed(service, receiver):
    police = as_(service, POLICE)
    hook = police.post("/v1/agencies/police/webhooks", json={"url": receiver.url("/police")}).json()
    path = f"/v1/agencies/police/webhooks/{hook['id']}"
    receiver.script("/police", Reply(400))  # refused once: dead-lettered at once
    events = [referral_requested(uuid.uuid4(), Agency.police), referral_requested(uuid.uuid4(), Agency.hrss)]
    service.webhooks.handle(events)  # hrss's referral is not police's business
    deliverer = service.deliverer()
    deliverer.drain()

    dead = police.get(f"{path}/dead-letters").json()["items"]
    assert [d["event_id"] for d in dead] == [str(events[0].id)]
    assert dead[0]["last_status"] == 400
    replayed = police.post(f"{path}/dead-letters/{dead[0]['id']}/replay")
    assert replayed.json() == {"queued": 1}
    assert police.post(f"{path}/dead-letters/{dead[0]['id']}/replay").status_code == 404
    deliverer.drain()
    assert police.get(f"{path}/dead-letters").json()["items"] == []

    since = (events[0].time - timedelta(seconds=1)).isoformat()
    assert police.post(f"{path}/replay", params={"since": since}).json() == {"queued": 1}
    deliverer.drain()
    deliverer.close()
    got = receiver.at("/police")
    assert [r.status for r in got] == [400, 204, 204]
    assert {r.headers["webhook-id"] for r in got} == {str(events[0].id)}
    for r in got:
        Webhook(hook["secret"]).verify(r.body, r.headers)


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "http://school.example.cn/hook"}, "url"),
    ({"url": "https://school.example.cn/hook", "event_types": ["cn.huhang.nothing.v1"]}, "event_types"),
    ({"url": "https://school.example.cn/hook", "village": "溪西村"}, "township"),
    ({}, "url"),
])
def test_bad_input_answers_422_naming_the_field(service, body, field):
    answer = as_(service, POLICE).post("/v1/agencies/police/webhooks", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert field in {e["field"].split(".")[-1] for e in answer.json()["errors"]}


def test_only_the_agency_itself_manages_its_webhooks(service):
    hook = as_(service, SYSTEM).post("/v1/agencies/police/webhooks", json={"url": "https://p.example.cn/h"}).json()
    for stranger in (officer(Agency.education), AUDITOR, officer(Agency.civil_affairs)):
        client = as_(service, stranger)
        assert client.get("/v1/agencies/police/webhooks").status_code == 403
        assert client.get(f"/v1/agencies/police/webhooks/{hook['id']}").status_code == 403
    # an agency does not reach another's subscription through its own path either
    assert as_(service, officer(Agency.education)).get(f"/v1/agencies/education/webhooks/{hook['id']}") \
        .status_code == 404


def test_an_organisation_outside_government_subscribes_to_no_webhook(service):
    charity = as_(service, officer(Agency.charity))  # would hear every organisation's referrals under "charity"
    answer = charity.post("/v1/agencies/charity/webhooks", json={"url": "https://c.example.cn/h"})
    assert answer.status_code == 403
    assert charity.get("/v1/agencies/charity/webhooks").status_code == 403


def test_a_township_system_subscribes_to_its_own_area(service):
    township = as_(service, TOWNSHIP)
    mine = township.post("/v1/agencies/township/webhooks", json={"url": "https://t.example.cn/h", "township": "虹桥镇"})
    assert mine.status_code == 201
    other = township.post("/v1/agencies/township/webhooks", json={"url": "https://t.example.cn/h",
                                                                   "township": "其他镇"})
    assert other.status_code == 403
    assert other.json()["errors"][0]["field"] == "township"
    none = township.post("/v1/agencies/township/webhooks", json={"url": "https://t.example.cn/h"})
    assert none.status_code in {403, 422}


def test_a_filed_report_reaches_the_lead_agencys_endpoint_on_the_embedded_platform(receiver):
    settings = Settings(storage="memory")
    services = build_services(settings)
    try:
        app = embedded_api(settings, services)
        lead = client_for(app, officer(Agency.civil_affairs))
        hook = lead.post("/v1/agencies/civil_affairs/webhooks", json={
            "url": receiver.url("/school"), "event_types": ["cn.huhang.report.filed.v1"],
        })
        assert hook.status_code == 201, hook.text
        system = client_for(app)
        child = system.post("/v1/children", json=CHILD_REGISTRATION_EXAMPLE)
        assert child.status_code == 201, child.text
        report = system.post(f"/v1/children/{child.json()['child_id']}/reports", json=CHILD_REPORT_EXAMPLE)
        assert report.status_code == 201, report.text
        notifications = services["notifications"]
        for consumer in subscription_consumers(settings, notifications, services):
            consumer.poll_timeout_s = 0.01
            drain(consumer)
        deliverer = notifications.deliverer()  # type: ignore[attr-defined]
        deliverer.drain()
        deliverer.close()
        (got,) = receiver.at("/school")
        event = Webhook(hook.json()["secret"]).verify(got.body, got.headers)
        assert event["type"] == "cn.huhang.report.filed.v1"
        assert event["subject"] == report.json()["case_id"]
        assert CHILD_REGISTRATION_EXAMPLE["child"]["name"].encode() not in got.body  # ids and codes only
    finally:
        for service in services.values():
            service.application.close()

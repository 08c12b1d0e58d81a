"""``GET /v1/cases/{case_id}/integrity`` on real stores (SQLite files and the machine's PostgreSQL), through the
embedded app: an intact case verifies against a signed checkpoint; a stored event of the case altered or deleted
in SQL behind the application's back is named with its service and position; a rewritten chain and a forged
checkpoint are named; events after the last checkpoint are said to be not yet covered; auditors are let in, an
unrelated agency is not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from contracts.commands import OPEN_REFERRALS_EXAMPLE
from huhang.audit import SERVICES
from huhang.auth.principal import Principal
from huhang.bootstrap import build_services, embedded_api, service_api, subscription_consumers
from huhang.chain import build_chainer
from huhang.checkpoints import Signer, load_signer, log_name, publish_dir, published_file
from huhang.settings import Settings
from huhang.streams import drain
from services.intake.main import build as build_intake
from services.intake.schemas import CHILD_REGISTRATION_EXAMPLE, CHILD_REPORT_EXAMPLE
from tests.conftest import postgres_settings
from tests.integration.test_tamper_evidence import RawLog
from tests.support.auth import SYSTEM
from tests.support.principals import AUDITOR, EDUCATION_OFFICER, LEAD_SUPERVISOR, TOWNSHIP, VILLAGE, as_

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@dataclass
class Platform:
    settings: Settings
    services: dict[str, Any]
    app: FastAPI
    client: TestClient
    case_id: uuid.UUID
    child_id: uuid.UUID
    referral_ids: list[uuid.UUID]

    def integrity(self, principal: Principal = AUDITOR) -> Any:
        return self.client.get(f"/v1/cases/{self.case_id}/integrity", headers=as_(self.app, principal))

    def catch_up(self) -> None:
        for service in self.services.values():
            for consumer in subscription_consumers(self.settings, service, self.services):
                consumer.poll_timeout_s = 0.01
                drain(consumer, limit_s=60)

    def chain_and_sign(self) -> None:
        for service in self.services.values():
            chainer = build_chainer(self.settings, service)
            chainer.catch_up()
            chainer.checkpoint()

    def positions(self, service: str, originator: uuid.UUID) -> list[int]:
        """Where the originator's stored events are in the service's log, by version."""
        recorder = self.services[service].application.recorder
        found = [n for n in recorder.select_notifications(None, 10_000) if n.originator_id == originator]
        return [n.id for n in sorted(found, key=lambda n: n.originator_version)]


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(storage="sqlite", data_dir=tmp_path / "data", access_log_flush_interval_s=0.05)
    request.applymarker(pytest.mark.integration)
    return postgres_settings(request.getfixturevalue("postgres_url"), data_dir=tmp_path / "data")


def open_referral(
    client: TestClient, app: FastAPI, case_id: uuid.UUID, child_id: uuid.UUID, agency: Agency,
) -> uuid.UUID:
    referral_id = uuid.uuid4()
    command = {
        **OPEN_REFERRALS_EXAMPLE["referrals"][0], "referral_id": str(referral_id), "case_id": str(case_id),
        "child_id": str(child_id), "owner_agency": agency.value, "township": TOWNSHIP, "village": VILLAGE,
        "source_event_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4()),
        "due_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    }
    answer = client.post("/v1/referrals", json={"referrals": [command]}, headers=as_(app, SYSTEM))
    assert answer.status_code == 200, answer.text
    return referral_id


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    """A child, a report (the case), referrals to police and hrss, and police's referral received; read models fed,
    every log chained and its head signed."""
    services = build_services(settings)
    app = embedded_api(settings, services)
    client = TestClient(app)
    registered = client.post("/v1/children", json=CHILD_REGISTRATION_EXAMPLE, headers=as_(app, SYSTEM))
    assert registered.status_code == 201, registered.text
    child_id = uuid.UUID(registered.json()["child_id"])
    reported = client.post(f"/v1/children/{child_id}/reports", json=CHILD_REPORT_EXAMPLE, headers=as_(app, SYSTEM))
    assert reported.status_code == 201, reported.text
    case_id = uuid.UUID(reported.json()["case_id"])
    referrals = [open_referral(client, app, case_id, child_id, a) for a in (Agency.police, Agency.hrss)]
    received = client.post(f"/v1/referrals/{referrals[0]}/status", json={"status": "received", "agency": "police"},
                           headers=as_(app, SYSTEM))
    assert received.status_code == 200, received.text
    built = Platform(settings, services, app, client, case_id, child_id, referrals)
    built.catch_up()
    built.chain_and_sign()
    yield built
    client.close()
    app.state.case_integrity.close()
    for service in services.values():
        service.application.close()
        service.positions.engine.dispose()


def problems(answer: Any) -> list[tuple[str, str, int | None]]:
    return [(p["kind"], p["service"], p["position"]) for p in answer.json()["problems"]]


def test_an_intact_case_verifies_against_its_signed_checkpoints(platform: Platform) -> None:
    answer = platform.integrity()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["verified"] is True, body["problems"]
    assert body["complete"] is True
    assert body["pending"] == 0
    assert body["pending_note"] is None
    by_service = {s["service"]: s for s in body["services"]}
    assert set(by_service) == set(SERVICES)
    referral = by_service["referral"]
    assert referral["records"] >= 2
    assert referral["records_verified"] == referral["records"]
    assert by_service["intake"]["records"] >= 1
    checkpoint = referral["checkpoint"]
    signer = load_signer(platform.settings, create=False)
    assert signer is not None
    assert checkpoint is not None
    assert checkpoint["position"] == referral["chain_head"]
    assert checkpoint["key_id"] == signer.key_id
    assert checkpoint["time"]
    assert body["history_events"] >= 3


def test_events_after_the_last_checkpoint_are_said_to_be_not_yet_covered(platform: Platform) -> None:
    later = open_referral(platform.client, platform.app, platform.case_id, platform.child_id, Agency.education)
    platform.catch_up()
    body = platform.integrity().json()
    referral = next(s for s in body["services"] if s["service"] == "referral")
    [position] = platform.positions("referral", later)
    assert body["verified"] is True, body["problems"]
    assert position in referral["not_chained"]
    assert body["complete"] is False
    assert body["pending"] >= 1
    assert "not yet covered by a signed checkpoint" in body["pending_note"]

    build_chainer(platform.settings, platform.services["referral"]).catch_up()  # chained, not yet signed
    body = platform.integrity().json()
    referral = next(s for s in body["services"] if s["service"] == "referral")
    assert position in referral["not_covered"]
    assert body["verified"] is True


def test_an_altered_stored_event_is_named_with_its_service_and_position(platform: Platform) -> None:
    raw = RawLog(platform.settings, platform.services["referral"])
    opened, received = platform.positions("referral", platform.referral_ids[0])[:2]
    raw.update_state(received)
    body = platform.integrity().json()
    assert body["verified"] is False
    altered = [p for p in body["problems"] if p["kind"] == "ALTERED"]
    assert [(p["service"], p["position"]) for p in altered] == [("referral", received)]
    assert altered[0]["originator_id"] == str(platform.referral_ids[0])
    assert altered[0]["event_type"]
    assert "Referral" in altered[0]["event_type"]
    assert opened not in {p["position"] for p in body["problems"]}


def test_a_referral_s_only_event_altered_is_named_too(platform: Platform) -> None:
    raw = RawLog(platform.settings, platform.services["referral"])
    [only] = platform.positions("referral", platform.referral_ids[1])
    raw.update_state(only)
    found = problems(platform.integrity())
    assert ("ALTERED", "referral", only) in found
    assert any(kind == "UNBACKED" for kind, _, _ in found)  # and the history event it made is backed by nothing


def test_a_deleted_stored_event_is_named(platform: Platform) -> None:
    raw = RawLog(platform.settings, platform.services["referral"])
    received = platform.positions("referral", platform.referral_ids[0])[1]
    raw.delete(received)
    answer = platform.integrity()
    assert answer.json()["verified"] is False
    assert ("DELETED", "referral", received) in problems(answer)


def test_a_rewritten_chain_no_longer_agrees_with_its_signed_checkpoint(platform: Platform) -> None:
    raw = RawLog(platform.settings, platform.services["referral"])
    received = platform.positions("referral", platform.referral_ids[0])[1]
    raw.update_state(received)
    raw.rewrite_chain_from(received, platform.services["referral"])
    found = problems(platform.integrity())
    assert any(kind == "CHAIN_REWRITTEN" and service == "referral" for kind, service, _ in found), found


def test_a_forged_published_checkpoint_is_named(platform: Platform) -> None:
    log = log_name(platform.settings, "referral")
    forged = Signer.generate().sign(log, "referral", 1, bytes(32))
    with published_file(publish_dir(platform.settings), log).open("a") as out:
        out.write(forged.to_json() + "\n")
    found = problems(platform.integrity())
    assert ("BAD_SIGNATURE", "referral", 1) in found


def test_auditors_and_the_lead_agency_may_check_an_unrelated_agency_may_not(platform: Platform) -> None:
    assert platform.integrity(AUDITOR).status_code == 200
    assert platform.integrity(LEAD_SUPERVISOR).status_code == 200
    refused = platform.integrity(EDUCATION_OFFICER)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    unknown = platform.client.get(f"/v1/cases/{uuid.uuid4()}/integrity", headers=as_(platform.app, AUDITOR))
    assert unknown.status_code == 404
    entries = platform.app.state.access_log.entries(case_id=platform.case_id, limit=1000)
    checks = [e for e in entries if e["route"] == "GET /v1/cases/{case_id}/integrity"]
    assert {(e["subject"], e["action"], e["outcome"]) for e in checks} >= {
        (AUDITOR.subject, "read", "allowed"), (EDUCATION_OFFICER.subject, "read", "denied"),
    }


def test_intake_s_own_api_reads_every_service_s_store_as_in_the_distributed_form(platform: Platform) -> None:
    """Intake's API alone in its process (``huhang api intake``): the other services' stores are opened from the
    settings, as ``huhang audit bundle`` opens them."""
    intake = build_intake(platform.settings)
    app = service_api(platform.settings, intake)
    try:
        with TestClient(app) as client:
            answer = client.get(f"/v1/cases/{platform.case_id}/integrity", headers=as_(app, AUDITOR))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["verified"] is True, body["problems"]
        referral = next(s for s in body["services"] if s["service"] == "referral")
        assert referral["records"] >= 3  # two opened, one received: read from referral's own store
        assert referral["records_verified"] == referral["records"]
    finally:
        app.state.case_integrity.close()
        intake.access_log.close()
        intake.application.close()
        intake.positions.engine.dispose()

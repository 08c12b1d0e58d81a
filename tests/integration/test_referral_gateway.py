"""The router's HTTP gateway against a real referral API: a batch of any size opens every referral once."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn

from contracts.commands import OpenReferral
from huhang.auth.client import system_auth
from huhang.bootstrap import service_api
from huhang.settings import Settings
from services.referral.main import ReferralService, build
from tests.support.processes import free_port, wait_http
from workflows.referral_gateway import HttpReferralGateway

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def referral_api() -> Iterator[tuple[str, ReferralService]]:
    settings = Settings(storage="memory")
    service = build(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(service_api(settings, service), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", timeout_s=30)
    yield url, service
    server.should_exit = True
    thread.join(10)


def _commands(n: int) -> list[OpenReferral]:
    now = datetime.now(UTC)
    return [
        OpenReferral(
            referral_id=uuid.uuid4(), case_id=uuid.uuid4(), child_id=uuid.uuid4(), owner_agency="police",
            requester_agency="education", referral_type="guardianship_investigation", priority="urgent",
            due_at=now + timedelta(days=1), plan_tasks=(4, 6), rule_ids=("guardian-neglect-or-abuse",),
            rules_version="test", source_event_id=uuid.uuid4(), correlation_id=uuid.uuid4(),
            township="虹桥镇", village="溪西村",
        )
        for _ in range(n)
    ]


def test_a_batch_larger_than_one_request_opens_every_referral_once(
    referral_api: tuple[str, ReferralService],
) -> None:
    url, service = referral_api
    before = service.application.recorder.max_notification_id() or 0
    commands = _commands(1500)  # far more than one request may carry (body limit, max_length)

    started = time.monotonic()
    auth = system_auth(Settings(storage="memory"), "huhang-router")  # the router's system token
    assert HttpReferralGateway(url, auth=auth).open(commands) == 1500
    assert HttpReferralGateway(url, auth=auth).open(commands) == 0  # a redelivered batch opens nothing twice
    assert (service.application.recorder.max_notification_id() or 0) - before == 1500
    assert time.monotonic() - started < 120

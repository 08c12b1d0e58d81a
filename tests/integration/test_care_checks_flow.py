"""The scheduled care checks on real Prefect: a flow run raises what is overdue and returns the counts; a second
run at the same moment raises nothing twice; each run is recorded in Prefect as completed; the HTTP gateway
(distributed mode) reaches the same check through guardianship's API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from huhang.bootstrap import service_api
from huhang.settings import Settings
from huhang.streams import NotificationLogSource
from services.guardianship.main import GuardianshipService, build
from tests.support.auth import client_for
from tests.unit.test_visit_regime import child_file
from workflows.care_checks import HttpCareCheckGateway, LocalCareCheckGateway, check_care_obligations

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHECKED_AT = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)  # 2026-06-01 09:00 in China
EXPECTED = {"children_checked": 2, "visit_overdue": 4, "parent_contact_missed": 1, "entrusted_care_flagged": 1}
NOTHING = {**EXPECTED, "visit_overdue": 0, "parent_contact_missed": 0, "entrusted_care_flagged": 0}


@pytest.fixture
def service() -> Iterator[GuardianshipService]:
    built = build(Settings(storage="memory"))
    # registered 31 January: a left-behind child with parents away (contact and home visit overdue, no parent
    # contact, no agreement) and a disabled child whose parents are at home (contact and home visit overdue)
    built.known_children.handle([
        child_file(uuid.uuid4(), parents_away_since=date(2026, 1, 1)),
        child_file(uuid.uuid4(), categories=("disabled",), parents_away=False),
    ])
    yield built
    built.application.close()


def published_types(service: GuardianshipService) -> list[str]:
    source = NotificationLogSource("test", service.application, service.to_integration_events(), service.positions)
    batch = source.poll(0.01)
    return sorted(e.type for e in batch.events) if batch else []  # type: ignore[attr-defined]


async def _flow_run_state(flow_run_id: Any) -> str | None:
    async with get_client() as client:
        run = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        return run[0].state_type.value if run[0].state_type else None


def test_a_care_check_flow_run_returns_what_it_raised(prefect_harness: None, service) -> None:
    assert check_care_obligations(LocalCareCheckGateway(service.care), now=CHECKED_AT) == EXPECTED


def test_two_care_check_flow_runs_raise_each_notice_once(prefect_harness: None, service) -> None:
    gateway = LocalCareCheckGateway(service.care)

    runs = [check_care_obligations(gateway, now=CHECKED_AT), check_care_obligations(gateway, now=CHECKED_AT)]

    assert runs == [EXPECTED, NOTHING]
    assert published_types(service) == sorted(
        ["cn.huhang.guardianship.visit-overdue.v1"] * 4
        + ["cn.huhang.guardianship.parent-contact-missed.v1", "cn.huhang.guardianship.entrusted-care-flagged.v1"]
    )


def test_a_care_check_flow_run_is_recorded_completed_in_prefect(prefect_harness: None, service) -> None:
    state = check_care_obligations(LocalCareCheckGateway(service.care), now=CHECKED_AT, return_state=True)

    assert state.is_completed()
    assert asyncio.run(_flow_run_state(state.state_details.flow_run_id)) == "COMPLETED"


def test_the_http_gateway_runs_the_check_at_guardianships_api(prefect_harness: None, service) -> None:
    gateway = HttpCareCheckGateway("http://testserver")
    gateway.client = client_for(service_api(service.settings, service))

    runs = [check_care_obligations(gateway, now=CHECKED_AT), check_care_obligations(gateway, now=CHECKED_AT)]

    assert runs == [EXPECTED, NOTHING]

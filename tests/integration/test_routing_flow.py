"""The routing workflow on real Prefect: one flow run routes batches through Prefect tasks, and a batch whose
referrals could not be opened is not committed, so it is routed again rather than lost."""

from __future__ import annotations

import asyncio
import threading
from datetime import date
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from huhang.bootstrap import build_router, build_services, subscription_consumers
from huhang.settings import Settings
from huhang.streams import drain, rewind_source
from services.intake.application import ChildFacts, FileReport
from tests.support.processes import free_port
from workflows.referral_gateway import HttpReferralGateway
from workflows.routing import route_case_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _file_neglect_report(services: dict[str, Any]) -> None:
    services["intake"].application.file_report(
        FileReport(
            reporter_agency="education",
            reporter_role="teacher",
            reporter_reference=None,
            child=ChildFacts(
                name="测试丁",
                sex="male",
                birth_date=date(2014, 6, 1),
                id_card_number=None,
                township="虹桥镇",
                village="溪西村",
                categories=(),
            ),
            concern_category="guardian_neglect",
            urgency="urgent",
            observations="（测试）",
            observed_on=date(2026, 11, 2),
            fingerprint="x",
        )
    )


def _inbox_total(services: dict[str, Any], agency: str) -> int:
    referral = services["referral"]
    drain(subscription_consumers(referral.settings, referral, services)[0])
    return sum(referral.inbox.counts_by_status(agency).values())


async def _task_names(flow_run_id: object) -> tuple[str, list[str]]:
    async with get_client() as client:
        run = (await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))))[0]
        tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        return str(run.state_type.value if run.state_type else None), sorted(
            t.task_key.rsplit("-", 1)[0] for t in tasks
        )


def test_a_flow_run_routes_a_batch_through_prefect_tasks(prefect_harness: None) -> None:
    settings = Settings(storage="memory")
    services = build_services(settings, ["intake", "referral", "guardianship"])
    _file_neglect_report(services)
    router = build_router(settings, services)

    state = route_case_events(router, threading.Event(), max_batches=1, return_state=True)

    assert state.is_completed()
    assert state.result() == 5  # police, civil affairs, women's federation, justice, education
    assert _inbox_total(services, "police") == 1
    state_type, tasks = asyncio.run(_task_names(state.state_details.flow_run_id))
    assert state_type == "COMPLETED"
    assert any("plan_referrals" in t for t in tasks), tasks
    assert any("open_referrals" in t for t in tasks), tasks


def test_a_batch_is_routed_again_after_the_referral_service_was_unreachable(prefect_harness: None) -> None:
    settings = Settings(storage="memory")
    services = build_services(settings, ["intake", "referral", "guardianship"])
    _file_neglect_report(services)
    router = build_router(settings, services)
    reachable = router.gateway
    router.gateway = HttpReferralGateway(f"http://127.0.0.1:{free_port()}", timeout_s=1)  # nothing listens

    failed = route_case_events(router, threading.Event(), max_batches=1, return_state=True)
    assert failed.is_failed()
    assert _inbox_total(services, "police") == 0

    router.gateway = reachable
    rewind_source(router.source)
    again = route_case_events(router, threading.Event(), max_batches=1, return_state=True)
    assert again.is_completed()
    assert _inbox_total(services, "police") == 1

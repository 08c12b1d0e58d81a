"""The scheduled sweep on real Prefect: a flow run escalates what is overdue and returns how many it escalated; a
second run at the same time escalates nothing twice; each run is recorded in Prefect as completed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from huhang.bootstrap import subscription_consumers
from huhang.settings import Settings
from huhang.streams import drain
from services.referral.main import ReferralService, build
from tests.unit.test_referral import opened
from workflows.sweeps import LocalSweepGateway, sweep_overdue_referrals

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def service() -> Iterator[ReferralService]:
    built = build(Settings(storage="memory"))
    yield built
    built.application.close()
    built.positions.engine.dispose()


def overdue_in_inbox(service: ReferralService) -> Any:
    """A referral due in two hours, listed in its owner's inbox; swept three hours from now it is overdue
    (level 1: not yet overdue by its two-hour window again)."""
    now = datetime.now(UTC)
    referral_id = opened(service.application, due_at=now + timedelta(hours=2))
    for consumer in subscription_consumers(service.settings, service):
        consumer.poll_timeout_s = 0.01
        drain(consumer)
    return referral_id, now + timedelta(hours=3)


async def _flow_run_state(flow_run_id: Any) -> str | None:
    async with get_client() as client:
        run = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        return run[0].state_type.value if run[0].state_type else None


def test_a_sweep_flow_run_returns_the_number_of_escalations(prefect_harness: None, service) -> None:
    _referral_id, sweep_at = overdue_in_inbox(service)

    assert sweep_overdue_referrals(LocalSweepGateway(service), now=sweep_at) == 1


def test_two_sweep_flow_runs_escalate_an_overdue_referral_once_to_level_1(prefect_harness: None, service) -> None:
    referral_id, sweep_at = overdue_in_inbox(service)
    gateway = LocalSweepGateway(service)

    counts = [sweep_overdue_referrals(gateway, now=sweep_at), sweep_overdue_referrals(gateway, now=sweep_at)]

    assert counts == [1, 0]
    assert service.application.get(referral_id).escalation_level == 1
    assert [h["level"] for h in service.application.history(referral_id) if h["step"] == "Escalated"] == [1]


def test_a_sweep_flow_run_is_recorded_completed_in_prefect(prefect_harness: None, service) -> None:
    _referral_id, sweep_at = overdue_in_inbox(service)

    state = sweep_overdue_referrals(LocalSweepGateway(service), now=sweep_at, return_state=True)

    assert state.is_completed()
    assert asyncio.run(_flow_run_state(state.state_details.flow_run_id)) == "COMPLETED"

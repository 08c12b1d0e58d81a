"""The scheduled sweep: a Prefect flow run every interval escalates overdue referrals.

A sweep is naturally one flow run (ARCHITECTURE.md): it shows in Prefect with its result, and a failed sweep is
simply the next one's work, because the sweep is idempotent.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from datetime import UTC, datetime

import httpx
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from services.referral.main import ReferralService
from services.referral.sweep import sweep_overdue

logger = logging.getLogger(__name__)


class SweepGateway(ABC):
    """How the sweep reaches the referral service (a class, not a Protocol: Prefect inspects flow parameters)."""

    @abstractmethod
    def sweep(self, now: datetime) -> int:
        """Escalate what is overdue at ``now``; returns the number of escalations."""


class LocalSweepGateway(SweepGateway):
    def __init__(self, service: ReferralService) -> None:
        self.service = service

    def sweep(self, now: datetime) -> int:
        return len(sweep_overdue(self.service.application, self.service.inbox, now).escalations)


class HttpSweepGateway(SweepGateway):
    def __init__(self, base_url: str, timeout_s: float = 60.0, auth: httpx.Auth | None = None) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=timeout_s, auth=auth)  # auth: the system token

    def sweep(self, now: datetime) -> int:
        response = self.client.post("/v1/referral-sweeps", json={"now": now.isoformat()})
        response.raise_for_status()
        return len(response.json()["escalations"])


@task(name="escalate-overdue", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def escalate_overdue_task(gateway: SweepGateway, now: datetime) -> int:
    return gateway.sweep(now)


@flow(name="sweep-overdue-referrals", validate_parameters=False)
def sweep_overdue_referrals(gateway: SweepGateway, now: datetime | None = None) -> int:
    return escalate_overdue_task(gateway, now or datetime.now(UTC))


def run_sweeper(gateway: SweepGateway, stop: threading.Event, interval_s: float) -> None:
    while not stop.wait(interval_s):
        try:
            sweep_overdue_referrals(gateway)
        except Exception as exc:
            logger.warning("sweep failed (%s: %.200s); the next one retries", type(exc).__name__, exc)

"""The scheduled care checks: a Prefect flow run every interval raises what the care of covered children lacks.

``check-care-obligations`` raises ``VisitOverdue`` (a contact or home visit past its due day),
``ParentContactMissed`` (parents away silent for more than 7 days, once per missed week) and
``EntrustedCareFlagged`` (no, an unsigned or an expired agreement while the parents are away) as guardianship
events, which the routing rules send to the village and civil affairs. Idempotent: each notice's id derives from
the child, what is due and the due period, so running the flow again (or after a failure) raises nothing twice.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from datetime import UTC, datetime

import httpx
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from services.guardianship.care_application import CareApplication, CheckResult
from services.guardianship.children import china_date

logger = logging.getLogger(__name__)


class CareCheckGateway(ABC):
    """How the flow reaches guardianship (a class, not a Protocol: Prefect inspects flow parameters)."""

    @abstractmethod
    def check(self, now: datetime) -> dict[str, int]:
        """Raise what is overdue at ``now``; returns the counts raised by kind."""


def _counts(result: CheckResult) -> dict[str, int]:
    return {
        "children_checked": result.children_checked, "visit_overdue": result.visit_overdue,
        "parent_contact_missed": result.parent_contact_missed,
        "entrusted_care_flagged": result.entrusted_care_flagged,
    }


class LocalCareCheckGateway(CareCheckGateway):
    def __init__(self, care: CareApplication) -> None:
        self.care = care

    def check(self, now: datetime) -> dict[str, int]:
        return _counts(self.care.check(china_date(now)))


class HttpCareCheckGateway(CareCheckGateway):
    def __init__(self, base_url: str, timeout_s: float = 300.0, auth: httpx.Auth | None = None) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=timeout_s, auth=auth)  # auth: the system token

    def check(self, now: datetime) -> dict[str, int]:
        response = self.client.post("/v1/care-checks", json={"now": now.isoformat()})
        response.raise_for_status()
        answer = response.json()
        return {k: int(answer[k]) for k in
                ("children_checked", "visit_overdue", "parent_contact_missed", "entrusted_care_flagged")}


@task(name="raise-care-notices", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def raise_care_notices_task(gateway: CareCheckGateway, now: datetime) -> dict[str, int]:
    return gateway.check(now)


@flow(name="check-care-obligations", validate_parameters=False)
def check_care_obligations(gateway: CareCheckGateway, now: datetime | None = None) -> dict[str, int]:
    """Counts raised by this run: visit_overdue, parent_contact_missed, entrusted_care_flagged (and the number of
    children checked)."""
    return raise_care_notices_task(gateway, now or datetime.now(UTC))


def run_care_checker(gateway: CareCheckGateway, stop: threading.Event, interval_s: float) -> None:
    """Check every ``interval_s``; the first check comes soon after start (within a minute), not an interval
    later, so that a restarted process does not postpone the checks."""
    wait = min(interval_s, 60.0)
    while not stop.wait(wait):
        wait = interval_s
        try:
            check_care_obligations(gateway)
        except Exception as exc:
            # Types only: an exception's text may quote personal data.
            logger.warning("care check failed (%s); the next one retries", type(exc).__name__)

"""The overdue sweep: escalate every open referral past a deadline, once per level."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.referral.application import Escalation, ReferralApplication
from services.referral.inbox import Inbox


@dataclass(frozen=True)
class SweepResult:
    swept_at: datetime
    candidates: int
    escalations: list[Escalation]


def sweep_overdue(app: ReferralApplication, inbox: Inbox, now: datetime, limit: int = 1000) -> SweepResult:
    """Idempotent: each referral reaches each escalation level once, however often this runs."""
    candidates = inbox.overdue_ids(now, limit=limit)
    escalations = [e for rid in candidates if (e := app.escalate_if_due(rid, now)) is not None]
    return SweepResult(now, len(candidates), escalations)

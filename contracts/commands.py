"""Commands one service sends another over HTTP (the routing workflow asks referral to open referrals)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from contracts.agencies import Agency
from contracts.envelope import Contract
from contracts.vocabulary import Priority


class OpenReferral(Contract):
    """Open one referral. Repeating the command with the same ``referral_id`` opens nothing new."""

    referral_id: UUID
    case_id: UUID
    child_id: UUID
    owner_agency: Agency
    requester_agency: Agency
    referral_type: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=80)
    priority: Priority
    due_at: datetime
    plan_tasks: tuple[int, ...]
    rule_ids: tuple[str, ...]
    rules_version: str
    source_event_id: UUID
    correlation_id: UUID
    township: str
    village: str


class OpenReferrals(Contract):
    referrals: tuple[OpenReferral, ...] = Field(min_length=1, max_length=1000)

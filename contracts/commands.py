"""Commands one service sends another over HTTP (the routing workflow asks referral to open referrals)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import ConfigDict, Field, StringConstraints

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
    plan_tasks: tuple[int, ...] = Field(max_length=64)
    rule_ids: tuple[Annotated[str, StringConstraints(max_length=120)], ...] = Field(max_length=64)
    rules_version: str = Field(max_length=64)
    source_event_id: UUID
    correlation_id: UUID
    township: str = Field(max_length=100)
    village: str = Field(max_length=100)
    complete_by: datetime | None = Field(default=None, description="When the work must be completed.")
    fallback_agencies: tuple[Agency, ...] = Field(
        default=(), max_length=32, description="Who gets the referral, in turn, if this owner rejects it or fails."
    )


OPEN_REFERRALS_EXAMPLE: dict[str, Any] = {
    "referrals": [
        {
            "referral_id": "3f0c2a4e-9b1d-5e7f-8a6b-2c4d6e8f0a1b",
            "case_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "child_id": "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e",
            "owner_agency": "police",
            "requester_agency": "education",
            "referral_type": "guardianship_investigation",
            "priority": "urgent",
            "due_at": "2026-11-30T09:00:00+08:00",
            "plan_tasks": [4, 6],
            "rule_ids": ["guardian-neglect-or-abuse"],
            "rules_version": "2026-11-29.1",
            "source_event_id": "7c6d5e4f-3a2b-5c1d-9e8f-7a6b5c4d3e2f",
            "correlation_id": "7c6d5e4f-3a2b-5c1d-9e8f-7a6b5c4d3e2f",
            "township": "虹桥镇",
            "village": "溪西村",
        }
    ]
}


class OpenReferrals(Contract):
    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [OPEN_REFERRALS_EXAMPLE]})

    referrals: tuple[OpenReferral, ...] = Field(min_length=1, max_length=1000)

"""Referral's HTTP schemas (ReferralPublic / ReferralsPublic / StatusChange ...)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.agencies import Agency
from contracts.vocabulary import Priority, ReferralStatus


class ReferralSummary(BaseModel):
    referral_id: UUID
    case_id: UUID
    child_id: UUID
    owner_agency: Agency
    requester_agency: Agency
    referral_type: str
    priority: Priority
    status: ReferralStatus
    due_at: datetime
    township: str
    village: str
    plan_tasks: list[int]
    rule_id: str = Field(description="The routing rule(s) that opened this referral.")
    rules_version: str = Field(description="The version of the routing rules that opened this referral.")
    requested_at: datetime
    updated_at: datetime


class ReferralsPublic(BaseModel):
    agency: Agency
    items: list[ReferralSummary]
    counts_by_status: dict[str, int]
    next_cursor: str | None


class CaseReferralsPublic(BaseModel):
    case_id: UUID
    items: list[ReferralSummary]


class HistoryEntry(BaseModel):
    status: ReferralStatus
    actor_agency: Agency
    reason: str | None
    time: datetime
    version: int


class ReferralPublic(BaseModel):
    referral_id: UUID
    case_id: UUID
    child_id: UUID
    owner_agency: Agency
    requester_agency: Agency
    referral_type: str
    priority: Priority
    status: ReferralStatus
    due_at: datetime
    plan_tasks: list[int]
    rule_ids: list[str]
    rules_version: str
    version: int
    history: list[HistoryEntry]


class StatusChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "accepted", "agency": "police", "reason": "已受理，派出所跟进"}]},
    )

    status: ReferralStatus
    agency: Agency = Field(description="The acting agency (the owner, or the requester when cancelling).")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


class OpenedReferral(BaseModel):
    referral_id: UUID
    created: bool


class OpenedReferrals(BaseModel):
    referrals: list[OpenedReferral]


def encode_cursor(row: dict[str, Any]) -> str:
    raw = f"{row['requested_at'].isoformat()}|{row['referral_id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, rid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at), str(UUID(rid))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError("not a cursor this API returned") from None

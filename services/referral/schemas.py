"""Referral's HTTP schemas (ReferralPublic / ReferralsPublic / StatusChange / TransferCreate ...)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.agencies import Agency
from contracts.vocabulary import EscalationKind, Outcome, Priority, ReferralStatus

Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class ReferralSummary(BaseModel):
    referral_id: UUID
    case_id: UUID
    child_id: UUID
    owner_agency: Agency
    requester_agency: Agency
    referral_type: str
    priority: Priority
    status: ReferralStatus
    due_at: datetime = Field(description="Acceptance due.")
    complete_by: datetime = Field(description="Completion due.")
    escalation_level: int
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
    """One step of a referral's history: who did what, when and why."""

    step: str = Field(description="Requested, StatusChanged, TransferProposed, Transferred, TransferDeclined, "
                      "Reassigned, Escalated or Returned.")
    time: datetime
    version: int
    actor_agency: str
    status: ReferralStatus | None = None
    reason_code: str | None = None
    outcome: Outcome | None = None
    note: str | None = None
    owner_agency: Agency | None = None
    from_agency: Agency | None = None
    to_agency: Agency | None = None
    officer_id: str | None = None
    level: int | None = None
    kind: EscalationKind | None = None
    supervising_agency: Agency | None = None
    next_agencies: list[Agency] | None = None
    rule_ids: list[str] | None = None
    rules_version: str | None = None


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
    complete_by: datetime
    assignee: str | None
    pending_owner: Agency | None
    escalation_level: int
    fallback_agencies: list[Agency]
    plan_tasks: list[int]
    rule_ids: list[str]
    rules_version: str
    version: int
    history: list[HistoryEntry]


class StatusChange(BaseModel):
    """Move the referral: `reason_code` is required to reject or fail, `outcome` to complete."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"status": "accepted", "agency": "police", "note": "已受理，派出所跟进"},
                {"status": "rejected", "agency": "police", "reason_code": "out_of_area", "note": "不属本辖区"},
                {"status": "completed", "agency": "police", "outcome": "resolved"},
            ]
        },
    )

    status: ReferralStatus
    agency: Agency = Field(description="The acting agency (the owner, or the requester when cancelling).")
    reason_code: str | None = Field(
        default=None, max_length=40,
        description="For rejected: RejectionReason (not_responsible, out_of_area, insufficient_information, duplicate, "
        "already_handled, other); for failed: FailureReason (family_unreachable, family_refused, child_moved_away, "
        "lacking_resources, other).",
    )
    outcome: Outcome | None = Field(default=None, description="Required to complete.")
    note: Note | None = Field(default=None, description="Kept in the referral's history only, never published.")


class TransferCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"agency": "police", "to_agency": "education", "note": "学籍问题，转教育局"}]},
    )

    agency: Agency = Field(description="The owner, or a supervising agency.")
    to_agency: Agency
    note: Note | None = None


class TransferAnswer(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"agency": "education", "accept": True}]}
    )

    agency: Agency = Field(description="The agency the referral is being transferred to.")
    accept: bool
    note: Note | None = None


class Reassignment(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"agency": "police", "officer_id": "PS-0371"}]}
    )

    agency: Agency = Field(description="The owner, or a supervising agency.")
    officer_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)] = Field(
        description="The officer's staff number in the owner agency (not a name)."
    )


class EscalationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"agency": "civil_affairs"}]})

    agency: Agency = Field(description="A supervising agency: civil_affairs or wcwc.")


class EscalationPublic(BaseModel):
    referral_id: UUID
    level: int
    kind: EscalationKind
    supervision_referral_id: UUID | None


class SweepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}]})

    now: datetime | None = Field(default=None, description="Sweep as of this time (default: now).")
    limit: int = Field(default=1000, ge=1, le=10_000)


class SweepPublic(BaseModel):
    swept_at: datetime
    candidates: int
    escalations: list[EscalationPublic]


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

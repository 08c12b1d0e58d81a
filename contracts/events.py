"""Integration events: the only facts that cross service boundaries (Kafka topics, webhooks, feeds).

They carry ids and codes, never a child's name, identity number, address or free-text narrative: those stay in
the owning service's store. Contracts change additively; a breaking change is a new ``.vN`` type.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter

from contracts.agencies import Agency
from contracts.envelope import CloudEvent, Contract
from contracts.vocabulary import (
    ChildCategory,
    ConcernCategory,
    CourtOrderKind,
    EscalationKind,
    Outcome,
    Priority,
    ReferralStatus,
    ReporterRole,
    RiskColour,
    RiskLevel,
    Urgency,
)


class ReportFiledData(Contract):
    report_id: UUID
    case_id: UUID
    child_id: UUID
    reporter_agency: Agency
    reporter_role: ReporterRole
    concern_category: ConcernCategory
    urgency: Urgency
    child_categories: tuple[ChildCategory, ...]
    township: str
    village: str
    observed_on: date


class ReportFiled(CloudEvent):
    event_type = "cn.huhang.report.filed.v1"
    schema_name = "report-filed.v1"
    type: Literal["cn.huhang.report.filed.v1"] = "cn.huhang.report.filed.v1"
    data: ReportFiledData


class GuardianshipRiskAssessedData(Contract):
    assessment_id: UUID
    case_id: UUID
    child_id: UUID
    risk_level: RiskLevel
    colour: RiskColour
    previous_risk_level: RiskLevel | None
    factors: tuple[str, ...]
    township: str
    village: str


class GuardianshipRiskAssessed(CloudEvent):
    event_type = "cn.huhang.guardianship.risk-assessed.v1"
    schema_name = "guardianship-risk-assessed.v1"
    type: Literal["cn.huhang.guardianship.risk-assessed.v1"] = "cn.huhang.guardianship.risk-assessed.v1"
    data: GuardianshipRiskAssessedData


class CourtProtectionOrderIssuedData(Contract):
    order_id: UUID
    case_id: UUID
    child_id: UUID
    order_kind: CourtOrderKind
    court_case_number: str
    issued_on: date
    expires_on: date | None
    township: str
    village: str


class CourtProtectionOrderIssued(CloudEvent):
    event_type = "cn.huhang.court.protection-order-issued.v1"
    schema_name = "court-protection-order-issued.v1"
    type: Literal["cn.huhang.court.protection-order-issued.v1"] = "cn.huhang.court.protection-order-issued.v1"
    data: CourtProtectionOrderIssuedData


class SchoolDropoutReportedData(Contract):
    case_id: UUID
    child_id: UUID
    school_code: str
    last_attended_on: date
    child_categories: tuple[ChildCategory, ...]
    township: str
    village: str


class SchoolDropoutReported(CloudEvent):
    event_type = "cn.huhang.education.school-dropout-reported.v1"
    schema_name = "school-dropout-reported.v1"
    type: Literal["cn.huhang.education.school-dropout-reported.v1"] = (
        "cn.huhang.education.school-dropout-reported.v1"
    )
    data: SchoolDropoutReportedData


class JobAssistanceRequestedData(Contract):
    case_id: UUID
    child_id: UUID
    parent_relation: Literal["father", "mother"]
    wants_local_work: bool
    wants_training: bool
    township: str
    village: str


class JobAssistanceRequested(CloudEvent):
    event_type = "cn.huhang.hrss.job-assistance-requested.v1"
    schema_name = "job-assistance-requested.v1"
    type: Literal["cn.huhang.hrss.job-assistance-requested.v1"] = "cn.huhang.hrss.job-assistance-requested.v1"
    data: JobAssistanceRequestedData


class ReferralRequestedData(Contract):
    referral_id: UUID
    case_id: UUID
    child_id: UUID
    owner_agency: Agency
    requester_agency: Agency
    referral_type: str
    priority: Priority
    due_at: datetime
    plan_tasks: tuple[int, ...]
    rule_id: str
    rules_version: str
    source_event_id: UUID
    township: str
    village: str
    complete_by: datetime | None = None
    fallback_agencies: tuple[Agency, ...] = ()


class ReferralRequested(CloudEvent):
    event_type = "cn.huhang.referral.requested.v1"
    schema_name = "referral-requested.v1"
    type: Literal["cn.huhang.referral.requested.v1"] = "cn.huhang.referral.requested.v1"
    data: ReferralRequestedData


class ReferralStatusChangedData(Contract):
    referral_id: UUID
    case_id: UUID
    owner_agency: Agency
    status: ReferralStatus
    # Codes only; no free-text note: it could name the child. Notes stay in the referral's own history.
    reason_code: str | None = None
    outcome: Outcome | None = None
    requester_agency: Agency | None = None


class ReferralStatusChanged(CloudEvent):
    event_type = "cn.huhang.referral.status-changed.v1"
    schema_name = "referral-status-changed.v1"
    type: Literal["cn.huhang.referral.status-changed.v1"] = "cn.huhang.referral.status-changed.v1"
    data: ReferralStatusChangedData


class ReferralReturnedData(Contract):
    """A rejected or failed referral goes back to the router for the next responsible agency."""

    referral_id: UUID
    case_id: UUID
    child_id: UUID
    returned_by: Agency
    requester_agency: Agency = Field(description="Who asked for the referral; asks the next agency too.")
    status: ReferralStatus
    reason_code: str
    referral_type: str
    priority: Priority
    due_in_seconds: int
    complete_within_seconds: int
    next_agencies: tuple[Agency, ...]
    plan_tasks: tuple[int, ...]
    rule_ids: tuple[str, ...]
    rules_version: str
    township: str
    village: str


class ReferralReturned(CloudEvent):
    event_type = "cn.huhang.referral.returned.v1"
    schema_name = "referral-returned.v1"
    type: Literal["cn.huhang.referral.returned.v1"] = "cn.huhang.referral.returned.v1"
    data: ReferralReturnedData


class ReferralEscalatedData(Contract):
    referral_id: UUID
    case_id: UUID
    owner_agency: Agency
    level: int = Field(ge=1, description="1: reminder to the owner; 2: the supervising agency is asked to act.")
    kind: EscalationKind
    supervising_agency: Agency
    overdue_since: datetime


class ReferralEscalated(CloudEvent):
    event_type = "cn.huhang.referral.escalated.v1"
    schema_name = "referral-escalated.v1"
    type: Literal["cn.huhang.referral.escalated.v1"] = "cn.huhang.referral.escalated.v1"
    data: ReferralEscalatedData


class ReferralOwnerChangedData(Contract):
    referral_id: UUID
    case_id: UUID
    from_agency: Agency
    to_agency: Agency


class ReferralOwnerChanged(CloudEvent):
    """A transfer of ownership, accepted by the new owner."""

    event_type = "cn.huhang.referral.owner-changed.v1"
    schema_name = "referral-owner-changed.v1"
    type: Literal["cn.huhang.referral.owner-changed.v1"] = "cn.huhang.referral.owner-changed.v1"
    data: ReferralOwnerChangedData


CONTRACT_EVENTS: tuple[type[CloudEvent], ...] = (
    ReportFiled,
    GuardianshipRiskAssessed,
    CourtProtectionOrderIssued,
    SchoolDropoutReported,
    JobAssistanceRequested,
    ReferralRequested,
    ReferralStatusChanged,
    ReferralReturned,
    ReferralEscalated,
    ReferralOwnerChanged,
)

AnyCaseEvent = Annotated[
    ReportFiled
    | GuardianshipRiskAssessed
    | CourtProtectionOrderIssued
    | SchoolDropoutReported
    | JobAssistanceRequested
    | ReferralRequested
    | ReferralStatusChanged
    | ReferralReturned
    | ReferralEscalated
    | ReferralOwnerChanged,
    Field(discriminator="type"),
]

CASE_EVENT_ADAPTER: TypeAdapter[AnyCaseEvent] = TypeAdapter(AnyCaseEvent)


def parse_event(raw: bytes | str) -> AnyCaseEvent:
    """Parse one structured-mode CloudEvent (JSON) into its contract class."""
    return CASE_EVENT_ADAPTER.validate_json(raw)

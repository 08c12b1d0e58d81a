"""HTTP schemas of guardianship care: entrusted-care agreements, parent contacts, visits, a child's care, checks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from contracts.agencies import Agency
from contracts.vocabulary import (
    CaregiverRelation,
    ConcernCategory,
    ParentContactChannel,
    ParentRelation,
    ReporterRole,
    Urgency,
    VisitFinding,
    VisitKind,
)
from services.guardianship.children import CHINA_STANDARD_TIME


def _today() -> date:
    """Today where the care happens (China Standard Time)."""
    return datetime.now(CHINA_STANDARD_TIME).date()


def _not_in_future(value: date | None) -> date | None:
    if value is not None and value > _today():
        raise ValueError("must not be in the future")
    return value


AGREEMENT_EXAMPLE: dict[str, Any] = {
    "caregiver_name": "王秀英",
    "relation": "grandparent",
    "start_on": "2026-03-01",
    "end_on": "2027-02-28",
    "signed": True,
    "signed_on": "2026-02-26",
    "recorded_by": "village",
}


class AgreementCreate(BaseModel):
    """An entrusted-care agreement (委托照护协议) between the parents away and the caregiver."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [AGREEMENT_EXAMPLE]})

    caregiver_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
    relation: CaregiverRelation
    start_on: date = Field(description="The first day of entrusted care.")
    end_on: date | None = Field(
        default=None, description="The last day of entrusted care (expired the day after); null: no end agreed."
    )
    signed: bool
    signed_on: date | None = Field(default=None, description="Required exactly when `signed` is true.")
    recorded_by: Agency = Field(description="village, township or civil_affairs.")

    @field_validator("signed_on")
    @classmethod
    def _signed_on(cls, value: date | None, info: ValidationInfo) -> date | None:
        _not_in_future(value)
        signed = info.data.get("signed")
        if signed is True and value is None:
            raise ValueError("required when signed is true")
        if signed is False and value is not None:
            raise ValueError("must be absent when signed is false")
        return value

    @field_validator("end_on")
    @classmethod
    def _ends_after_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        start_on = info.data.get("start_on")
        if value is not None and start_on is not None and value < start_on:
            raise ValueError("must not be before start_on")
        return value


class AgreementPublic(BaseModel):
    agreement_id: UUID
    caregiver_name: str
    relation: CaregiverRelation
    start_on: date
    end_on: date | None
    signed: bool
    signed_on: date | None


SIGNATURE_EXAMPLE: dict[str, Any] = {"signed_on": "2026-03-02", "agency": "village"}


class AgreementSignature(BaseModel):
    """The agreement was signed after it was recorded."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SIGNATURE_EXAMPLE]})

    signed_on: date
    agency: Agency = Field(description="village, township or civil_affairs.")

    @field_validator("signed_on")
    @classmethod
    def _signed_on(cls, value: date) -> date:
        _not_in_future(value)
        return value


PARENT_CONTACT_EXAMPLE: dict[str, Any] = {
    "contacted_on": "2026-11-24", "channel": "video", "parent": "mother", "recorded_by": "village",
}


class ParentContactCreate(BaseModel):
    """A contact between a parent working away and the child (at least weekly)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PARENT_CONTACT_EXAMPLE]})

    contacted_on: date
    channel: ParentContactChannel
    parent: ParentRelation
    recorded_by: Agency = Field(description="village, township or civil_affairs.")

    @field_validator("contacted_on")
    @classmethod
    def _contacted_on(cls, value: date) -> date:
        _not_in_future(value)
        return value


class ParentContactPublic(BaseModel):
    contact_id: UUID
    child_id: UUID
    contacted_on: date
    channel: ParentContactChannel
    parent: ParentRelation


class VisitReportIn(BaseModel):
    """A mandatory report filed with the visit, about this child (intake opens or updates the child's case)."""

    model_config = ConfigDict(extra="forbid")

    concern_category: ConcernCategory
    urgency: Urgency
    observations: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
    reporter_role: ReporterRole = ReporterRole.child_director
    reference: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = Field(
        default=None, description="The visitor's staff number in their own agency (not a name)."
    )


VISIT_EXAMPLE: dict[str, Any] = {
    "kind": "home_visit",
    "visited_on": "2026-11-25",
    "agency": "village",
    "findings": ["caregiver_unable", "child_unwell"],
    "notes": "祖母腿伤卧床，孩子发烧两天未就医。",
    "report": {
        "concern_category": "caregiver_unable",
        "urgency": "urgent",
        "observations": "受托照护的祖母腿伤卧床，无力照护；孩子发烧两天未就医。",
    },
}


class VisitCreate(BaseModel):
    """A contact or home visit (走访) by the child director, with its findings."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [VISIT_EXAMPLE]})

    kind: VisitKind = Field(description="contact (at least monthly) or home_visit (at least every 3 months).")
    visited_on: date
    agency: Agency = Field(description="village, township or civil_affairs.")
    director_id: UUID | None = Field(
        default=None, description="The child director (儿童主任) who made it: one on the directors roster."
    )
    findings: list[VisitFinding] = Field(min_length=1, max_length=len(VisitFinding))
    notes: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = Field(
        default=None, description="Kept in guardianship only; never published."
    )
    report: VisitReportIn | None = Field(
        default=None,
        description="File a mandatory report about what was found, in the same step (required for "
        "suspected_abuse). The answer names the report's case.",
    )

    @field_validator("visited_on")
    @classmethod
    def _visited_on(cls, value: date) -> date:
        _not_in_future(value)
        return value

    @field_validator("findings")
    @classmethod
    def _unique(cls, value: list[VisitFinding]) -> list[VisitFinding]:
        if len(set(value)) != len(value):
            raise ValueError("findings must not repeat")
        return value


class FiledReportPublic(BaseModel):
    report_id: UUID
    case_id: UUID = Field(description="The case the report opened or updated.")


class VisitPublic(BaseModel):
    visit_id: UUID
    child_id: UUID
    case_id: UUID = Field(description="The child's standing care case.")
    kind: VisitKind
    visited_on: date
    findings: list[VisitFinding]
    next_contact_due_on: date
    next_home_visit_due_on: date
    report: FiledReportPublic | None


class VisitEntry(BaseModel):
    visit_id: UUID
    kind: VisitKind
    visited_on: date
    findings: list[VisitFinding]
    report_case_id: UUID | None


class ParentContactEntry(BaseModel):
    contact_id: UUID
    contacted_on: date
    channel: ParentContactChannel
    parent: ParentRelation


class ParentContactState(BaseModel):
    last_contact_on: date | None
    days_without_contact: int
    consecutive_misses: int = Field(description="Whole weeks without contact beyond the allowed 7 days.")
    missed: bool = Field(description="More than 7 days without contact.")


class CarePublic(BaseModel):
    child_id: UUID
    case_id: UUID = Field(description="The child's standing care case.")
    as_of: date
    township: str
    village: str
    covered: bool = Field(description="The child has at least one category (left-behind or in difficulty).")
    parents_away: bool
    frequent_visits: bool = Field(description="On the more frequent visit regime.")
    frequent_reasons: list[str]
    last_contact_on: date | None
    last_home_visit_on: date | None
    next_contact_due_on: date
    next_home_visit_due_on: date
    contact_overdue_days: int = Field(description="0: on time (a contact on the due day is on time).")
    home_visit_overdue_days: int
    entrusted_care: str = Field(
        description="not_required (parents not away), in_force, missing, unsigned or expired."
    )
    agreements: list[AgreementPublic]
    parent_contact: ParentContactState | None = Field(description="Only for a child whose parents are away.")
    parent_contacts: list[ParentContactEntry] = Field(description="The latest first (at most 20).")
    visits: list[VisitEntry] = Field(description="The latest first (at most 20).")
    redacted: list[str] = Field(
        default_factory=list,
        description="What this caller's agency does not see, left out (contracts/disclosure.yaml).",
    )


CARE_CHECK_EXAMPLE: dict[str, Any] = {"now": "2026-11-29T01:00:00Z"}


class CareCheckCreate(BaseModel):
    """Run the care checks (the scheduled flow calls this in distributed mode)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [CARE_CHECK_EXAMPLE]})

    now: datetime | None = Field(default=None, description="The moment checked; default: now.")


class CareCheckPublic(BaseModel):
    checked_on: date
    children_checked: int
    visit_overdue: int
    parent_contact_missed: int
    entrusted_care_flagged: int

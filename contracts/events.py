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
    AccessPurpose,
    ChildCategory,
    ConcernCategory,
    CourtOrderKind,
    EntrustedCareProblem,
    ErasureReason,
    EscalationKind,
    InterventionDocumentKind,
    InterventionKind,
    NeedCategory,
    Outcome,
    ParentContactChannel,
    ParentRelation,
    Priority,
    ReferralStatus,
    ReporterRole,
    RiskColour,
    RiskLevel,
    Urgency,
    VisitFinding,
    VisitKind,
)


class ReportFiledData(Contract):
    report_id: UUID
    case_id: UUID
    child_id: UUID
    reporter_agency: Agency
    reporter_role: ReporterRole
    concern_category: ConcernCategory
    urgency: Urgency
    child_categories: tuple[ChildCategory, ...] = Field(
        description="The child file's categories (derived from its facts) united with the categories the reporters "
        "observed, so that routing works before the file has facts."
    )
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


class InterventionDocument(Contract):
    """A document an intervention refers to: its kind and its number or URI, never its contents."""

    kind: InterventionDocumentKind
    reference: str = Field(min_length=1, max_length=200, description="The document's number or URI.")


class InterventionRecordedData(Contract):
    """A step of the guardianship ladder (admonition ... long-term state guardianship). Codes and ids only."""

    intervention_id: UUID
    child_id: UUID
    case_id: UUID
    kind: InterventionKind
    agency: Agency = Field(description="The agency that took the step.")
    documents: tuple[InterventionDocument, ...]
    township: str
    village: str


class InterventionRecorded(CloudEvent):
    event_type = "cn.huhang.guardianship.intervention-recorded.v1"
    schema_name = "intervention-recorded.v1"
    type: Literal["cn.huhang.guardianship.intervention-recorded.v1"] = (
        "cn.huhang.guardianship.intervention-recorded.v1"
    )
    data: InterventionRecordedData


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


class SchoolReturnReportedData(Contract):
    """A school system reports that a child who had dropped out is back at school (inbound: POST
    /v1/children/{child_id}/school-returns)."""

    case_id: UUID
    child_id: UUID
    school_code: str
    returned_on: date
    child_categories: tuple[ChildCategory, ...]
    township: str
    village: str


class SchoolReturnReported(CloudEvent):
    event_type = "cn.huhang.education.school-return-reported.v1"
    schema_name = "school-return-reported.v1"
    type: Literal["cn.huhang.education.school-return-reported.v1"] = (
        "cn.huhang.education.school-return-reported.v1"
    )
    data: SchoolReturnReportedData


JobAssistanceKind = Literal["job_referral", "local_job_placement", "skills_training", "entrepreneurship_support"]


class JobAssistanceGivenData(Contract):
    """HRSS's employment-assistance platform reports help given to a parent of a left-behind child (inbound)."""

    case_id: UUID
    child_id: UUID
    parent_relation: Literal["father", "mother"]
    assistance_kind: JobAssistanceKind
    given_on: date
    township: str
    village: str


class JobAssistanceGiven(CloudEvent):
    event_type = "cn.huhang.hrss.job-assistance-given.v1"
    schema_name = "job-assistance-given.v1"
    type: Literal["cn.huhang.hrss.job-assistance-given.v1"] = "cn.huhang.hrss.job-assistance-given.v1"
    data: JobAssistanceGivenData


EmergencyTreatmentCause = Literal[
    "injury", "burn", "drowning", "poisoning", "illness", "suspected_abuse", "self_harm", "other"
]


class EmergencyTreatmentReportedData(Contract):
    """A hospital reports that it treated a child in an emergency (inbound). The cause as a code; the diagnosis and
    the notes stay with the hospital."""

    case_id: UUID
    child_id: UUID
    hospital_code: str
    treated_on: date
    cause: EmergencyTreatmentCause
    admitted: bool = Field(description="The child was admitted (住院), not only treated.")
    child_categories: tuple[ChildCategory, ...]
    township: str
    village: str


class EmergencyTreatmentReported(CloudEvent):
    event_type = "cn.huhang.health.emergency-treatment-reported.v1"
    schema_name = "emergency-treatment-reported.v1"
    type: Literal["cn.huhang.health.emergency-treatment-reported.v1"] = (
        "cn.huhang.health.emergency-treatment-reported.v1"
    )
    data: EmergencyTreatmentReportedData


class ChildFileUpdatedData(Contract):
    """The child's file (一人一档) was registered or its facts or categories changed. Codes and dates only."""

    child_id: UUID
    case_id: UUID = Field(description="The child's standing care case (contracts.cases.care_case_id).")
    township: str
    village: str
    categories: tuple[ChildCategory, ...]
    added_categories: tuple[ChildCategory, ...]
    removed_categories: tuple[ChildCategory, ...]
    category_reasons: tuple[str, ...] = Field(description="Why the categories are what they are, as codes.")
    parents_away: bool
    parents_away_since: date | None
    frequent_visit_reasons: tuple[str, ...] = Field(
        description="Why the child director must visit more often: guardian_serious_disability, child_disability, "
        "child_psychological_abnormality."
    )
    has_entrusted_caregiver: bool


class ChildFileUpdated(CloudEvent):
    event_type = "cn.huhang.child.file-updated.v1"
    schema_name = "child-file-updated.v1"
    type: Literal["cn.huhang.child.file-updated.v1"] = "cn.huhang.child.file-updated.v1"
    data: ChildFileUpdatedData


class ChildrenMergedData(Contract):
    """A confirmed duplicate was merged into the surviving file; both histories are kept."""

    child_id: UUID = Field(description="The surviving child's id.")
    merged_child_id: UUID
    case_id: UUID = Field(description="The survivor's standing care case.")
    township: str
    village: str
    merged_by: Agency


class ChildrenMerged(CloudEvent):
    event_type = "cn.huhang.child.merged.v1"
    schema_name = "children-merged.v1"
    type: Literal["cn.huhang.child.merged.v1"] = "cn.huhang.child.merged.v1"
    data: ChildrenMergedData


class ChildDataErasedData(Contract):
    """A child's personal data was erased: every service destroys its key for the child (its stored events stay,
    sealed and unreadable, so the hash chain still verifies) and purges its derived copies. The non-personal trail
    (ids, codes, agencies, times) stays."""

    child_id: UUID
    case_id: UUID = Field(description="The child's standing care case.")
    reason: ErasureReason
    erased_by: Agency


class ChildDataErased(CloudEvent):
    event_type = "cn.huhang.child.data-erased.v1"
    schema_name = "child-data-erased.v1"
    type: Literal["cn.huhang.child.data-erased.v1"] = "cn.huhang.child.data-erased.v1"
    data: ChildDataErasedData


class VisitRecordedData(Contract):
    """The child director contacted or visited the child (走访). Findings as codes; notes stay in guardianship."""

    visit_id: UUID
    child_id: UUID
    case_id: UUID = Field(description="The child's standing care case (contracts.cases.care_case_id).")
    kind: VisitKind
    visited_on: date
    findings: tuple[VisitFinding, ...]
    next_contact_due_on: date
    next_home_visit_due_on: date
    township: str
    village: str


class VisitRecorded(CloudEvent):
    event_type = "cn.huhang.guardianship.visit-recorded.v1"
    schema_name = "visit-recorded.v1"
    type: Literal["cn.huhang.guardianship.visit-recorded.v1"] = "cn.huhang.guardianship.visit-recorded.v1"
    data: VisitRecordedData


class VisitOverdueData(Contract):
    """A contact or home visit of the visit regime was not made by its due day."""

    child_id: UUID
    case_id: UUID
    kind: VisitKind
    due_on: date
    days_overdue: int = Field(ge=1)
    township: str
    village: str


class VisitOverdue(CloudEvent):
    event_type = "cn.huhang.guardianship.visit-overdue.v1"
    schema_name = "visit-overdue.v1"
    type: Literal["cn.huhang.guardianship.visit-overdue.v1"] = "cn.huhang.guardianship.visit-overdue.v1"
    data: VisitOverdueData


class ParentContactMissedData(Contract):
    """Parents away have not contacted the child for more than 7 days (one event per missed week)."""

    child_id: UUID
    case_id: UUID
    last_contact_on: date | None = Field(description="The last recorded contact; null when none was recorded.")
    days_without_contact: int = Field(ge=8)
    consecutive_misses: int = Field(ge=1, description="Whole weeks without contact: 1 from day 8, 2 from day 15.")
    escalated: bool = Field(description="Missed two weeks or more in a row: routed beyond the village.")
    township: str
    village: str


class ParentContactMissed(CloudEvent):
    event_type = "cn.huhang.guardianship.parent-contact-missed.v1"
    schema_name = "parent-contact-missed.v1"
    type: Literal["cn.huhang.guardianship.parent-contact-missed.v1"] = (
        "cn.huhang.guardianship.parent-contact-missed.v1"
    )
    data: ParentContactMissedData


class EntrustedCareFlaggedData(Contract):
    """Entrusted care (委托照护) needs the village's action: no, an unsigned or an expired agreement, or a visit
    found the caregiver unable or neglectful."""

    child_id: UUID
    case_id: UUID
    problem: EntrustedCareProblem
    township: str
    village: str


class EntrustedCareFlagged(CloudEvent):
    event_type = "cn.huhang.guardianship.entrusted-care-flagged.v1"
    schema_name = "entrusted-care-flagged.v1"
    type: Literal["cn.huhang.guardianship.entrusted-care-flagged.v1"] = (
        "cn.huhang.guardianship.entrusted-care-flagged.v1"
    )
    data: EntrustedCareFlaggedData


class ParentContactRecordedData(Contract):
    """Parents working away were in touch with their child (the plan: at least weekly). The channel and which parent
    as codes; what was said stays in guardianship. Feeds parent-contact compliance (indicators)."""

    contact_id: UUID
    child_id: UUID
    case_id: UUID = Field(description="The child's standing care case (contracts.cases.care_case_id).")
    contacted_on: date
    channel: ParentContactChannel
    parent: ParentRelation


class ParentContactRecorded(CloudEvent):
    event_type = "cn.huhang.guardianship.parent-contact-recorded.v1"
    schema_name = "parent-contact-recorded.v1"
    type: Literal["cn.huhang.guardianship.parent-contact-recorded.v1"] = (
        "cn.huhang.guardianship.parent-contact-recorded.v1"
    )
    data: ParentContactRecordedData


class EntrustedCareAgreementSignedData(Contract):
    """An entrusted-care agreement (委托照护协议) for a child whose parents are away is signed: recorded signed, or
    its signature recorded later. In force from ``starts_on`` through ``expires_on``; it ends by date only (no
    event marks the end). The caregiver's name and the agreement's text stay in guardianship."""

    agreement_id: UUID
    child_id: UUID
    case_id: UUID = Field(description="The child's standing care case (contracts.cases.care_case_id).")
    signed_on: date
    starts_on: date
    expires_on: date | None = Field(description="The last day of care; null: until further notice.")


class EntrustedCareAgreementSigned(CloudEvent):
    event_type = "cn.huhang.guardianship.entrusted-care-agreement-signed.v1"
    schema_name = "entrusted-care-agreement-signed.v1"
    type: Literal["cn.huhang.guardianship.entrusted-care-agreement-signed.v1"] = (
        "cn.huhang.guardianship.entrusted-care-agreement-signed.v1"
    )
    data: EntrustedCareAgreementSignedData


class ChildDirectorAssignedData(Contract):
    """A child director (儿童主任) was appointed to serve a village (the roster). About no case: the subject is the
    director id, so that one director's events keep their order. Name and phone stay in guardianship."""

    director_id: UUID
    township: str
    village: str
    appointed_on: date


class ChildDirectorAssigned(CloudEvent):
    event_type = "cn.huhang.guardianship.child-director-assigned.v1"
    schema_name = "child-director-assigned.v1"
    type: Literal["cn.huhang.guardianship.child-director-assigned.v1"] = (
        "cn.huhang.guardianship.child-director-assigned.v1"
    )
    data: ChildDirectorAssignedData


class ChildDirectorLeftData(Contract):
    """A child director left the post (subject: the director id); the children they followed are to be assigned
    to another (guardianship's own business)."""

    director_id: UUID
    left_on: date


class ChildDirectorLeft(CloudEvent):
    event_type = "cn.huhang.guardianship.child-director-left.v1"
    schema_name = "child-director-left.v1"
    type: Literal["cn.huhang.guardianship.child-director-left.v1"] = "cn.huhang.guardianship.child-director-left.v1"
    data: ChildDirectorLeftData


class ChildDirectorTrainedData(Contract):
    """A training entered in a child director's record (the plan: trained every year; subject: the director id).
    The course's title stays in guardianship."""

    training_id: UUID
    director_id: UUID
    trained_on: date
    hours: float = Field(gt=0)


class ChildDirectorTrained(CloudEvent):
    event_type = "cn.huhang.guardianship.child-director-trained.v1"
    schema_name = "child-director-trained.v1"
    type: Literal["cn.huhang.guardianship.child-director-trained.v1"] = (
        "cn.huhang.guardianship.child-director-trained.v1"
    )
    data: ChildDirectorTrainedData


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


class BreakGlassAccessOpenedData(Contract):
    """An officer without access opened a case in an emergency (break-the-glass). Flagged to the lead agency for
    review. The stated reason is free text and stays in intake; the event carries ids and codes only."""

    grant_id: UUID
    case_id: UUID
    child_id: UUID
    agency: Agency = Field(description="The agency of the officer who broke the glass.")
    subject: str = Field(max_length=200, description="The officer's pseudonymous account or client id.")
    purpose: AccessPurpose
    opened_at: datetime
    expires_at: datetime
    township: str
    village: str


class BreakGlassAccessOpened(CloudEvent):
    event_type = "cn.huhang.access.break-glass-opened.v1"
    schema_name = "break-glass-access-opened.v1"
    type: Literal["cn.huhang.access.break-glass-opened.v1"] = "cn.huhang.access.break-glass-opened.v1"
    data: BreakGlassAccessOpenedData


class BreakGlassAccessReviewedData(Contract):
    """The lead agency reviewed a break-the-glass access; one found not justified ends the access at once."""

    grant_id: UUID
    case_id: UUID
    child_id: UUID
    justified: bool
    reviewer_agency: Agency
    township: str
    village: str


class BreakGlassAccessReviewed(CloudEvent):
    event_type = "cn.huhang.access.break-glass-reviewed.v1"
    schema_name = "break-glass-access-reviewed.v1"
    type: Literal["cn.huhang.access.break-glass-reviewed.v1"] = "cn.huhang.access.break-glass-reviewed.v1"
    data: BreakGlassAccessReviewedData


class NeedRecordedData(Contract):
    """A need found on a case (relief and charity matching, issue 10). The child's age and the delivery details
    stay sealed in the referral service; the event carries ids, codes and the place only."""

    need_id: UUID
    case_id: UUID
    child_id: UUID
    category: NeedCategory
    found_by: Agency
    township: str
    village: str


class NeedRecorded(CloudEvent):
    event_type = "cn.huhang.relief.need-recorded.v1"
    schema_name = "need-recorded.v1"
    type: Literal["cn.huhang.relief.need-recorded.v1"] = "cn.huhang.relief.need-recorded.v1"
    data: NeedRecordedData


class SpotCheckFollowUpRequiredData(Contract):
    """The annual archive spot check (档案抽查, issue 8) found items of a child's file failing: the township follows
    up. The failed checklist items as codes (contracts/spot_check_checklist.yaml); the checker's notes stay in the
    indicators service."""

    spot_check_id: UUID
    child_id: UUID
    case_id: UUID = Field(description="The child's standing care case (contracts.cases.care_case_id).")
    year: int = Field(ge=2000, le=2100, description="The year the spot check is for.")
    township: str
    village: str
    items_failed: tuple[str, ...] = Field(min_length=1, description="Checklist item codes newly failed.")


class SpotCheckFollowUpRequired(CloudEvent):
    event_type = "cn.huhang.indicators.spot-check-follow-up-required.v1"
    schema_name = "spot-check-follow-up-required.v1"
    type: Literal["cn.huhang.indicators.spot-check-follow-up-required.v1"] = (
        "cn.huhang.indicators.spot-check-follow-up-required.v1"
    )
    data: SpotCheckFollowUpRequiredData


class IndicatorColourChangedData(Contract):
    """A unit's colour on an indicator changed (赋色管理, issue 8; thresholds in contracts/indicators.yaml). Codes,
    place names and a figure only; ``value`` is null when the unit counts fewer than 5 children (small cell)."""

    change_id: UUID
    indicator: str = Field(max_length=60, description="The indicator's code (contracts/indicators.yaml).")
    unit_kind: Literal["county", "township", "village", "agency"]
    unit: str = Field(max_length=210, description="county; a township; <township>/<village>; an agency code.")
    township: str | None = Field(description="The unit's township (null for the county and agencies).")
    previous_colour: RiskColour | None
    colour: RiskColour | None = Field(description="Null when the figure has no value any more.")
    value: float | None
    as_of: datetime


class IndicatorColourChanged(CloudEvent):
    event_type = "cn.huhang.indicators.colour-changed.v1"
    schema_name = "indicator-colour-changed.v1"
    type: Literal["cn.huhang.indicators.colour-changed.v1"] = "cn.huhang.indicators.colour-changed.v1"
    data: IndicatorColourChangedData

CONTRACT_EVENTS: tuple[type[CloudEvent], ...] = (
    ReportFiled,
    GuardianshipRiskAssessed,
    CourtProtectionOrderIssued,
    InterventionRecorded,
    SchoolDropoutReported,
    JobAssistanceRequested,
    SchoolReturnReported,
    JobAssistanceGiven,
    EmergencyTreatmentReported,
    ChildFileUpdated,
    ChildrenMerged,
    ChildDataErased,
    VisitRecorded,
    VisitOverdue,
    ParentContactMissed,
    EntrustedCareFlagged,
    ParentContactRecorded,
    EntrustedCareAgreementSigned,
    ChildDirectorAssigned,
    ChildDirectorLeft,
    ChildDirectorTrained,
    ReferralRequested,
    ReferralStatusChanged,
    ReferralReturned,
    ReferralEscalated,
    ReferralOwnerChanged,
    BreakGlassAccessOpened,
    BreakGlassAccessReviewed,
    NeedRecorded,
    SpotCheckFollowUpRequired,
    IndicatorColourChanged,
)

AnyCaseEvent = Annotated[
    ReportFiled
    | GuardianshipRiskAssessed
    | CourtProtectionOrderIssued
    | InterventionRecorded
    | SchoolDropoutReported
    | JobAssistanceRequested
    | SchoolReturnReported
    | JobAssistanceGiven
    | EmergencyTreatmentReported
    | ChildFileUpdated
    | ChildrenMerged
    | ChildDataErased
    | VisitRecorded
    | VisitOverdue
    | ParentContactMissed
    | EntrustedCareFlagged
    | ParentContactRecorded
    | EntrustedCareAgreementSigned
    | ChildDirectorAssigned
    | ChildDirectorLeft
    | ChildDirectorTrained
    | ReferralRequested
    | ReferralStatusChanged
    | ReferralReturned
    | ReferralEscalated
    | ReferralOwnerChanged
    | BreakGlassAccessOpened
    | BreakGlassAccessReviewed
    | NeedRecorded
    | SpotCheckFollowUpRequired
    | IndicatorColourChanged,
    Field(discriminator="type"),
]

CASE_EVENT_ADAPTER: TypeAdapter[AnyCaseEvent] = TypeAdapter(AnyCaseEvent)


def parse_event(raw: bytes | str) -> AnyCaseEvent:
    """Parse one structured-mode CloudEvent (JSON) into its contract class."""
    return CASE_EVENT_ADAPTER.validate_json(raw)

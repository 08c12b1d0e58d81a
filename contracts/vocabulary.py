"""Coded values shared by the services and the integration events (one source of truth)."""

from __future__ import annotations

from enum import StrEnum


class Sex(StrEnum):
    female = "female"
    male = "male"


class ChildCategory(StrEnum):
    left_behind = "left_behind"  # 留守儿童
    single_parent = "single_parent"  # 单亲
    disabled = "disabled"  # 残疾
    difficulty_basic_living = "difficulty_basic_living"  # 基本生活困难
    difficulty_medical = "difficulty_medical"  # 医疗康复困难
    difficulty_education = "difficulty_education"  # 教育困难
    difficulty_housing = "difficulty_housing"  # 住房困难
    guardianship_missing = "guardianship_missing"  # 监护缺失
    guardianship_improper = "guardianship_improper"  # 监护不当


class ConcernCategory(StrEnum):
    """What a mandatory report (强制报告) is about."""

    guardian_neglect = "guardian_neglect"
    guardian_abuse = "guardian_abuse"
    domestic_violence = "domestic_violence"
    sexual_abuse = "sexual_abuse"
    abandonment = "abandonment"
    caregiver_unable = "caregiver_unable"
    school_dropout = "school_dropout"
    psychological_crisis = "psychological_crisis"
    online_harm = "online_harm"
    bullying = "bullying"
    delinquency_risk = "delinquency_risk"
    injury_or_acute_illness = "injury_or_acute_illness"
    basic_living_hardship = "basic_living_hardship"
    disability_rehabilitation = "disability_rehabilitation"
    parents_need_local_work = "parents_need_local_work"
    lack_of_care = "lack_of_care"
    safety_hazard = "safety_hazard"


class Urgency(StrEnum):
    routine = "routine"
    urgent = "urgent"
    immediate_danger = "immediate_danger"


class ReporterRole(StrEnum):
    teacher = "teacher"
    school_principal = "school_principal"
    doctor = "doctor"
    nurse = "nurse"
    police_officer = "police_officer"
    child_director = "child_director"  # 儿童主任
    child_supervisor = "child_supervisor"  # 儿童督导员
    social_worker = "social_worker"
    hotline_operator = "hotline_operator"  # 12355 / 96525
    civil_servant = "civil_servant"
    volunteer = "volunteer"


class Priority(StrEnum):
    """Referral priority, as FHIR Task.priority."""

    routine = "routine"
    urgent = "urgent"
    asap = "asap"
    stat = "stat"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.routine: 0, Priority.urgent: 1, Priority.asap: 2, Priority.stat: 3}


class RiskLevel(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class RiskColour(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


class CourtOrderKind(StrEnum):
    personal_safety_protection = "personal_safety_protection"  # 人身安全保护令
    guardianship_revocation = "guardianship_revocation"  # 撤销监护人资格
    family_education_guidance = "family_education_guidance"  # 家庭教育指导令


class ReferralStatus(StrEnum):
    """Referral lifecycle, modelled on FHIR Task.status."""

    requested = "requested"
    received = "received"
    accepted = "accepted"
    rejected = "rejected"
    in_progress = "in-progress"
    on_hold = "on-hold"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    entered_in_error = "entered-in-error"


class RejectionReason(StrEnum):
    not_responsible = "not_responsible"
    out_of_area = "out_of_area"
    insufficient_information = "insufficient_information"
    duplicate = "duplicate"
    already_handled = "already_handled"
    other = "other"


class FailureReason(StrEnum):
    family_unreachable = "family_unreachable"
    family_refused = "family_refused"
    child_moved_away = "child_moved_away"
    lacking_resources = "lacking_resources"
    other = "other"


class Outcome(StrEnum):
    resolved = "resolved"
    service_delivered = "service_delivered"
    referred_onward = "referred_onward"
    no_action_needed = "no_action_needed"


class EscalationKind(StrEnum):
    overdue_acceptance = "overdue_acceptance"  # not received or accepted by its due time
    overdue_completion = "overdue_completion"  # accepted but not completed in time
    supervisor = "supervisor"  # escalated by a supervising agency

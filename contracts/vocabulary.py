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


class InterventionKind(StrEnum):
    """The steps of the plan's guardianship ladder (workflows 1 and 3), in ladder order."""

    admonition = "admonition"  # 村(居)委会劝诫
    police_report = "police_report"  # 报告公安机关
    police_reprimand = "police_reprimand"  # 公安机关训诫
    family_education_order = "family_education_order"  # 责令接受家庭教育指导 (police)
    family_education_guidance = "family_education_guidance"  # 妇联家庭教育指导
    protection_order_application = "protection_order_application"  # 申请人身安全保护令
    protection_order_issued = "protection_order_issued"  # 法院签发人身安全保护令
    guardianship_revocation_application = "guardianship_revocation_application"  # 申请撤销监护人资格
    guardianship_revoked = "guardianship_revoked"  # 法院判决撤销监护人资格
    temporary_guardianship_placement = "temporary_guardianship_placement"  # 临时监护(未成年人救助保护机构)
    long_term_state_guardianship = "long_term_state_guardianship"  # 长期监护(国家监护)


class InterventionDocumentKind(StrEnum):
    """The documents an intervention refers to (by number or URI; their contents stay with the issuer)."""

    admonition_record = "admonition_record"  # 劝诫记录
    police_report_receipt = "police_report_receipt"  # 报警回执 / 受案回执
    reprimand_letter = "reprimand_letter"  # 训诫书
    family_education_order_letter = "family_education_order_letter"  # 责令接受家庭教育指导决定书
    guidance_record = "guidance_record"  # 家庭教育指导记录
    application = "application"  # 申请书
    protection_order = "protection_order"  # 人身安全保护令(裁定书)
    court_judgment = "court_judgment"  # 判决书
    placement_decision = "placement_decision"  # 临时监护决定书
    state_guardianship_decision = "state_guardianship_decision"  # 长期监护决定书
    procuratorial_document = "procuratorial_document"  # 支持起诉意见书、检察建议书
    other = "other"


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


class VisitKind(StrEnum):
    """How the child director reached the child: any contact (monthly), or a visit at home (every 3 months)."""

    contact = "contact"  # 联系(电话、视频、见面)
    home_visit = "home_visit"  # 入户走访


class VisitFinding(StrEnum):
    all_well = "all_well"
    caregiver_unable = "caregiver_unable"  # 受托照护人无力照护
    caregiver_neglectful = "caregiver_neglectful"  # 受托照护人未尽照护职责
    child_unwell = "child_unwell"
    child_absent = "child_absent"
    unsafe_housing = "unsafe_housing"
    suspected_abuse = "suspected_abuse"
    other = "other"


class ParentContactChannel(StrEnum):
    phone = "phone"
    video = "video"
    visit_home = "visit_home"  # the parent came home
    other = "other"


class ParentRelation(StrEnum):
    father = "father"
    mother = "mother"
    both = "both"


class CaregiverRelation(StrEnum):
    """The entrusted caregiver (受委托照护人) in relation to the child."""

    grandparent = "grandparent"
    other_relative = "other_relative"
    family_friend = "family_friend"
    neighbour = "neighbour"
    other = "other"


class EntrustedCareProblem(StrEnum):
    missing = "missing"  # parents away and no agreement in force
    unsigned = "unsigned"  # the agreement in force is not signed
    expired = "expired"  # the last agreement ended and none replaced it
    caregiver_unable = "caregiver_unable"  # a visit found the caregiver unable to care for the child
    caregiver_neglectful = "caregiver_neglectful"  # a visit found the caregiver neglecting the child


class AccessPurpose(StrEnum):
    """Why a record is read (the access log, break-the-glass). A code, never free text."""

    casework = "casework"  # working a referral or the case
    emergency_protection = "emergency_protection"  # a child in danger now
    investigation = "investigation"  # police, procuratorate
    medical_emergency = "medical_emergency"
    supervision = "supervision"  # the lead or supervising agency overseeing the work
    audit = "audit"
    other = "other"


class ErasureReason(StrEnum):
    """Why a child's personal data was erased (crypto-shredding)."""

    retention_expired = "retention_expired"  # the retention period after the file was closed has passed
    court_order = "court_order"
    registered_in_error = "registered_in_error"  # a file opened for a child who does not exist or is not ours


class NeedCategory(StrEnum):
    """A need found on a case that relief or a charity may meet (plan tasks 9 and 17)."""

    basic_living = "basic_living"  # 基本生活
    medical = "medical"  # 医疗救治、康复
    assistive_devices = "assistive_devices"  # 辅助器具
    tuition_supplies = "tuition_supplies"  # 学费、学习用品
    tutoring = "tutoring"  # 课业辅导
    counselling = "counselling"  # 心理疏导
    legal_aid = "legal_aid"  # 法律援助
    holiday_activities = "holiday_activities"  # 假期活动
    family_education = "family_education"  # 家庭教育指导
    parent_job_help = "parent_job_help"  # 父母就业帮扶

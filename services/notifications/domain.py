"""What an agency must be told, and in which words: pure functions from integration events to notices.

The owner of a new referral is told to act; every agency that reported the case is told where it went and how it
ended (closing the loop, 反馈闭环). Texts hold codes and agency names only: events carry no personal data, and
the free-text ``reason`` of a status change is left out because it might.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from uuid import UUID

from contracts.agencies import AGENCY_NAMES, LEAD_AGENCY, Agency
from contracts.envelope import CloudEvent
from contracts.events import ReferralEscalated, ReferralOwnerChanged, ReferralRequested, ReferralStatusChanged
from contracts.vocabulary import Priority, ReferralStatus

NOTICE_ID_NAMESPACE = uuid.UUID("7e3a1c58-2b9d-4f60-a8e4-c51d0f9b2e73")
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")


class NotificationKind(StrEnum):
    new_referral = "new_referral"  # to the owner: a referral to act on
    report_referred = "report_referred"  # to the reporter: the case went to an agency
    referral_accepted = "referral_accepted"
    referral_rejected = "referral_rejected"
    referral_completed = "referral_completed"
    referral_failed = "referral_failed"
    overdue_reminder = "overdue_reminder"  # to the owner: escalation level 1
    overdue_supervision = "overdue_supervision"  # to the supervising agency: escalation level 2 and above
    referral_closed = "referral_closed"  # to the requester and the lead agency: completed, rejected or failed
    referral_transferred = "referral_transferred"  # to the new owner
    visit_overdue = "visit_overdue"  # to the village: a contact or home visit is overdue (services/.../reminders.py)
    parent_contact_missed = "parent_contact_missed"  # to the village (and the township when repeated)
    daily_digest = "daily_digest"  # to each agency: yesterday's notices by kind (services/notifications/digest.py)
    indicator_colour_changed = "indicator_colour_changed"  # to the lead agency and the unit's township (colours.py)


# The status changes a reporter hears of: (kind, priority, Chinese text, English text) by status.
REPORTER_STATUS_NOTICES: dict[ReferralStatus, tuple[NotificationKind, Priority, str, str]] = {
    ReferralStatus.accepted: (
        NotificationKind.referral_accepted, Priority.routine,
        "您报告的案件已由{zh}接收处理（accepted）", "The case you reported was accepted by: {en} (accepted).",
    ),
    ReferralStatus.rejected: (
        NotificationKind.referral_rejected, Priority.urgent,
        "{zh}未接收您报告的案件的转介（rejected）",
        "The referral of the case you reported was rejected by: {en} (rejected).",
    ),
    ReferralStatus.completed: (
        NotificationKind.referral_completed, Priority.routine,
        "{zh}已完成您报告的案件的处置（completed）", "The case you reported was completed by: {en} (completed).",
    ),
    ReferralStatus.failed: (
        NotificationKind.referral_failed, Priority.urgent,
        "{zh}未能完成您报告的案件的处置（failed）", "The case you reported could not be completed by: {en} (failed).",
    ),
}


@dataclass(frozen=True)
class Notice:
    id: UUID
    agency: Agency
    case_id: UUID
    event_id: UUID
    kind: NotificationKind
    priority: Priority
    text_zh: str
    text_en: str
    created_at: datetime


def notice_id(event_id: UUID, recipient: Agency) -> UUID:
    """One notice per event and recipient: a redelivered event makes the same id, so nothing is told twice."""
    return uuid.uuid5(NOTICE_ID_NAMESPACE, f"{event_id}/{recipient.value}")


def _notice(
    e: CloudEvent, case_id: UUID, recipient: Agency, kind: NotificationKind, priority: Priority, zh: str, en: str
) -> Notice:
    return Notice(
        id=notice_id(e.id, recipient), agency=recipient, case_id=case_id, event_id=e.id, kind=kind,
        priority=priority, text_zh=zh, text_en=en, created_at=e.time,
    )


def owner_notices(e: CloudEvent) -> list[Notice]:
    """What the agency a referral is addressed to must know."""
    if not isinstance(e, ReferralRequested):
        return []
    d = e.data
    due = d.due_at.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M")
    return [
        _notice(
            e, d.case_id, d.owner_agency, NotificationKind.new_referral, d.priority,
            f"新转介：{d.referral_type}，优先级 {d.priority.value}，截止 {due}（北京时间）",
            f"New referral: {d.referral_type}, priority {d.priority.value}, due {due} (UTC+8)",
        )
    ]


def direct_notices(e: CloudEvent) -> list[Notice]:
    """Every notice the event itself addresses: the owner of a new referral, overdue reminders and supervision,
    the closing of a referral to its requester and the lead agency, a transfer to the new owner."""
    return owner_notices(e) + escalation_notices(e) + closure_notices(e) + transfer_notices(e)


def escalation_notices(e: CloudEvent) -> list[Notice]:
    if not isinstance(e, ReferralEscalated):
        return []
    d = e.data
    since = d.overdue_since.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M")
    if d.level == 1:
        return [_notice(
            e, d.case_id, d.owner_agency, NotificationKind.overdue_reminder, Priority.urgent,
            f"转介已逾期（{d.kind.value}，自 {since} 北京时间），请尽快处理",
            f"A referral is overdue ({d.kind.value}, since {since} UTC+8): please act.",
        )]
    zh, en = AGENCY_NAMES[d.owner_agency]
    return [_notice(
        e, d.case_id, d.supervising_agency, NotificationKind.overdue_supervision, Priority.asap,
        f"{zh}的转介逾期未处理（{d.kind.value}，第{d.level}级督办）",
        f"A referral owned by {en} is overdue ({d.kind.value}, escalation level {d.level}).",
    )]


CLOSING = {ReferralStatus.completed, ReferralStatus.rejected, ReferralStatus.failed}


def closure_notices(e: CloudEvent) -> list[Notice]:
    """Closed loop: the requester and the case's lead agency see a referral end (not the owner itself)."""
    if not isinstance(e, ReferralStatusChanged) or e.data.status not in CLOSING:
        return []
    d = e.data
    zh, en = AGENCY_NAMES[d.owner_agency]
    code = d.outcome.value if d.outcome else (d.reason_code or "")
    recipients = {LEAD_AGENCY, *([d.requester_agency] if d.requester_agency else [])} - {d.owner_agency}
    return [
        _notice(
            e, d.case_id, r, NotificationKind.referral_closed,
            Priority.routine if d.status is ReferralStatus.completed else Priority.urgent,
            f"{zh}的转介已结束：{d.status.value}（{code}）",
            f"A referral owned by {en} ended: {d.status.value} ({code}).",
        )
        for r in sorted(recipients)
    ]


def transfer_notices(e: CloudEvent) -> list[Notice]:
    if not isinstance(e, ReferralOwnerChanged):
        return []
    zh, en = AGENCY_NAMES[e.data.from_agency]
    return [_notice(
        e, e.data.case_id, e.data.to_agency, NotificationKind.referral_transferred, Priority.urgent,
        f"{zh}移交的转介已由本单位接收", f"A referral transferred from {en} is now yours.",
    )]


def reporter_notices(e: CloudEvent, reporters: Iterable[Agency]) -> list[Notice]:
    """What the agencies that reported the case are told about its referrals (not the owner about itself)."""
    if isinstance(e, ReferralRequested):
        owner = e.data.owner_agency
        zh, en = AGENCY_NAMES[owner]
        return [
            _notice(
                e, e.data.case_id, r, NotificationKind.report_referred, Priority.routine,
                f"您报告的案件已转介至{zh}", f"The case you reported was referred to: {en}.",
            )
            for r in sorted(set(reporters)) if r != owner
        ]
    if isinstance(e, ReferralStatusChanged) and e.data.status in REPORTER_STATUS_NOTICES:
        owner = e.data.owner_agency
        kind, priority, zh_text, en_text = REPORTER_STATUS_NOTICES[e.data.status]
        zh, en = AGENCY_NAMES[owner]
        return [
            _notice(e, e.data.case_id, r, kind, priority, zh_text.format(zh=zh), en_text.format(en=en))
            for r in sorted(set(reporters)) if r != owner
        ]
    return []


def concerns_reporters(e: CloudEvent) -> bool:
    """Whether the reporters of the case are to hear of this event."""
    return isinstance(e, ReferralRequested) or (
        isinstance(e, ReferralStatusChanged) and e.data.status in REPORTER_STATUS_NOTICES
    )

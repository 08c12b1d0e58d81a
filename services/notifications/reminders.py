"""Reminders to whoever must act on the routine care of a child: an overdue contact or home visit, and parents who
have not called (issue 6, reminders). Pure functions from guardianship's integration events to notices.

Overdue referrals are already reminded (``overdue_reminder`` and ``overdue_supervision`` from ``ReferralEscalated``).
Here the village's child director is reminded of an overdue visit, and of parents who did not call; a second missed
week in a row also reaches the township. **At most once per item per period**: the notice id is derived from the
item and its period (the child, the kind of visit and its due day; the child and the missed week), not from the
event, so a care check that reports the same overdue item again tells no one twice. Texts hold codes, dates and
counts only (the events carry no name), in Chinese (zh-CN, the default text) and English.
"""

from __future__ import annotations

import uuid
from uuid import UUID

from contracts.agencies import Agency
from contracts.envelope import CloudEvent
from contracts.events import ParentContactMissed, VisitOverdue
from contracts.vocabulary import Priority, VisitKind
from services.notifications.domain import Notice, NotificationKind

REMINDER_NAMESPACE = uuid.UUID("0f6c2a8e-5d41-4b7a-9e13-6a2f8c4d1b95")
VISIT_NAMES = {VisitKind.contact: ("联系", "contact"), VisitKind.home_visit: ("入户走访", "home visit")}


def reminder_id(item: str, recipient: Agency) -> UUID:
    """One notice per item, period and recipient."""
    return uuid.uuid5(REMINDER_NAMESPACE, f"{item}/{recipient.value}")


def reminder_notices(e: CloudEvent) -> list[Notice]:
    if isinstance(e, VisitOverdue):
        return _visit_overdue(e)
    if isinstance(e, ParentContactMissed):
        return _parent_contact_missed(e)
    return []


def _visit_overdue(e: VisitOverdue) -> list[Notice]:
    d = e.data
    zh, en = VISIT_NAMES[d.kind]
    item = f"visit/{d.child_id}/{d.kind.value}/{d.due_on.isoformat()}"
    return [Notice(
        id=reminder_id(item, Agency.village), agency=Agency.village, case_id=d.case_id, event_id=e.id,
        kind=NotificationKind.visit_overdue, priority=Priority.urgent if d.days_overdue > 7 else Priority.routine,
        text_zh=f"儿童{zh}已逾期{d.days_overdue}天（应于 {d.due_on.isoformat()} 前完成），请尽快{zh}",
        text_en=f"A {en} is {d.days_overdue} day(s) overdue (due {d.due_on.isoformat()}): please make it.",
        created_at=e.time,
    )]


def _parent_contact_missed(e: ParentContactMissed) -> list[Notice]:
    d = e.data
    item = f"parent-contact/{d.child_id}/{d.consecutive_misses}/{d.last_contact_on}"
    recipients = [Agency.village, *([Agency.township] if d.escalated else [])]
    return [
        Notice(
            id=reminder_id(item, recipient), agency=recipient, case_id=d.case_id, event_id=e.id,
            kind=NotificationKind.parent_contact_missed,
            priority=Priority.urgent if d.escalated else Priority.routine,
            text_zh=f"外出父母已{d.days_without_contact}天未与孩子联系（连续第{d.consecutive_misses}周），请督促父母每周联系",
            text_en=f"The parents away have not contacted the child for {d.days_without_contact} days "
                    f"(week {d.consecutive_misses} in a row): ask them to call weekly.",
            created_at=e.time,
        )
        for recipient in recipients
    ]

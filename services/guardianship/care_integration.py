"""Care's domain events as integration events (called from ``services.guardianship.integration``).

Subject and case are the child's standing care case (``contracts.cases.care_case_id``). Codes and dates only:
caregiver names, notes and the report's observations never leave guardianship. Agreements and parent contacts
themselves publish nothing; what needs someone's action does (flags, misses, overdue visits).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from contracts.agencies import LEAD_AGENCY
from contracts.cases import care_case_id
from contracts.envelope import CloudEvent
from contracts.events import (
    EntrustedCareFlagged,
    EntrustedCareFlaggedData,
    ParentContactMissed,
    ParentContactMissedData,
    VisitOverdue,
    VisitOverdueData,
    VisitRecorded,
    VisitRecordedData,
)
from huhang.eventstore import EVENT_ID_NAMESPACE, integration_event_id
from services.guardianship.care import (
    CareFile,
    EntrustedCareNotice,
    ParentContactMissedNotice,
    VisitOverdueNotice,
    caregiver_problems,
)

SOURCE = "/huhang/guardianship"


def care_integration_events(e: Any) -> Sequence[CloudEvent]:
    if isinstance(e, CareFile.VisitRecorded):  # type: ignore[attr-defined]
        return _visit_recorded(e)
    if isinstance(e, VisitOverdueNotice.Raised):  # type: ignore[attr-defined]
        event_id = integration_event_id(e)
        return [VisitOverdue(
            **_envelope(e, event_id, VisitOverdue.schema_uri(), LEAD_AGENCY.value),
            data=VisitOverdueData(
                child_id=e.child_id, case_id=care_case_id(e.child_id), kind=e.kind, due_on=e.due_on,
                days_overdue=e.days_overdue, township=e.township, village=e.village,
            ),
        )]
    if isinstance(e, ParentContactMissedNotice.Raised):  # type: ignore[attr-defined]
        event_id = integration_event_id(e)
        return [ParentContactMissed(
            **_envelope(e, event_id, ParentContactMissed.schema_uri(), LEAD_AGENCY.value),
            data=ParentContactMissedData(
                child_id=e.child_id, case_id=care_case_id(e.child_id), last_contact_on=e.last_contact_on,
                days_without_contact=e.days_without_contact, consecutive_misses=e.consecutive_misses,
                escalated=e.escalated, township=e.township, village=e.village,
            ),
        )]
    if isinstance(e, EntrustedCareNotice.Raised):  # type: ignore[attr-defined]
        event_id = integration_event_id(e)
        return [_flagged(e, event_id, e.problem, LEAD_AGENCY.value)]
    return []


def _envelope(e: Any, event_id: uuid.UUID, dataschema: str, actor: str) -> dict[str, Any]:
    return {
        "id": event_id, "source": SOURCE, "subject": str(care_case_id(e.child_id)), "time": e.timestamp,
        "dataschema": dataschema, "correlationid": event_id, "actoragency": actor,
    }


def _flagged(e: Any, event_id: uuid.UUID, problem: str, actor: str) -> EntrustedCareFlagged:
    return EntrustedCareFlagged(
        **_envelope(e, event_id, EntrustedCareFlagged.schema_uri(), actor),
        data=EntrustedCareFlaggedData(
            child_id=e.child_id, case_id=care_case_id(e.child_id), problem=problem, township=e.township,
            village=e.village,
        ),
    )


def _visit_recorded(e: Any) -> list[CloudEvent]:
    """The visit, and an entrusted-care flag for each caregiver problem it found (caused by the visit)."""
    event_id = integration_event_id(e)
    events: list[CloudEvent] = [VisitRecorded(
        **_envelope(e, event_id, VisitRecorded.schema_uri(), e.agency),
        data=VisitRecordedData(
            visit_id=e.visit_id, child_id=e.child_id, case_id=care_case_id(e.child_id), kind=e.kind,
            visited_on=e.visited_on, findings=tuple(e.findings), next_contact_due_on=e.next_contact_due_on,
            next_home_visit_due_on=e.next_home_visit_due_on, township=e.township, village=e.village,
        ),
    )]
    for problem in caregiver_problems(e.findings):
        flag_id = uuid.uuid5(EVENT_ID_NAMESPACE, f"{e.originator_id}/{e.originator_version}/{problem}")
        flag = _flagged(e, flag_id, problem, e.agency)
        events.append(flag.model_copy(update={"correlationid": event_id, "causationid": event_id}))
    return events

"""Care's domain events as integration events (called from ``services.guardianship.integration``).

Subject and case are the child's standing care case (``contracts.cases.care_case_id``). Codes and dates only:
caregiver names, notes and the report's observations never leave guardianship. What needs someone's action is
published (flags, misses, overdue visits), and so are the facts the indicators count: a parent contact, an agreement
signed (recorded signed, or its signature recorded later) with its term. An agreement ends by date only: nothing
revokes one, so no event marks its end.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from contracts.agencies import LEAD_AGENCY
from contracts.cases import care_case_id
from contracts.envelope import CloudEvent
from contracts.events import (
    EntrustedCareAgreementSigned,
    EntrustedCareAgreementSignedData,
    EntrustedCareFlagged,
    EntrustedCareFlaggedData,
    ParentContactMissed,
    ParentContactMissedData,
    ParentContactRecorded,
    ParentContactRecordedData,
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
    if isinstance(e, CareFile.ParentContactRecorded):  # type: ignore[attr-defined]
        event_id = integration_event_id(e)
        return [ParentContactRecorded(
            **_envelope(e, event_id, ParentContactRecorded.schema_uri(), e.recorded_by),
            data=ParentContactRecordedData(
                contact_id=e.contact_id, child_id=e.child_id, case_id=care_case_id(e.child_id),
                contacted_on=e.contacted_on, channel=e.channel, parent=e.parent,
            ),
        )]
    if isinstance(e, CareFile.AgreementRecorded) and e.signed:  # type: ignore[attr-defined]
        return [_agreement_signed(e, e.signed_on, e.start_on, e.end_on)]
    if isinstance(e, CareFile.AgreementSigned):  # type: ignore[attr-defined]
        # A signature stored before signatures carried the term has no ``start_on`` (nor ``end_on``) and is not
        # published: its term is unknown here, and an agreement counted in force for ever would hide a gap.
        start_on = getattr(e, "start_on", None)
        return [] if start_on is None else [_agreement_signed(e, e.signed_on, start_on, getattr(e, "end_on", None))]
    return []


def _agreement_signed(e: Any, signed_on: date, start_on: date, end_on: date | None) -> EntrustedCareAgreementSigned:
    return EntrustedCareAgreementSigned(
        **_envelope(e, integration_event_id(e), EntrustedCareAgreementSigned.schema_uri(), e.recorded_by),
        data=EntrustedCareAgreementSignedData(
            agreement_id=e.agreement_id, child_id=e.child_id, case_id=care_case_id(e.child_id), signed_on=signed_on,
            starts_on=start_on, expires_on=end_on,
        ),
    )


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

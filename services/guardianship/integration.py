"""The one mapping from guardianship's domain events to integration events (contracts/).

Child directors' events are about no case: their subject is the director id (as the indicators' colour changes
have their unit's), so that one director's appointment, training and departure keep their order on a partition.
The roster's domain events do not record who acted; civil affairs, which keeps the roster, is the acting agency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.agencies import LEAD_AGENCY
from contracts.envelope import CloudEvent
from contracts.events import (
    ChildDirectorAssigned,
    ChildDirectorAssignedData,
    ChildDirectorLeft,
    ChildDirectorLeftData,
    ChildDirectorTrained,
    ChildDirectorTrainedData,
    CourtProtectionOrderIssued,
    CourtProtectionOrderIssuedData,
    GuardianshipRiskAssessed,
    GuardianshipRiskAssessedData,
    InterventionDocument,
    InterventionRecorded,
    InterventionRecordedData,
)
from huhang.eventstore import envelope, integration_event_id
from services.guardianship.care_integration import care_integration_events
from services.guardianship.directors import ChildDirector
from services.guardianship.domain import GuardianshipFile
from services.guardianship.interventions import Intervention

SOURCE = "/huhang/guardianship"
DIRECTOR_EVENTS = (
    ChildDirector.Appointed,  # type: ignore[attr-defined]
    ChildDirector.Left,  # type: ignore[attr-defined]
    ChildDirector.TrainingRecorded,  # type: ignore[attr-defined]
)


def to_integration_events(e: Any) -> Sequence[CloudEvent]:
    if isinstance(e, GuardianshipFile.RiskAssessed):  # type: ignore[attr-defined]
        return [
            GuardianshipRiskAssessed(
                id=integration_event_id(e), source=SOURCE, subject=str(e.case_id), time=e.timestamp,
                dataschema=GuardianshipRiskAssessed.schema_uri(), correlationid=e.correlation_id,
                actoragency=e.assessor_agency,
                data=GuardianshipRiskAssessedData(
                    assessment_id=e.assessment_id, case_id=e.case_id, child_id=e.child_id,
                    risk_level=e.risk_level, colour=e.colour, previous_risk_level=e.previous_risk_level,
                    factors=tuple(e.factors), township=e.township, village=e.village,
                ),
            )
        ]
    if isinstance(e, GuardianshipFile.CourtOrderRecorded):  # type: ignore[attr-defined]
        return [
            CourtProtectionOrderIssued(
                id=integration_event_id(e), source=SOURCE, subject=str(e.case_id), time=e.timestamp,
                dataschema=CourtProtectionOrderIssued.schema_uri(), correlationid=e.correlation_id,
                actoragency=e.recorded_by,
                data=CourtProtectionOrderIssuedData(
                    order_id=e.order_id, case_id=e.case_id, child_id=e.child_id, order_kind=e.order_kind,
                    court_case_number=e.court_case_number, issued_on=e.issued_on, expires_on=e.expires_on,
                    township=e.township, village=e.village,
                ),
            )
        ]
    if isinstance(e, Intervention.Recorded):  # type: ignore[attr-defined]
        return [
            InterventionRecorded(
                id=integration_event_id(e), source=SOURCE, subject=str(e.case_id), time=e.timestamp,
                dataschema=InterventionRecorded.schema_uri(), correlationid=e.correlation_id, actoragency=e.agency,
                data=InterventionRecordedData(
                    intervention_id=e.intervention_id, child_id=e.child_id, case_id=e.case_id, kind=e.kind,
                    agency=e.agency, township=e.township, village=e.village,
                    documents=tuple(
                        InterventionDocument(kind=d["kind"], reference=d["reference"]) for d in e.documents
                    ),
                ),
            )
        ]
    if isinstance(e, DIRECTOR_EVENTS):
        return [_director_event(e)]
    return care_integration_events(e)


def _director_event(e: Any) -> CloudEvent:
    attributes = envelope(e, SOURCE, e.originator_id, LEAD_AGENCY.value)
    if isinstance(e, ChildDirector.Appointed):  # type: ignore[attr-defined]
        return ChildDirectorAssigned(
            **attributes, dataschema=ChildDirectorAssigned.schema_uri(),
            data=ChildDirectorAssignedData(
                director_id=e.originator_id, township=e.township, village=e.village, appointed_on=e.appointed_on,
            ),
        )
    if isinstance(e, ChildDirector.Left):  # type: ignore[attr-defined]
        return ChildDirectorLeft(
            **attributes, dataschema=ChildDirectorLeft.schema_uri(),
            data=ChildDirectorLeftData(director_id=e.originator_id, left_on=e.left_on),
        )
    return ChildDirectorTrained(
        **attributes, dataschema=ChildDirectorTrained.schema_uri(),
        data=ChildDirectorTrainedData(
            training_id=e.training_id, director_id=e.originator_id, trained_on=e.trained_on, hours=e.hours,
        ),
    )

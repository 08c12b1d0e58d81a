"""The one mapping from guardianship's domain events to integration events (contracts/)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.envelope import CloudEvent
from contracts.events import (
    CourtProtectionOrderIssued,
    CourtProtectionOrderIssuedData,
    GuardianshipRiskAssessed,
    GuardianshipRiskAssessedData,
    InterventionDocument,
    InterventionRecorded,
    InterventionRecordedData,
)
from huhang.eventstore import integration_event_id
from services.guardianship.care_integration import care_integration_events
from services.guardianship.domain import GuardianshipFile
from services.guardianship.interventions import Intervention

SOURCE = "/huhang/guardianship"


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
    return care_integration_events(e)

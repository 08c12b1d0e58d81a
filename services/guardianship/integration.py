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
)
from huhang.eventstore import integration_event_id
from services.guardianship.domain import GuardianshipFile

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
    return []

"""The guardianship file of one child: family guardianship capacity assessments and court orders recorded.

Values are stored as plain JSON types (codes as strings) so that old events stay readable when code changes.
An assessment stores its outcome (level, colour, reasons), not only its factors: when the weights change, the
record still says what was decided at the time and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from contracts.agencies import Agency
from huhang.problems import Conflict, DomainError, FieldError, Unprocessable
from services.guardianship.risk import GuardianshipRiskFactor, RiskAssessment, assess_risk

RECORDING_AGENCY = Agency.court


class NotPermitted(DomainError):
    status = 403
    type = "urn:huhang:problem:not-permitted"


def check_may_record_court_orders(agency: str) -> None:
    if agency != RECORDING_AGENCY.value:
        raise NotPermitted(
            f"Only the court records court orders, not '{agency}'.",
            errors=[FieldError(field="agency", reason=f"must be '{RECORDING_AGENCY.value}'")],
        )


class GuardianshipFile(Aggregate):
    """One per child (id = the child id), whatever the case: guardianship risk follows the child."""

    @staticmethod
    def create_id(child_id: UUID, **_: Any) -> UUID:
        return child_id

    @event("Opened")
    def __init__(self, child_id: UUID) -> None:
        self.risk_level: str | None = None
        self.colour: str | None = None
        self.court_case_numbers: list[str] = []

    def assess(
        self, assessment_id: UUID, case_id: UUID, factors: Iterable[GuardianshipRiskFactor], assessor_agency: str,
        township: str, village: str, correlation_id: UUID,
    ) -> RiskAssessment:
        present = sorted(set(factors))
        outcome = assess_risk(present)
        self._risk_assessed(
            assessment_id=assessment_id, case_id=case_id, child_id=self.id, factors=[f.value for f in present],
            risk_level=outcome.level.value, colour=outcome.colour.value, reasons=list(outcome.reasons),
            previous_risk_level=self.risk_level, assessor_agency=assessor_agency, township=township,
            village=village, correlation_id=correlation_id,
        )
        return outcome

    @event("RiskAssessed")
    def _risk_assessed(
        self, assessment_id: UUID, case_id: UUID, child_id: UUID, factors: list[str], risk_level: str, colour: str,
        reasons: list[str], previous_risk_level: str | None, assessor_agency: str, township: str, village: str,
        correlation_id: UUID,
    ) -> None:
        # case, place and correlation travel in the event so that it maps to its contract on its own.
        self.risk_level = risk_level
        self.colour = colour

    def record_court_order(
        self, order_id: UUID, case_id: UUID, order_kind: str, court_case_number: str, issued_on: date,
        expires_on: date | None, recorded_by: str, township: str, village: str, correlation_id: UUID,
    ) -> None:
        check_may_record_court_orders(recorded_by)
        if expires_on is not None and expires_on <= issued_on:
            raise Unprocessable(
                "A court order must expire after it is issued.",
                errors=[FieldError(field="expires_on", reason="must be after issued_on")],
            )
        if court_case_number in self.court_case_numbers:
            raise Conflict(
                f"The order {court_case_number} is already recorded for this child.",
                errors=[FieldError(field="court_case_number", reason="already recorded")],
            )
        self._court_order_recorded(
            order_id=order_id, case_id=case_id, child_id=self.id, order_kind=order_kind,
            court_case_number=court_case_number, issued_on=issued_on, expires_on=expires_on,
            recorded_by=recorded_by, township=township, village=village, correlation_id=correlation_id,
        )

    @event("CourtOrderRecorded")
    def _court_order_recorded(
        self, order_id: UUID, case_id: UUID, child_id: UUID, order_kind: str, court_case_number: str,
        issued_on: date, expires_on: date | None, recorded_by: str, township: str, village: str,
        correlation_id: UUID,
    ) -> None:
        self.court_case_numbers.append(court_case_number)

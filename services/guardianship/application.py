"""Guardianship: family guardianship capacity assessments (家庭监护能力评估) and court orders, per child."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts.agencies import Agency
from contracts.vocabulary import CourtOrderKind
from huhang.eventstore import ServiceApplication
from huhang.groupcommit import GroupCommitter
from huhang.personal import ChildKeys
from huhang.problems import FieldError, NotFound, Unprocessable
from services.guardianship.domain import GuardianshipFile, check_may_record_court_orders
from services.guardianship.known_cases import KnownCase, KnownCases
from services.guardianship.risk import GuardianshipRiskFactor

MAX_ATTEMPTS = 5
T = TypeVar("T")


@dataclass(frozen=True)
class Assessed:
    assessment_id: UUID
    case_id: UUID
    child_id: UUID
    risk_level: str
    colour: str
    previous_risk_level: str | None
    reasons: tuple[str, ...]


class GuardianshipApplication(ServiceApplication):
    name = "guardianship"

    def __init__(
        self, env: dict[str, str] | None = None, *, known_cases: KnownCases, child_keys: ChildKeys | None = None
    ) -> None:
        super().__init__(env, child_keys=child_keys)
        self._known_cases = known_cases
        self._committer = GroupCommitter(self)

    def assess(
        self, child_id: UUID, case_id: UUID, factors: Iterable[GuardianshipRiskFactor], assessor_agency: Agency
    ) -> Assessed:
        case = self._case_of_child(case_id, child_id)
        assessment_id = uuid.uuid4()
        present = list(factors)

        def change(file: GuardianshipFile) -> Assessed:
            previous = file.risk_level
            outcome = file.assess(
                assessment_id=assessment_id, case_id=case_id, factors=present, assessor_agency=assessor_agency.value,
                township=case.township, village=case.village, correlation_id=case.correlation_id,
            )
            return Assessed(
                assessment_id=assessment_id, case_id=case_id, child_id=child_id, risk_level=outcome.level.value,
                colour=outcome.colour.value, previous_risk_level=previous, reasons=outcome.reasons,
            )

        return self._change_file(child_id, change)

    def record_court_order(
        self, child_id: UUID, case_id: UUID, order_kind: CourtOrderKind, court_case_number: str, issued_on: date,
        expires_on: date | None, recorded_by: Agency,
    ) -> UUID:
        check_may_record_court_orders(recorded_by.value)  # before saying whether the case exists
        case = self._case_of_child(case_id, child_id)
        order_id = uuid.uuid4()

        def change(file: GuardianshipFile) -> None:
            file.record_court_order(
                order_id=order_id, case_id=case_id, order_kind=order_kind.value, court_case_number=court_case_number,
                issued_on=issued_on, expires_on=expires_on, recorded_by=recorded_by.value, township=case.township,
                village=case.village, correlation_id=case.correlation_id,
            )

        self._change_file(child_id, change)
        return order_id

    def _case_of_child(self, case_id: UUID, child_id: UUID) -> KnownCase:
        case = self._known_cases.get(case_id)
        if case is None:
            raise NotFound(
                f"No case with id {case_id} is known to guardianship (yet).",
                errors=[FieldError(field="case_id", reason="unknown case")],
            )
        if case.child_id != child_id:
            raise Unprocessable(
                "The child is not the child of this case.",
                errors=[FieldError(field="child_id", reason="not the child of this case")],
            )
        return case

    def _change_file(self, child_id: UUID, change: Callable[[GuardianshipFile], T]) -> T:
        """Apply a change to the child's file (opening it the first time) and save; retry on a concurrent save."""
        for _ in range(MAX_ATTEMPTS):
            try:
                file: GuardianshipFile = self.repository.get(child_id)
            except AggregateNotFoundError:
                file = GuardianshipFile(child_id=child_id)
            result = change(file)
            try:
                self._committer.save(file)
            except IntegrityError:
                continue  # another request changed the same file meanwhile: load it again
            return result
        raise RuntimeError("could not save the guardianship file after repeated conflicts")

    def get_file(self, child_id: UUID) -> dict[str, Any]:
        """The latest risk and colour, with every assessment and court order, oldest first."""
        file: Any = None
        with contextlib.suppress(AggregateNotFoundError):
            file = self.repository.get(child_id)
        if not isinstance(file, GuardianshipFile):
            raise NotFound(
                f"No guardianship file for child {child_id}.",
                errors=[FieldError(field="child_id", reason="no assessment or court order recorded")],
            )
        assessments, orders = [], []
        for e in self.events.get(child_id):
            if isinstance(e, GuardianshipFile.RiskAssessed):  # type: ignore[attr-defined]
                assessments.append({
                    "assessment_id": e.assessment_id, "case_id": e.case_id, "assessed_at": e.timestamp,
                    "assessor_agency": e.assessor_agency, "factors": e.factors, "risk_level": e.risk_level,
                    "colour": e.colour, "previous_risk_level": e.previous_risk_level, "reasons": e.reasons,
                })
            elif isinstance(e, GuardianshipFile.CourtOrderRecorded):  # type: ignore[attr-defined]
                orders.append({
                    "order_id": e.order_id, "case_id": e.case_id, "recorded_at": e.timestamp,
                    "order_kind": e.order_kind, "court_case_number": e.court_case_number,
                    "issued_on": e.issued_on, "expires_on": e.expires_on,
                })
        return {
            "child_id": child_id, "risk_level": file.risk_level, "colour": file.colour,
            "assessments": assessments, "court_orders": orders,
        }

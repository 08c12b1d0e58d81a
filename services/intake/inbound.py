"""Facts agency systems post about a child (inbound): a school's dropout or return, HRSS's job assistance given, a
hospital's emergency treatment.

Each is an ``InboundFact`` aggregate in intake's store (the owner of the child's file and cases), so that it is an
event in the hash-chained log like a report, and its integration event is the same contract event an internal
producer would publish (``SchoolDropoutReported`` is routed by the same rule whoever reports it). The fact names
the child by id; its place and categories come from the child's file, so the event routes and reaches the area's
agencies without the sender knowing them. Codes and dates only: a fact carries no name, no narrative.

Court orders are not here: the court records them with guardianship (``POST /v1/cases/{case_id}/court-orders``),
which accepts the same ``Idempotency-Key``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Recording

from contracts.agencies import Agency
from contracts.cases import care_case_id
from contracts.envelope import CloudEvent
from contracts.events import (
    EmergencyTreatmentReported,
    EmergencyTreatmentReportedData,
    JobAssistanceGiven,
    JobAssistanceGivenData,
    SchoolDropoutReported,
    SchoolDropoutReportedData,
    SchoolReturnReported,
    SchoolReturnReportedData,
)
from huhang.eventstore import integration_event_id
from huhang.problems import FieldError, Unprocessable

SOURCE = "/huhang/intake"
MAX_MERGE_HOPS = 16


class FactKind(StrEnum):
    school_dropout = "school_dropout"
    school_return = "school_return"
    job_assistance_given = "job_assistance_given"
    emergency_treatment = "emergency_treatment"


# Who reports each kind of fact from its own system.
REPORTING_AGENCY: dict[FactKind, Agency] = {
    FactKind.school_dropout: Agency.education,
    FactKind.school_return: Agency.education,
    FactKind.job_assistance_given: Agency.hrss,
    FactKind.emergency_treatment: Agency.health,
}


class InboundFact(Aggregate):
    """One fact from one agency system about one child. ``details`` holds the kind's codes and dates (ISO text)."""

    @staticmethod
    def create_id(fact_id: UUID, **_: Any) -> UUID:
        return fact_id

    @event("Reported")
    def __init__(
        self, fact_id: UUID, kind: str, child_id: UUID, case_id: UUID, agency: str, township: str, village: str,
        child_categories: list[str], details: dict[str, Any],
    ) -> None:
        self.kind = kind
        self.child_id = child_id
        self.case_id = case_id
        self.agency = agency
        self.township = township
        self.village = village
        self.child_categories = child_categories
        self.details = details


def to_integration_events(domain_event: Any) -> Sequence[CloudEvent]:
    if isinstance(domain_event, InboundFact.Reported):  # type: ignore[attr-defined]
        return [_contract_event(domain_event)]
    return []


def _contract_event(e: Any) -> CloudEvent:
    event_id = integration_event_id(e)
    d = e.details
    place = {"case_id": e.case_id, "child_id": e.child_id, "township": e.township, "village": e.village}
    envelope = {
        "id": event_id, "source": SOURCE, "subject": str(e.case_id), "time": e.timestamp,
        "correlationid": event_id, "actoragency": e.agency,
    }
    kind = FactKind(e.kind)
    if kind is FactKind.school_dropout:
        return SchoolDropoutReported(**envelope, dataschema=SchoolDropoutReported.schema_uri(),
                                     data=SchoolDropoutReportedData(
                                         **place, school_code=d["school_code"],
                                         last_attended_on=date.fromisoformat(d["last_attended_on"]),
                                         child_categories=tuple(e.child_categories)))
    if kind is FactKind.school_return:
        return SchoolReturnReported(**envelope, dataschema=SchoolReturnReported.schema_uri(),
                                    data=SchoolReturnReportedData(
                                        **place, school_code=d["school_code"],
                                        returned_on=date.fromisoformat(d["returned_on"]),
                                        child_categories=tuple(e.child_categories)))
    if kind is FactKind.job_assistance_given:
        return JobAssistanceGiven(**envelope, dataschema=JobAssistanceGiven.schema_uri(),
                                  data=JobAssistanceGivenData(
                                      **place, parent_relation=d["parent_relation"],
                                      assistance_kind=d["assistance_kind"],
                                      given_on=date.fromisoformat(d["given_on"])))
    return EmergencyTreatmentReported(**envelope, dataschema=EmergencyTreatmentReported.schema_uri(),
                                      data=EmergencyTreatmentReportedData(
                                          **place, hospital_code=d["hospital_code"],
                                          treated_on=date.fromisoformat(d["treated_on"]), cause=d["cause"],
                                          admitted=d["admitted"], child_categories=tuple(e.child_categories)))


class ChildFiles(Protocol):
    """What inbound facts need of intake's application (eventsourcing's ``Application`` with the child files)."""

    def get_child(self, child_id: UUID) -> Any: ...

    def save(self, *objs: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Recorded:
    fact_id: UUID
    kind: FactKind
    child_id: UUID
    case_id: UUID
    events: Sequence[CloudEvent]


class InboundFacts:
    """Records facts against the child's file (following merges to the surviving file)."""

    def __init__(self, files: ChildFiles) -> None:
        self.files = files

    def record(self, kind: FactKind, child_id: UUID, case_id: UUID | None, agency: Agency,
               details: dict[str, Any]) -> Recorded:
        child = self.files.get_child(child_id)  # NotFound (404) for an unknown child
        for _ in range(MAX_MERGE_HOPS):
            if child.merged_into is None:
                break
            child = self.files.get_child(child.merged_into)
        if case_id is not None and case_id not in child.case_ids and case_id != care_case_id(child.id):
            raise Unprocessable(
                f"Case {case_id} is not a case of child {child_id}.",
                errors=[FieldError(field="case_id", reason="not a case of this child")],
            )
        fact = InboundFact(
            fact_id=uuid4(), kind=kind.value, child_id=child.id, case_id=case_id or care_case_id(child.id),
            agency=agency.value, township=child.township, village=child.village,
            child_categories=list(child.all_categories), details=details,
        )
        recordings: Sequence[Recording] = self.files.save(fact) or ()
        events = [ce for r in recordings for ce in to_integration_events(r.domain_event)]
        return Recorded(fact.id, kind, fact.child_id, fact.case_id, events)

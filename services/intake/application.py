"""Intake: receives mandatory reports, finds or registers the child, opens or updates the case."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from huhang.eventstore import ServiceApplication
from huhang.groupcommit import GroupCommitter
from huhang.problems import FieldError, NotFound, Unprocessable
from services.intake.domain import Case, Child, Report

REPORT_ID_NAMESPACE = uuid.UUID("2c7d9b3a-8e41-4f6a-b0d2-5e9c1a7f3b86")
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class ChildFacts:
    name: str
    sex: str
    birth_date: date
    id_card_number: str | None
    township: str
    village: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class FileReport:
    """The command: one mandatory report as received."""

    reporter_agency: str
    reporter_role: str
    reporter_reference: str | None
    child: ChildFacts
    concern_category: str
    urgency: str
    observations: str
    observed_on: date
    fingerprint: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class FiledReport:
    report_id: UUID
    case_id: UUID
    child_id: UUID
    replayed: bool


class IntakeApplication(ServiceApplication):
    name = "intake"

    def __init__(self, env: dict[str, str] | None = None, *, identity_key: bytes) -> None:
        super().__init__(env)
        self._identity_key = identity_key
        self._committer = GroupCommitter(self)

    def file_report(self, cmd: FileReport) -> FiledReport:
        report_id = self._report_id(cmd)
        for _ in range(MAX_ATTEMPTS):
            replay = self._replay(report_id, cmd)
            if replay is not None:
                return replay
            child, case, report = self._prepare(report_id, cmd)
            try:
                self._committer.save(child, case, report)
            except IntegrityError:
                continue  # a concurrent request for the same child or key won: look again
            return FiledReport(report_id, case.id, child.id, replayed=False)
        raise RuntimeError("could not file the report after repeated conflicts")

    def _report_id(self, cmd: FileReport) -> UUID:
        if cmd.idempotency_key is None:
            return uuid.uuid4()
        return uuid.uuid5(REPORT_ID_NAMESPACE, f"{cmd.reporter_agency}\x1f{cmd.idempotency_key}")

    def _replay(self, report_id: UUID, cmd: FileReport) -> FiledReport | None:
        if cmd.idempotency_key is None:
            return None
        try:
            report: Report = self.repository.get(report_id)
        except AggregateNotFoundError:
            return None
        if report.request_fingerprint != cmd.fingerprint:
            raise Unprocessable(
                "This Idempotency-Key was already used with a different request body.",
                errors=[FieldError(field="Idempotency-Key", reason="reused with a different body")],
            )
        return FiledReport(report.id, report.case_id, report.child_id, replayed=True)

    def _prepare(self, report_id: UUID, cmd: FileReport) -> tuple[Child, Case, Report]:
        facts = cmd.child
        child_id = self.child_id_for(facts)
        try:
            child: Child = self.repository.get(child_id)
            new_categories = sorted(set(facts.categories) - set(child.categories))
            if new_categories:
                child.categories_reported(new_categories, reported_by=cmd.reporter_agency)
        except AggregateNotFoundError:
            child = Child(
                child_id=child_id, name=facts.name, sex=facts.sex, birth_date=facts.birth_date,
                id_card_number=facts.id_card_number, township=facts.township, village=facts.village,
                categories=sorted(facts.categories), registered_by=cmd.reporter_agency,
            )
        if child.open_case_id is not None:
            case: Case = self.repository.get(child.open_case_id)
        else:
            case = Case(
                case_id=uuid.uuid4(), child_id=child.id, township=child.township, village=child.village,
                opened_by=cmd.reporter_agency,
            )
            child.case_opened(case.id)
        case.file_report(
            report_id=report_id, child_id=child.id, township=case.township, village=case.village,
            reporter_agency=cmd.reporter_agency, reporter_role=cmd.reporter_role,
            concern_category=cmd.concern_category, urgency=cmd.urgency,
            child_categories=list(child.categories), observed_on=cmd.observed_on,
        )
        report = Report(
            report_id=report_id, case_id=case.id, child_id=child.id, reporter_agency=cmd.reporter_agency,
            reporter_role=cmd.reporter_role, reporter_reference=cmd.reporter_reference,
            concern_category=cmd.concern_category, urgency=cmd.urgency, observations=cmd.observations,
            observed_on=cmd.observed_on, request_fingerprint=cmd.fingerprint,
        )
        return child, case, report

    def child_id_for(self, facts: ChildFacts) -> UUID:
        """One child, one file: the same identity always gives the same child id.

        Keyed (HMAC) so that the id reveals nothing about the identity it was made from.
        """
        if facts.id_card_number:
            identity = f"id\x1f{facts.id_card_number.strip().upper()}"
        else:
            identity = "\x1f".join(
                ("person", facts.name.strip(), facts.birth_date.isoformat(), facts.sex,
                 facts.township.strip(), facts.village.strip())
            )
        digest = hmac.new(self._identity_key, identity.encode(), hashlib.sha256).digest()
        return UUID(bytes=digest[:16], version=4)

    def get_case(self, case_id: UUID) -> dict[str, Any]:
        case: Case = self._get(case_id, Case, "case")
        return {
            "case_id": case.id, "child_id": case.child_id, "township": case.township,
            "village": case.village, "opened_at": case.created_on, "opened_by": case.opened_by,
            "reports": [self._report_summary(rid) for rid in case.report_ids],
        }

    def get_child(self, child_id: UUID) -> Child:
        return self._get(child_id, Child, "child")

    def _report_summary(self, report_id: UUID) -> dict[str, Any]:
        report: Report = self.repository.get(report_id)
        return {
            "report_id": report.id, "filed_at": report.created_on, "reporter_agency": report.reporter_agency,
            "reporter_role": report.reporter_role, "concern_category": report.concern_category,
            "urgency": report.urgency, "observed_on": report.observed_on,
        }

    def _get(self, aggregate_id: UUID, kind: type, label: str) -> Any:
        try:
            aggregate: Any = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(f"No {label} with id {aggregate_id}.") from None
        if not isinstance(aggregate, kind):
            raise NotFound(f"No {label} with id {aggregate_id}.")
        return aggregate

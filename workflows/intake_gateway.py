"""How guardianship files a mandatory report about a registered child (a visit finding): in-process or over HTTP.

Embedded mode calls the intake application in this process; distributed mode calls intake's
``POST /v1/children/{child_id}/reports`` at ``settings.intake_url``. Either way the Idempotency-Key (the visit id)
makes a retry file nothing twice, and intake's problems come back as problems naming the field: a child intake
does not know is a 404, a report intake refuses a 422, and intake out of reach a 503 (nothing recorded).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date
from typing import Protocol
from uuid import UUID

import httpx

from huhang.problems import Conflict, DomainError, FieldError, NotFound, Unprocessable
from services.intake.application import IntakeApplication, ReportAboutChild


@dataclass(frozen=True)
class ChildReport:
    """A report about a child intake already knows, by id."""

    child_id: UUID
    reporter_agency: str
    reporter_role: str
    reporter_reference: str | None
    concern_category: str
    urgency: str
    observations: str
    observed_on: date
    idempotency_key: str


@dataclass(frozen=True)
class FiledChildReport:
    report_id: UUID
    case_id: UUID


class IntakeUnavailable(DomainError):
    status = 503
    type = "urn:huhang:problem:intake-unavailable"


class IntakeGateway(Protocol):
    def file_report(self, report: ChildReport) -> FiledChildReport: ...


class LocalIntakeGateway:
    """Embedded mode: the intake application lives in this process."""

    def __init__(self, app: IntakeApplication) -> None:
        self.app = app

    def file_report(self, report: ChildReport) -> FiledChildReport:
        details = ReportAboutChild(
            reporter_agency=report.reporter_agency, reporter_role=report.reporter_role,
            reporter_reference=report.reporter_reference, concern_category=report.concern_category,
            urgency=report.urgency, observations=report.observations, observed_on=report.observed_on,
            fingerprint=_fingerprint(report), idempotency_key=report.idempotency_key,
        )
        filed = self.app.file_report_about_child(report.child_id, details)
        return FiledChildReport(report_id=filed.report_id, case_id=filed.case_id)


def _fingerprint(report: ChildReport) -> str:
    """The same report gives the same fingerprint: a retry replays, another report under the same key is refused."""
    fields = {k: str(v) for k, v in sorted(asdict(report).items())}
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


class HttpIntakeGateway:
    """Distributed mode: ``POST /v1/children/{child_id}/reports`` on the intake service."""

    def __init__(self, base_url: str, timeout_s: float = 10.0, auth: httpx.Auth | None = None) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=timeout_s, auth=auth)  # auth: the system token

    def file_report(self, report: ChildReport) -> FiledChildReport:
        body = {
            "reporter": {"agency": report.reporter_agency, "role": report.reporter_role,
                         "reference": report.reporter_reference},
            "concern_category": report.concern_category, "urgency": report.urgency,
            "observations": report.observations, "observed_on": report.observed_on.isoformat(),
        }
        try:
            response = self.client.post(
                f"/v1/children/{report.child_id}/reports", json=body,
                headers={"Idempotency-Key": report.idempotency_key},
            )
        except httpx.HTTPError as exc:
            raise IntakeUnavailable(
                f"Intake could not be reached ({type(exc).__name__}); nothing was recorded, try again.",
                errors=[FieldError(field="report", reason="intake unavailable")],
            ) from None
        if response.status_code in (200, 201):
            answer = response.json()
            return FiledChildReport(report_id=UUID(answer["report_id"]), case_id=UUID(answer["case_id"]))
        raise _problem_of(response)


def _problem_of(response: httpx.Response) -> DomainError:
    """Intake's answer as a problem of this request: its field errors under ``report``."""
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    detail = str(problem.get("detail") or f"Intake answered {response.status_code}.")
    errors = [
        FieldError(field=f"report.{e.get('field', 'body')}", reason=str(e.get("reason", "invalid")))
        for e in problem.get("errors") or []
        if isinstance(e, dict)
    ]
    if response.status_code == 404:
        return NotFound(detail, errors=[FieldError(field="child_id", reason="unknown to intake")])
    if response.status_code == 409:
        return Conflict(detail, errors=errors or [FieldError(field="child_id", reason="refused by intake")])
    if response.status_code in (400, 422):
        return Unprocessable(detail, errors=errors or [FieldError(field="report", reason="refused by intake")])
    return IntakeUnavailable(
        f"Intake answered {response.status_code}; nothing was recorded, try again.",
        errors=[FieldError(field="report", reason=f"intake answered {response.status_code}")],
    )

"""Intake's aggregates: the child (one child, one file), the case and the mandatory report (强制报告).

Values are stored as plain JSON types (codes as strings) so that old events stay readable when code changes.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event


class Child(Aggregate):
    """A child's file. Registered once; every case of the child is linked to it."""

    @staticmethod
    def create_id(child_id: UUID, **_: Any) -> UUID:
        return child_id

    @event("Registered")
    def __init__(
        self,
        child_id: UUID,
        name: str,
        sex: str,
        birth_date: date,
        id_card_number: str | None,
        township: str,
        village: str,
        categories: list[str],
        registered_by: str,
    ) -> None:
        self.name = name
        self.sex = sex
        self.birth_date = birth_date
        self.id_card_number = id_card_number
        self.township = township
        self.village = village
        self.categories = list(categories)
        self.registered_by = registered_by
        self.open_case_id: UUID | None = None
        self.case_ids: list[UUID] = []

    @event("CaseOpened")
    def case_opened(self, case_id: UUID) -> None:
        self.open_case_id = case_id
        self.case_ids.append(case_id)

    @event("CategoriesReported")
    def categories_reported(self, categories: list[str], reported_by: str) -> None:
        self.categories = sorted(set(self.categories) | set(categories))


class Case(Aggregate):
    """A case: the reports about one child and what the agencies do about them."""

    @staticmethod
    def create_id(case_id: UUID, **_: Any) -> UUID:
        return case_id

    @event("Opened")
    def __init__(self, case_id: UUID, child_id: UUID, township: str, village: str, opened_by: str) -> None:
        self.child_id = child_id
        self.township = township
        self.village = village
        self.opened_by = opened_by
        self.report_ids: list[UUID] = []
        self.correlation_id: UUID | None = None

    @event("ReportFiled")
    def file_report(
        self,
        report_id: UUID,
        child_id: UUID,
        township: str,
        village: str,
        reporter_agency: str,
        reporter_role: str,
        concern_category: str,
        urgency: str,
        child_categories: list[str],
        observed_on: date,
    ) -> None:
        self.report_ids.append(report_id)


class Report(Aggregate):
    """A mandatory report as it was received: who reported, what they observed. Never changed."""

    @staticmethod
    def create_id(report_id: UUID, **_: Any) -> UUID:
        return report_id

    @event("Received")
    def __init__(
        self,
        report_id: UUID,
        case_id: UUID,
        child_id: UUID,
        reporter_agency: str,
        reporter_role: str,
        reporter_reference: str | None,
        concern_category: str,
        urgency: str,
        observations: str,
        observed_on: date,
        request_fingerprint: str,
    ) -> None:
        self.case_id = case_id
        self.child_id = child_id
        self.reporter_agency = reporter_agency
        self.reporter_role = reporter_role
        self.reporter_reference = reporter_reference
        self.concern_category = concern_category
        self.urgency = urgency
        self.observations = observations
        self.observed_on = observed_on
        self.request_fingerprint = request_fingerprint

"""Intake's aggregates: the child (one child, one file), the case and the mandatory report (强制报告).

Values are stored as plain JSON types (codes as strings) so that old events stay readable when code changes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event


class Child(Aggregate):
    """A child's file (一人一档). Registered once; every case of the child is linked to it.

    ``categories`` are the file's own, derived from its facts (``CategoriesDerived``); what reporters type in
    (``Registered.categories`` and ``CategoriesReported``, kept readable from before) is their observation,
    ``reported_categories``. A merged file keeps its history and points to the survivor (``merged_into``).
    """

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
        self.reported_categories = sorted(set(categories))
        self.registered_by = registered_by
        self.open_case_id: UUID | None = None
        self.case_ids: list[UUID] = []
        self.categories: list[str] = []
        self.category_reasons: list[str] = []
        self.categories_as_of: date | None = None
        self.care_summary: dict[str, Any] | None = None  # what ChildFileUpdated last said
        self.rederive_on: date | None = None
        self.facts: dict[str, Any] = {}
        self._recorded: list[tuple[str, dict[str, Any]]] = []  # every (source, facts) recorded
        self._applied: set[str] | None = None
        self.duplicates: dict[UUID, dict[str, Any]] = {}  # other child -> score, reasons, status
        self.merged_into: UUID | None = None
        self.merged_by: str | None = None
        self.absorbed: list[UUID] = []

    @event("CaseOpened")
    def case_opened(self, case_id: UUID) -> None:
        self.open_case_id = case_id
        self.case_ids.append(case_id)

    @event("CategoriesReported")
    def categories_reported(self, categories: list[str], reported_by: str) -> None:
        """A reporter's observation of the child's categories (not the file's own categories)."""
        self.reported_categories = sorted(set(self.reported_categories) | set(categories))

    @event("FactsRecorded")
    def record_facts(self, facts: dict[str, Any], source: str, recorded_by: str) -> None:
        self.facts = facts
        self._recorded.append((source, facts))
        self._applied = None

    @event("CategoriesDerived")
    def categories_derived(
        self,
        categories: list[str],
        added: list[str],
        removed: list[str],
        reasons: list[str],
        as_of: date,
        township: str,
        village: str,
        parents_away: bool,
        parents_away_since: date | None,
        frequent_visit_reasons: list[str],
        has_entrusted_caregiver: bool,
        rederive_on: date | None,
        derived_by: str,
    ) -> None:
        self.categories = list(categories)
        self.category_reasons = list(reasons)
        self.categories_as_of = as_of
        self.rederive_on = rederive_on
        self.care_summary = {
            "categories": list(categories), "reasons": list(reasons), "parents_away": parents_away,
            "parents_away_since": parents_away_since, "frequent_visit_reasons": list(frequent_visit_reasons),
            "has_entrusted_caregiver": has_entrusted_caregiver,
        }

    @event("DuplicateFlagged")
    def duplicate_flagged(self, other_child_id: UUID, score: float, exact: bool, reasons: list[str]) -> None:
        self.duplicates[other_child_id] = {
            "score": score, "exact": exact, "reasons": list(reasons), "status": "pending", "by": None,
        }

    @event("DuplicateDismissed")
    def duplicate_dismissed(self, other_child_id: UUID, by: str, note: str | None) -> None:
        entry = self.duplicates.setdefault(other_child_id, {"score": None, "exact": False, "reasons": []})
        entry.update(status="dismissed", by=by)

    @event("MergedInto")
    def merged(self, survivor_id: UUID, by: str, note: str | None) -> None:
        self.merged_into = survivor_id
        self.merged_by = by
        if survivor_id in self.duplicates:
            self.duplicates[survivor_id].update(status="confirmed", by=by)

    @event("Absorbed")
    def absorb(
        self,
        merged_child_id: UUID,
        by: str,
        note: str | None,
        case_ids: list[UUID],
        open_case_id: UUID | None,
        reported_categories: list[str],
        township: str,
        village: str,
    ) -> None:
        """The survivor takes over the merged file's cases and reported categories."""
        self.absorbed.append(merged_child_id)
        self.case_ids.extend(c for c in case_ids if c not in self.case_ids)
        if self.open_case_id is None:
            self.open_case_id = open_case_id
        self.reported_categories = sorted(set(self.reported_categories) | set(reported_categories))
        if merged_child_id in self.duplicates:
            self.duplicates[merged_child_id].update(status="confirmed", by=by)

    @property
    def applied_facts(self) -> set[str]:
        """Keys of every (source, facts) recorded: recording one again is a replay (computed when first asked)."""
        if self._applied is None:
            self._applied = {applied_key(source, facts) for source, facts in self._recorded}
        return self._applied

    @property
    def all_categories(self) -> list[str]:
        """The file's derived categories united with what reporters observed (routing needs both)."""
        return sorted(set(self.categories) | set(self.reported_categories))

    def pending_duplicates(self) -> dict[UUID, dict[str, Any]]:
        return {k: v for k, v in self.duplicates.items() if v.get("status") == "pending"}


def applied_key(source: str, facts: dict[str, Any]) -> str:
    """One (source, facts) pair: recording it again is a replay that changes nothing."""
    text = json.dumps({"source": source, "facts": facts}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


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


ERASURE_NAMESPACE = UUID("6f1d2c3b-8a4e-4f5d-9c6b-2e7a1b0c9d8e")


class Erasure(Aggregate):
    """The record that a child's personal data was erased. Its events name the child as ``erased_child_id``, not
    ``child_id``: they are about the erasure, not sealed under the key they record the destruction of."""

    @staticmethod
    def create_id(erased_child_id: UUID, **_: Any) -> UUID:
        return uuid5(ERASURE_NAMESPACE, str(erased_child_id))

    @event("Recorded")
    def __init__(self, erased_child_id: UUID, reason: str, by: str) -> None:
        self.erased_child_id = erased_child_id
        self.reason = reason
        self.by = by

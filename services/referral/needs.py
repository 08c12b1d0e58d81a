"""A need found on a case (a visit, an assessment, an agency) and its match to a service of the directory.

The need is about a child: its events are sealed under the child's key (huhang/personal.py), which is why the
birth date (for age on the day) and the delivery details (what an organisation needs to deliver: who to ask for,
where) may live here. Outside the sealed store only ids and codes travel (contract event NeedRecorded).

The two gates (issue 10, "privacy first"): an organisation outside government sees a de-identified need (age band,
township, category) until the lead agency has **approved** the match **and** the guardian's **consent** is
recorded; the moment both hold, a referral to the organisation is opened (the same lifecycle as agency referrals,
services/referral/domain.py) and only then are the delivery details shown to it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from contracts.agencies import LEAD_AGENCY
from contracts.vocabulary import ChildCategory, NeedCategory, Outcome
from huhang.problems import Conflict, FieldError, Unprocessable

NEED_NAMESPACE = uuid.UUID("0e6f1c2b-8a3d-4b5e-9c7f-2d1a0b9e8c6f")
CHARITY_REFERRAL_TYPE = "charity_match"
AGE_BANDS = ((0, 2, "0-2"), (3, 5, "3-5"), (6, 11, "6-11"), (12, 14, "12-14"), (15, 17, "15-17"))


class MatchStatus(StrEnum):
    proposed = "proposed"  # the lead agency chose a service; the organisation sees a de-identified need
    referred = "referred"  # approved and consented: a referral to the organisation is open
    completed = "completed"  # the organisation recorded the help given
    withdrawn = "withdrawn"  # the lead agency withdrew it, or the organisation declined or failed


class NeedStatus(StrEnum):
    open = "open"
    matched = "matched"
    met = "met"
    closed = "closed"  # no longer needed


class WithdrawalReason(StrEnum):
    """Why the lead agency withdrew a match (a code; the story stays in the case notes)."""

    no_longer_needed = "no_longer_needed"
    consent_refused = "consent_refused"
    service_unsuitable = "service_unsuitable"
    met_otherwise = "met_otherwise"
    other = "other"


class GateClosed(Conflict):
    type = "urn:huhang:problem:match-gate-closed"


def age_on(birth_date: date, day: date) -> int:
    """Full years on ``day`` (周岁). A child born on 29 February turns a year older on 1 March in common years."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def age_band(age: int) -> str:
    for low, high, band in AGE_BANDS:
        if low <= age <= high:
            return band
    return "18+"


@dataclass(frozen=True)
class MatchOutcome:
    outcome: Outcome
    delivered_on: date
    amount_yuan: Decimal | None
    service_given: str | None


class Need(Aggregate):
    """One need of one child on one case, and at most one live match at a time."""

    @staticmethod
    def create_id(need_id: UUID, **_: Any) -> UUID:
        return need_id

    @event("Recorded")
    def __init__(
        self, need_id: UUID, case_id: UUID, child_id: UUID, category: str, township: str, village: str,
        birth_date: date, child_categories: list[str], found_by: str, details: dict[str, str],
    ) -> None:
        self.case_id = case_id
        self.child_id = child_id
        self.category = category
        self.township = township
        self.village = village
        self.birth_date = birth_date
        self.child_categories = list(child_categories)
        self.found_by = found_by
        self.details = dict(details)
        self.status = NeedStatus.open.value
        self.match: dict[str, Any] | None = None
        self.matches: int = 0

    @property
    def category_code(self) -> NeedCategory:
        return NeedCategory(self.category)

    @property
    def categories(self) -> frozenset[ChildCategory]:
        return frozenset(ChildCategory(c) for c in self.child_categories)

    # --- the match -----------------------------------------------------------------------------------------

    def propose(self, service_id: UUID, organisation_id: UUID, actor_agency: str) -> UUID:
        if self.status != NeedStatus.open.value:
            raise Conflict(
                f"The need is '{self.status}': only an open need is matched.",
                errors=[FieldError(field="need_id", reason=f"status is '{self.status}'")],
            )
        match_id = uuid.uuid5(NEED_NAMESPACE, f"{self.id}/{self.matches + 1}")
        self._proposed(match_id=match_id, service_id=service_id, organisation_id=organisation_id,
                       actor_agency=actor_agency)
        return match_id

    @event("MatchProposed")
    def _proposed(self, match_id: UUID, service_id: UUID, organisation_id: UUID, actor_agency: str) -> None:
        self.matches += 1
        self.status = NeedStatus.matched.value
        self.match = {
            "match_id": match_id, "service_id": service_id, "organisation_id": organisation_id,
            "status": MatchStatus.proposed.value, "approved": False, "consent": False, "referral_id": None,
        }

    def _live(self, match_id: UUID) -> dict[str, Any]:
        if self.match is None or self.match["match_id"] != match_id:
            raise Conflict("No such live match on this need.", errors=[FieldError(field="match_id", reason="unknown")])
        return self.match

    def approve(self, match_id: UUID, actor_agency: str) -> bool:
        """The lead agency's approval; returns whether both gates now hold (the caller opens the referral)."""
        match = self._live(match_id)
        self._check_proposed(match)
        if actor_agency != LEAD_AGENCY.value:
            raise GateClosed("Only the lead agency approves a match.",
                             errors=[FieldError(field="agency", reason="must be civil_affairs")])
        if not match["approved"]:
            self._approved(match_id=match_id, actor_agency=actor_agency)
        return bool(match["approved"] and match["consent"])

    @event("MatchApproved")
    def _approved(self, match_id: UUID, actor_agency: str) -> None:
        assert self.match is not None
        self.match["approved"] = True

    def record_consent(self, match_id: UUID, actor_agency: str, consent_on: date, given_by: str) -> bool:
        """The guardian's consent (who gave it: a relationship code; the signed form stays with the recorder)."""
        match = self._live(match_id)
        self._check_proposed(match)
        if not match["consent"]:
            self._consented(match_id=match_id, actor_agency=actor_agency, consent_on=consent_on, given_by=given_by)
        return bool(match["approved"] and match["consent"])

    @event("ConsentRecorded")
    def _consented(self, match_id: UUID, actor_agency: str, consent_on: date, given_by: str) -> None:
        assert self.match is not None
        self.match["consent"] = True

    @staticmethod
    def _check_proposed(match: dict[str, Any]) -> None:
        if match["status"] != MatchStatus.proposed.value:
            raise Conflict(f"The match is '{match['status']}'.",
                           errors=[FieldError(field="status", reason=f"current status is '{match['status']}'")])

    def referred(self, match_id: UUID, referral_id: UUID) -> None:
        match = self._live(match_id)
        if not (match["approved"] and match["consent"]):
            raise GateClosed("A match becomes a referral only once approved and consented.",
                             errors=[FieldError(field="match_id", reason="approval or consent missing")])
        self._referred(match_id=match_id, referral_id=referral_id)

    @event("MatchReferred")
    def _referred(self, match_id: UUID, referral_id: UUID) -> None:
        assert self.match is not None
        self.match["status"] = MatchStatus.referred.value
        self.match["referral_id"] = referral_id

    def accept(self, match_id: UUID, actor: str) -> None:
        """The organisation took the referral on (its response time is measured to here)."""
        match = self._live(match_id)
        if match["status"] != MatchStatus.referred.value:
            raise Conflict("Only a referred match is accepted.",
                           errors=[FieldError(field="status", reason=f"current status is '{match['status']}'")])
        if not match.get("accepted"):
            self._accepted(match_id=match_id, actor=actor)

    @event("MatchAccepted")
    def _accepted(self, match_id: UUID, actor: str) -> None:
        assert self.match is not None
        self.match["accepted"] = True

    def withdraw(self, match_id: UUID, actor_agency: str, reason_code: str) -> None:
        match = self._live(match_id)
        if match["status"] in (MatchStatus.completed.value, MatchStatus.withdrawn.value):
            raise Conflict(f"The match is '{match['status']}'.",
                           errors=[FieldError(field="status", reason=f"current status is '{match['status']}'")])
        self._withdrawn(match_id=match_id, actor_agency=actor_agency, reason_code=reason_code)

    @event("MatchWithdrawn")
    def _withdrawn(self, match_id: UUID, actor_agency: str, reason_code: str) -> None:
        assert self.match is not None
        self.match["status"] = MatchStatus.withdrawn.value
        self.status = NeedStatus.open.value  # to be matched again

    def record_outcome(self, match_id: UUID, outcome: MatchOutcome, actor: str) -> None:
        match = self._live(match_id)
        if match["status"] != MatchStatus.referred.value:
            raise Conflict("Only a referred match records its outcome.",
                           errors=[FieldError(field="status", reason=f"current status is '{match['status']}'")])
        if outcome.amount_yuan is None and not outcome.service_given:
            raise Unprocessable("Say what was given: an amount or a service.",
                                errors=[FieldError(field="amount_yuan", reason="or service_given is required")])
        self._outcome(
            match_id=match_id, outcome=outcome.outcome.value, delivered_on=outcome.delivered_on,
            amount_yuan=str(outcome.amount_yuan) if outcome.amount_yuan is not None else None,
            service_given=outcome.service_given, actor=actor,
        )

    @event("OutcomeRecorded")
    def _outcome(self, match_id: UUID, outcome: str, delivered_on: date, amount_yuan: str | None,
                 service_given: str | None, actor: str) -> None:
        assert self.match is not None
        self.match["status"] = MatchStatus.completed.value
        self.match["outcome"] = {"outcome": outcome, "delivered_on": delivered_on, "amount_yuan": amount_yuan,
                                 "service_given": service_given}
        self.status = NeedStatus.met.value

    # --- what an organisation sees -------------------------------------------------------------------------

    def gates_open(self) -> bool:
        return bool(self.match and self.match["approved"] and self.match["consent"])

    def view_for_organisation(self, organisation_id: UUID, today: date) -> dict[str, Any]:
        """De-identified until both gates hold; then the delivery details too. Never the birth date or ids of the
        child or the case: the organisation needs neither to deliver."""
        match = self.match
        if match is None or match["organisation_id"] != organisation_id or match["status"] == "withdrawn":
            raise GateClosed("This need is not matched to the organisation.",
                             errors=[FieldError(field="match_id", reason="not matched to this organisation")])
        view: dict[str, Any] = {
            "match_id": match["match_id"], "service_id": match["service_id"], "category": self.category,
            "age_band": age_band(age_on(self.birth_date, today)), "township": self.township,
            "status": match["status"], "approved": match["approved"], "consent": match["consent"],
            "referral_id": match["referral_id"], "details": None,
        }
        if self.gates_open():
            view["details"] = dict(self.details)
            view["village"] = self.village
        return view


def need_id_for(case_id: UUID, category: NeedCategory, key: str) -> UUID:
    """Deterministic: the same finding recorded twice (a retried request) is one need."""
    return uuid.uuid5(NEED_NAMESPACE, f"{case_id}/{category.value}/{key}")

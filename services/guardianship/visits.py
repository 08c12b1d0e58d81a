"""The visit regime and the parent-contact rule, as pure functions of dates (DOMAIN.md, "Rules with numbers").

- The child director contacts each covered child at least monthly and visits the home at least every 3 months; a
  home visit is also a contact. Where the plan asks for more frequent visits (a parent's serious disability, the
  child's disability or psychological abnormality, or a medium or high guardianship assessment), home visits are
  due monthly by default (``VisitPolicy``, from the settings).
- Dues are counted in calendar months from the last contact (or home visit), or from the day guardianship first
  heard of the child when there was none yet: 15 March + 1 month = 15 April. A day that the target month lacks
  falls on its last day: 31 January + 1 month = 28 February (29 February in a leap year), 31 March + 1 month =
  30 April. A contact or visit on its due day is on time; the day after, it is overdue by one day.
- Parents working away must contact the child at least once a week: up to 7 days without contact is within the
  rule, the 8th day is a missed week, the 15th a second consecutive one, and so on.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from contracts.vocabulary import RiskLevel

PARENT_CONTACT_MAX_GAP_DAYS = 7  # "at least once a week"
ESCALATE_AFTER_MISSES = 2  # a second missed week in a row goes beyond the village (township, civil affairs)
FREQUENT_RISK_LEVELS = frozenset({RiskLevel.medium.value, RiskLevel.high.value})


@dataclass(frozen=True)
class VisitPolicy:
    contact_every_months: int = 1
    home_visit_every_months: int = 3
    frequent_home_visit_every_months: int = 1

    def __post_init__(self) -> None:
        for name in ("contact_every_months", "home_visit_every_months", "frequent_home_visit_every_months"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


@dataclass(frozen=True)
class NextDue:
    contact_due_on: date
    home_visit_due_on: date


def add_months(day: date, months: int) -> date:
    """The same day ``months`` calendar months later, or the last day of that month when it is shorter."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, _days_in_month(year, month)))


_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in_month(year: int, month: int) -> int:
    return 29 if month == 2 and calendar.isleap(year) else _DAYS_IN_MONTH[month - 1]


def next_due(
    last_contact_on: date | None,
    last_home_visit_on: date | None,
    registered_on: date,
    frequent: bool,
    policy: VisitPolicy,
) -> NextDue:
    """When the next contact and the next home visit are due. A home visit counts as a contact."""
    contacts = [d for d in (last_contact_on, last_home_visit_on) if d is not None]
    contact_from = max(contacts) if contacts else registered_on
    home_from = last_home_visit_on if last_home_visit_on is not None else registered_on
    home_every = policy.frequent_home_visit_every_months if frequent else policy.home_visit_every_months
    return NextDue(
        contact_due_on=add_months(contact_from, policy.contact_every_months),
        home_visit_due_on=add_months(home_from, home_every),
    )


def days_overdue(due_on: date, today: date) -> int:
    """0 on or before the due day (on time); 1 the day after, and so on."""
    return max(0, (today - due_on).days)


def frequent_reasons(child_reasons: Iterable[str], risk_level: str | None) -> tuple[str, ...]:
    """Why this child is on the more frequent regime (empty: the ordinary regime)."""
    reasons = set(child_reasons)
    if risk_level in FREQUENT_RISK_LEVELS:
        reasons.add(f"guardianship_risk_{risk_level}")
    return tuple(sorted(reasons))


@dataclass(frozen=True)
class ParentContactState:
    counted_from: date  # the last contact, or when the parents' absence began to be followed
    days_without_contact: int
    consecutive_misses: int  # whole weeks without contact beyond the allowed 7 days

    @property
    def missed(self) -> bool:
        return self.consecutive_misses > 0

    @property
    def escalated(self) -> bool:
        return self.consecutive_misses >= ESCALATE_AFTER_MISSES


def parent_contact_state(
    last_contact_on: date | None, parents_away_since: date | None, followed_since: date, today: date
) -> ParentContactState:
    """How long the parents away have gone without contacting the child.

    Counted from the latest of: the last contact, the day the parents left, and the day guardianship began to
    follow the child (no child is counted as missing contacts from before the platform knew of it). 7 days
    without contact is no miss; 8 days is one missed week; 15 days two in a row.
    """
    counted_from = max(d for d in (last_contact_on, parents_away_since, followed_since) if d is not None)
    days = max(0, (today - counted_from).days)
    misses = max(0, (days - 1) // PARENT_CONTACT_MAX_GAP_DAYS)
    return ParentContactState(counted_from=counted_from, days_without_contact=days, consecutive_misses=misses)

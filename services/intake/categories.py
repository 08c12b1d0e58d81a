"""Categories are derived from the file's facts, never typed in (the plan's definitions, DOMAIN.md).

``derive_categories(facts, as_of)`` is pure: the same facts on the same date always give the same categories and
the same reasons (codes ``<category>:<why>``). The rules, as decided here:

- **left_behind** (留守儿童): at least one parent is away for work, and every recorded parent is either away for
  work *outside the county* for **3 or more consecutive calendar months** as of the date, or unable to care
  (deceased, missing, incarcerated, or at home with a serious disability or illness: the State Council's "one
  parent away, the other without guardianship capacity"). A parent whose status is ``unknown``, or an away
  parent whose county or start of absence is not recorded, does not count: the rule holds *as recorded*.
  Three months are calendar months from ``away_since``, with the end-of-month rule: away since 31 January, the
  child qualifies on 30 April (29 February + 3 months = 29 May; 30 November 2023 + 3 months = 29 February 2024,
  in 2022 it is 28 February 2023). Exactly three months qualifies; a day less does not.
- **single_parent** (单亲): exactly one parent is living and known to the child: the other parent is recorded as
  deceased or missing, or only one parent is recorded at all (the other is unknown, or out of the child's life).
  An incarcerated parent is still the child's parent (his absence counts towards left_behind and guardianship,
  not here). No parent living and known is not single_parent (see guardianship_missing).
- **disabled**: the child has a disability (with or without a certificate).
- **difficulty_basic_living / _medical / _education / _housing**: a need of that kind is recorded, with its source
  (低保 dibao, 特困 tekun, ...).
- **guardianship_missing** (监护缺失): a recorded finding; or no parent able to care (every recorded parent
  deceased, missing, incarcerated or seriously disabled or ill, none away) and no other guardian present and no
  entrusted caregiver; or left_behind with no entrusted caregiver and no other guardian present.
- **guardianship_improper** (监护不当): a recorded finding.

The derivation also gives what guardianship's visit regime and entrusted-care checks need (``parents_away``,
``frequent_visit_reasons``, ``has_entrusted_caregiver``) and ``next_change_on``: the date on which the categories
would change by time alone (the day parents reach three months away), for the scheduled re-derivation.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

from contracts.vocabulary import ChildCategory
from services.intake.facts import ChildFileFacts, Guardian, GuardianStatus

LEFT_BEHIND_MONTHS = 3

_ORDER = {c.value: i for i, c in enumerate(ChildCategory)}
_GONE = frozenset({GuardianStatus.deceased, GuardianStatus.missing})
_UNABLE = frozenset({GuardianStatus.deceased, GuardianStatus.missing, GuardianStatus.incarcerated})


@dataclass(frozen=True)
class DerivedCategories:
    categories: tuple[str, ...]  # ChildCategory values, in the vocabulary's order
    reasons: tuple[str, ...]  # codes "<category>:<why>"
    parents_away: bool  # every parent able to care is away for work (any duration, any county)
    parents_away_since: date | None  # since when no parent is at home (the latest away_since), when known
    frequent_visit_reasons: tuple[str, ...]
    has_entrusted_caregiver: bool
    next_change_on: date | None  # categories change on this date by time alone, facts unchanged

    def summary(self) -> dict[str, object]:
        """What the ChildFileUpdated event carries, to tell whether anything it says has changed."""
        return {
            "categories": list(self.categories),
            "reasons": list(self.reasons),
            "parents_away": self.parents_away,
            "parents_away_since": self.parents_away_since,
            "frequent_visit_reasons": list(self.frequent_visit_reasons),
            "has_entrusted_caregiver": self.has_entrusted_caregiver,
        }


def add_months(start: date, months: int) -> date:
    """Calendar months later; a day that the month lacks becomes its last day (31 Jan + 1 month = 28/29 Feb)."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(start.day, last_day))


def left_behind_from(away_since: date) -> date:
    """The first day a child counts as left behind when the parents left on ``away_since``."""
    return add_months(away_since, LEFT_BEHIND_MONTHS)


def sort_categories(categories: set[str] | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(categories), key=lambda c: _ORDER.get(c, len(_ORDER))))


def _unable(parent: Guardian) -> bool:
    """No guardianship capacity: gone, in prison, or at home with a serious disability or illness."""
    if parent.status in _UNABLE:
        return True
    return parent.status == GuardianStatus.present and (parent.has_serious_disability or parent.serious_illness)


def _other_guardian_present(facts: ChildFileFacts) -> bool:
    return any(
        not g.is_parent and g.status == GuardianStatus.present and not g.has_serious_disability
        and not g.serious_illness
        for g in facts.guardians
    )


@dataclass(frozen=True)
class _Absence:
    parents_away: bool
    since: date | None
    qualifies_from: date | None  # when left_behind holds, if every away parent's absence counts
    reason: str


def _absence(facts: ChildFileFacts) -> _Absence:
    parents = facts.parents
    away = [p for p in parents if p.status == GuardianStatus.away_for_work]
    others = [p for p in parents if p.status != GuardianStatus.away_for_work]
    if not away or not all(_unable(p) for p in others):
        return _Absence(False, None, None, "")
    starts = [p.away_since for p in away if p.away_since is not None]
    since = max(starts) if len(starts) == len(away) else None
    counts = since is not None and all(p.works_outside_county is True for p in away)
    if len(away) == 2:
        reason = "both_parents_away"
    elif others:
        reason = "other_parent_unable"
    else:
        reason = "only_recorded_parent_away"
    return _Absence(True, since, left_behind_from(since) if counts and since else None, reason)


def _single_parent(facts: ChildFileFacts) -> str | None:
    parents = facts.parents
    if len(parents) == 1:
        return None if parents[0].status in _GONE else "single_parent:one_parent_recorded"
    if len(parents) == 2:
        gone = [p for p in parents if p.status in _GONE]
        if len(gone) == 1:
            return f"single_parent:{gone[0].relation.value}_{gone[0].status.value}"
    return None


def _frequent_visit_reasons(facts: ChildFileFacts) -> tuple[str, ...]:
    reasons = []
    if any(g.has_serious_disability and g.status != GuardianStatus.deceased for g in facts.guardians):
        reasons.append("guardian_serious_disability")
    if facts.disability.has_disability:
        reasons.append("child_disability")
    if facts.psychological_abnormality:
        reasons.append("child_psychological_abnormality")
    return tuple(reasons)


def derive_categories(facts: ChildFileFacts, as_of: date) -> DerivedCategories:
    """The file's categories on ``as_of`` and why (see the module's rules)."""
    held: dict[str, list[str]] = {}

    def hold(category: ChildCategory, why: str) -> None:
        held.setdefault(category.value, []).append(f"{category.value}:{why}")

    absence = _absence(facts)
    next_change_on = None
    left_behind = False
    if absence.qualifies_from is not None:
        if as_of >= absence.qualifies_from:
            left_behind = True
            hold(ChildCategory.left_behind, absence.reason)
        else:
            next_change_on = absence.qualifies_from

    single = _single_parent(facts)
    if single:
        held.setdefault(ChildCategory.single_parent.value, []).append(single)

    if facts.disability.has_disability:
        level = facts.disability.certificate_level
        hold(ChildCategory.disabled, f"certificate_level_{level}" if level else "disability_recorded")

    for need in facts.needs:
        hold(ChildCategory(f"difficulty_{need.kind.value}"), need.source.value)

    caregiver = facts.entrusted_caregiver is not None or _other_guardian_present(facts)
    if facts.guardianship is not None:
        hold(ChildCategory(f"guardianship_{facts.guardianship.kind.value}"), facts.guardianship.source.value)
    parents = facts.parents
    if parents and not absence.parents_away and all(_unable(p) for p in parents) and not caregiver:
        hold(ChildCategory.guardianship_missing, "no_parent_able_to_care")
    if left_behind and not caregiver:
        hold(ChildCategory.guardianship_missing, "left_behind_without_caregiver")

    categories = sort_categories(list(held))
    return DerivedCategories(
        categories=categories,
        reasons=tuple(reason for category in categories for reason in held[category]),
        parents_away=absence.parents_away,
        parents_away_since=absence.since,
        frequent_visit_reasons=_frequent_visit_reasons(facts),
        has_entrusted_caregiver=facts.entrusted_caregiver is not None,
        next_change_on=next_change_on,
    )

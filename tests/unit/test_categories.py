"""Categories derived from the file's facts: the left-behind rule at its date edges (calendar months, end of month,
leap years), single parent, disability, difficulty needs, missing and improper guardianship, and what the visit
regime needs. Pure functions: no store."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.intake.categories import add_months, derive_categories, left_behind_from
from services.intake.facts import ChildFileFacts

OUTSIDE = {"status": "away_for_work", "works_outside_county": True}


def facts(**fields: Any) -> ChildFileFacts:
    return ChildFileFacts.model_validate(fields)


def away(relation: str, since: date, **more: Any) -> dict[str, Any]:
    return {"relation": relation, **OUTSIDE, "away_since": since, **more}


def both_away(since: date, caregiver: bool = True, **more: Any) -> ChildFileFacts:
    extra = {"entrusted_caregiver": {"relation": "grandparent"}} if caregiver else {}
    return facts(guardians=[away("father", since), away("mother", since)], **extra, **more)


def categories(f: ChildFileFacts, as_of: date) -> tuple[str, ...]:
    return derive_categories(f, as_of).categories


# --- calendar months ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 3, 15), 3, date(2024, 6, 15)),
        (date(2025, 1, 31), 3, date(2025, 4, 30)),  # April has no 31st: its last day
        (date(2023, 11, 30), 3, date(2024, 2, 29)),  # into a leap February
        (date(2022, 11, 30), 3, date(2023, 2, 28)),  # into a common February
        (date(2024, 2, 29), 3, date(2024, 5, 29)),  # from a leap day
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2025, 10, 31), 3, date(2026, 1, 31)),  # over the year's end
        (date(2025, 12, 31), 2, date(2026, 2, 28)),
    ],
)
def test_months_are_calendar_months_with_the_end_of_month_rule(start, months, expected):
    assert add_months(start, months) == expected


# --- left behind: both parents away for work outside the county, 3 or more consecutive months -----------------------


def test_exactly_three_months_away_is_left_behind():
    assert "left_behind" in categories(both_away(date(2024, 3, 15)), date(2024, 6, 15))


def test_one_day_short_of_three_months_is_not_left_behind():
    assert "left_behind" not in categories(both_away(date(2024, 3, 15)), date(2024, 6, 14))


def test_two_months_and_thirty_days_is_not_left_behind():
    # 1 March + 2 months = 1 May; + 30 days = 31 May: one day short of 1 June.
    assert "left_behind" not in categories(both_away(date(2024, 3, 1)), date(2024, 5, 31))
    assert "left_behind" in categories(both_away(date(2024, 3, 1)), date(2024, 6, 1))


def test_away_since_the_31st_qualifies_on_the_last_day_of_the_third_month():
    f = both_away(date(2025, 1, 31))
    assert "left_behind" not in categories(f, date(2025, 4, 29))
    assert "left_behind" in categories(f, date(2025, 4, 30))


@pytest.mark.parametrize(("since", "first_day"), [(date(2023, 11, 30), date(2024, 2, 29)),
                                                   (date(2022, 11, 30), date(2023, 2, 28))])
def test_three_months_into_february_ends_on_its_last_day_in_leap_and_common_years(since, first_day):
    f = both_away(since)
    assert "left_behind" not in categories(f, date.fromordinal(first_day.toordinal() - 1))
    assert "left_behind" in categories(f, first_day)


def test_away_since_a_leap_day_qualifies_on_the_29th_three_months_later():
    f = both_away(date(2024, 2, 29))
    assert "left_behind" not in categories(f, date(2024, 5, 28))
    assert "left_behind" in categories(f, date(2024, 5, 29))


def test_the_later_parent_to_leave_decides_when_the_three_months_start():
    f = facts(guardians=[away("father", date(2023, 1, 10)), away("mother", date(2024, 4, 2))],
              entrusted_caregiver={"relation": "grandparent"})
    assert "left_behind" not in categories(f, date(2024, 7, 1))
    assert "left_behind" in categories(f, date(2024, 7, 2))
    assert derive_categories(f, date(2024, 7, 2)).parents_away_since == date(2024, 4, 2)


def test_a_parent_working_inside_the_county_does_not_make_the_child_left_behind():
    f = facts(guardians=[away("father", date(2023, 1, 1)),
                         away("mother", date(2023, 1, 1), works_outside_county=False)])
    derived = derive_categories(f, date(2024, 6, 1))
    assert "left_behind" not in derived.categories
    assert derived.parents_away  # but the parents are away: entrusted care still applies


def test_an_unknown_county_does_not_count_as_outside():
    f = facts(guardians=[away("father", date(2023, 1, 1)), away("mother", date(2023, 1, 1), works_outside_county=None)])
    assert "left_behind" not in categories(f, date(2024, 6, 1))


def test_only_one_parent_away_with_the_other_at_home_is_not_left_behind():
    f = facts(guardians=[away("father", date(2023, 1, 1)), {"relation": "mother", "status": "present"}])
    derived = derive_categories(f, date(2024, 6, 1))
    assert "left_behind" not in derived.categories
    assert not derived.parents_away


def test_the_only_recorded_parent_away_makes_the_child_left_behind():
    f = facts(guardians=[away("mother", date(2024, 1, 1))], entrusted_caregiver={"relation": "grandparent"})
    derived = derive_categories(f, date(2024, 4, 1))
    assert "left_behind" in derived.categories
    assert "left_behind:only_recorded_parent_away" in derived.reasons


def test_one_parent_away_and_the_other_deceased_is_left_behind_and_single_parent():
    f = facts(guardians=[away("father", date(2024, 1, 1)), {"relation": "mother", "status": "deceased"}],
              entrusted_caregiver={"relation": "grandparent"})
    derived = derive_categories(f, date(2024, 4, 1))
    assert {"left_behind", "single_parent"} <= set(derived.categories)
    assert "left_behind:other_parent_unable" in derived.reasons
    assert "single_parent:mother_deceased" in derived.reasons


def test_one_parent_away_and_the_other_at_home_with_a_serious_disability_is_left_behind():
    f = facts(guardians=[away("father", date(2024, 1, 1)),
                         {"relation": "mother", "status": "present", "serious_intellectual_disability": True}],
              entrusted_caregiver={"relation": "grandparent"})
    derived = derive_categories(f, date(2024, 4, 1))
    assert "left_behind" in derived.categories
    assert "guardian_serious_disability" in derived.frequent_visit_reasons


def test_a_parent_of_unknown_status_keeps_the_child_out_of_left_behind_as_recorded():
    f = facts(guardians=[away("father", date(2023, 1, 1)), {"relation": "mother", "status": "unknown"}])
    assert "left_behind" not in categories(f, date(2024, 6, 1))


def test_an_absence_without_a_start_date_does_not_count():
    f = facts(guardians=[{"relation": "father", **OUTSIDE}, away("mother", date(2023, 1, 1))])
    derived = derive_categories(f, date(2024, 6, 1))
    assert "left_behind" not in derived.categories
    assert derived.parents_away
    assert derived.parents_away_since is None


def test_no_parents_recorded_is_not_left_behind_nor_single_parent():
    assert categories(facts(), date(2024, 6, 1)) == ()


def test_the_date_the_categories_change_by_time_alone_is_the_day_three_months_are_reached():
    f = both_away(date(2024, 3, 15))
    assert derive_categories(f, date(2024, 5, 1)).next_change_on == date(2024, 6, 15)
    assert derive_categories(f, date(2024, 6, 15)).next_change_on is None
    assert left_behind_from(date(2024, 3, 15)) == date(2024, 6, 15)


def test_parents_inside_the_county_never_become_due_by_time():
    f = facts(guardians=[away("father", date(2024, 3, 1), works_outside_county=False),
                         away("mother", date(2024, 3, 1), works_outside_county=False)])
    assert derive_categories(f, date(2024, 4, 1)).next_change_on is None


# --- single parent ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["deceased", "missing"])
def test_a_parent_deceased_or_missing_makes_the_child_single_parent(status):
    f = facts(guardians=[{"relation": "father", "status": status}, {"relation": "mother", "status": "present"}])
    derived = derive_categories(f, date(2024, 6, 1))
    assert derived.categories == ("single_parent",)
    assert derived.reasons == (f"single_parent:father_{status}",)


def test_only_one_parent_recorded_is_single_parent():
    f = facts(guardians=[{"relation": "mother", "status": "present"}])
    assert derive_categories(f, date(2024, 6, 1)).reasons == ("single_parent:one_parent_recorded",)


def test_an_incarcerated_parent_is_still_a_parent():
    f = facts(guardians=[{"relation": "father", "status": "incarcerated"}, {"relation": "mother", "status": "present"}])
    assert "single_parent" not in categories(f, date(2024, 6, 1))


def test_both_parents_at_home_is_no_category():
    f = facts(guardians=[{"relation": "father", "status": "present"}, {"relation": "mother", "status": "present"}])
    assert categories(f, date(2024, 6, 1)) == ()


# --- disability, needs, guardianship -------------------------------------------------------------------------------


def test_a_disability_makes_the_child_disabled_with_the_certificate_level_as_reason():
    derived = derive_categories(facts(disability={"has_disability": True, "certificate_level": 2}), date(2024, 6, 1))
    assert derived.categories == ("disabled",)
    assert derived.reasons == ("disabled:certificate_level_2",)
    assert derived.frequent_visit_reasons == ("child_disability",)


def test_each_need_gives_its_difficulty_category_with_its_source():
    f = facts(needs=[{"kind": "housing", "source": "housing_assistance"}, {"kind": "basic_living", "source": "dibao"},
                     {"kind": "medical", "source": "medical_assistance"}, {"kind": "education", "source": "tekun"}])
    derived = derive_categories(f, date(2024, 6, 1))
    assert derived.categories == (
        "difficulty_basic_living", "difficulty_medical", "difficulty_education", "difficulty_housing",
    )
    assert "difficulty_basic_living:dibao" in derived.reasons
    assert "difficulty_housing:housing_assistance" in derived.reasons


@pytest.mark.parametrize("kind", ["missing", "improper"])
def test_a_guardianship_finding_gives_its_category_with_who_found_it(kind):
    derived = derive_categories(facts(guardianship={"kind": kind, "source": "police_finding"}), date(2024, 6, 1))
    assert derived.categories == (f"guardianship_{kind}",)
    assert derived.reasons == (f"guardianship_{kind}:police_finding",)


def test_left_behind_without_any_caregiver_is_missing_guardianship():
    derived = derive_categories(both_away(date(2024, 1, 1), caregiver=False), date(2024, 4, 1))
    assert {"left_behind", "guardianship_missing"} <= set(derived.categories)
    assert "guardianship_missing:left_behind_without_caregiver" in derived.reasons


def test_left_behind_with_a_grandparent_guardian_at_home_is_not_missing_guardianship():
    f = facts(guardians=[away("father", date(2024, 1, 1)), away("mother", date(2024, 1, 1)),
                         {"relation": "grandparent", "status": "present"}])
    derived = derive_categories(f, date(2024, 4, 1))
    assert "left_behind" in derived.categories
    assert "guardianship_missing" not in derived.categories


def test_left_behind_with_an_entrusted_caregiver_is_not_missing_guardianship():
    derived = derive_categories(both_away(date(2024, 1, 1)), date(2024, 4, 1))
    assert derived.categories == ("left_behind",)
    assert derived.has_entrusted_caregiver


def test_no_parent_able_to_care_and_nobody_else_is_missing_guardianship():
    f = facts(guardians=[{"relation": "father", "status": "deceased"},
                         {"relation": "mother", "status": "incarcerated"}])
    assert "guardianship_missing:no_parent_able_to_care" in derive_categories(f, date(2024, 6, 1)).reasons


def test_psychological_abnormality_asks_for_more_frequent_visits():
    derived = derive_categories(facts(psychological_abnormality=True), date(2024, 6, 1))
    assert derived.categories == ()
    assert derived.frequent_visit_reasons == ("child_psychological_abnormality",)


def test_the_derivation_is_pure():
    f = both_away(date(2024, 1, 1), needs=[{"kind": "medical", "source": "medical_assistance"}])
    assert derive_categories(f, date(2024, 6, 1)) == derive_categories(f, date(2024, 6, 1))

"""Relief matching's eligibility and rank (services/referral/matching.py): age on the day, area boundaries, capacity,
child categories, and the order of the eligible services."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from contracts.agencies import Agency
from contracts.vocabulary import ChildCategory, NeedCategory
from huhang.access.policy import RecordFacts, may_break_glass, may_read, may_read_agency_queue
from huhang.auth.principal import Principal, Role
from services.referral.matching import MatchIndex, NeedFacts, Usage, distance_km, eligible, rank
from services.referral.needs import age_band, age_on
from services.referral.resources import Cost, ServiceRow

TOWNSHIP, VILLAGE = "虹桥镇", "溪西村"
ORG = uuid.uuid4()


def service(**changes: object) -> ServiceRow:
    row = ServiceRow(
        service_id=uuid.uuid4(), organisation_id=ORG, category=NeedCategory.tuition_supplies, active=True,
        minimum_age=6, maximum_age=14, child_categories=frozenset(), townships=frozenset({TOWNSHIP}),
        villages=frozenset(), capacity=None, cost=Cost.free, location_township=TOWNSHIP,
    )
    return replace(row, **changes)  # type: ignore[arg-type]


def need(born: date = date(2015, 6, 1), **changes: object) -> NeedFacts:
    facts = NeedFacts(NeedCategory.tuition_supplies, born, frozenset({ChildCategory.left_behind}), TOWNSHIP, VILLAGE)
    return replace(facts, **changes)  # type: ignore[arg-type]


FREE = Usage()


# --- age on the day ----------------------------------------------------------------------------------------------


def test_a_child_is_eligible_from_the_day_of_the_minimum_age_birthday():
    row = service(minimum_age=6)
    born = date(2020, 3, 10)

    assert not eligible(row, need(born), date(2026, 3, 9), FREE)
    assert eligible(row, need(born), date(2026, 3, 10), FREE)


def test_a_child_stays_eligible_until_the_day_before_turning_one_more_than_the_maximum_age():
    row = service(maximum_age=14)
    born = date(2012, 3, 10)

    assert eligible(row, need(born), date(2027, 3, 9), FREE)
    assert not eligible(row, need(born), date(2027, 3, 10), FREE)


def test_a_child_born_on_29_february_turns_a_year_older_on_1_march_in_a_common_year():
    born = date(2016, 2, 29)

    assert age_on(born, date(2022, 2, 28)) == 5
    assert age_on(born, date(2022, 3, 1)) == 6
    assert age_on(born, date(2024, 2, 29)) == 8


@pytest.mark.parametrize(("age", "band"), [(0, "0-2"), (5, "3-5"), (6, "6-11"), (14, "12-14"), (17, "15-17")])
def test_an_organisation_sees_an_age_band_not_an_age(age, band):
    assert age_band(age) == band


# --- area --------------------------------------------------------------------------------------------------------


def test_a_township_served_whole_covers_each_of_its_villages():
    assert eligible(service(), need(village="溪东村"), date(2026, 11, 29), FREE)


def test_a_village_served_alone_covers_only_that_village():
    row = service(townships=frozenset(), villages=frozenset({(TOWNSHIP, VILLAGE)}))

    assert eligible(row, need(), date(2026, 11, 29), FREE)
    assert not eligible(row, need(village="溪东村"), date(2026, 11, 29), FREE)


def test_a_village_of_the_same_name_in_another_township_is_not_covered():
    row = service(townships=frozenset(), villages=frozenset({("柳市镇", VILLAGE)}))

    assert not eligible(row, need(), date(2026, 11, 29), FREE)


def test_a_service_without_an_area_serves_the_whole_county():
    row = service(townships=frozenset())

    assert eligible(row, need(township="大荆镇", village="某村"), date(2026, 11, 29), FREE)


def test_another_township_is_not_covered():
    assert not eligible(service(), need(township="柳市镇"), date(2026, 11, 29), FREE)


# --- capacity, categories, status --------------------------------------------------------------------------------


def test_a_full_service_is_not_eligible_and_one_free_place_is_enough():
    row = service(capacity=2)

    assert not eligible(row, need(), date(2026, 11, 29), Usage(in_use=2))
    assert eligible(row, need(), date(2026, 11, 29), Usage(in_use=1))
    assert eligible(service(capacity=None), need(), date(2026, 11, 29), Usage(in_use=500))


def test_a_service_for_some_child_categories_needs_one_of_them():
    row = service(child_categories=frozenset({ChildCategory.disabled, ChildCategory.difficulty_medical}))

    assert not eligible(row, need(), date(2026, 11, 29), FREE)
    assert eligible(row, need(child_categories=frozenset({ChildCategory.disabled})), date(2026, 11, 29), FREE)


def test_an_inactive_service_or_another_category_is_not_eligible():
    assert not eligible(service(active=False), need(), date(2026, 11, 29), FREE)
    assert not eligible(service(category=NeedCategory.tutoring), need(), date(2026, 11, 29), FREE)


# --- rank --------------------------------------------------------------------------------------------------------


def test_the_nearer_service_ranks_first():
    near, far = service(location_township="淡溪镇"), service(location_township="大荆镇", townships=frozenset())

    ranked = rank([far, near], need(), date(2026, 11, 29), {})

    assert [r.row for r in ranked] == [near, far]
    assert ranked[0].distance_km < ranked[1].distance_km


def test_more_remaining_capacity_and_a_faster_response_rank_first():
    roomy, busy = service(capacity=10), service(capacity=10)
    usage = {roomy.service_id: Usage(in_use=1), busy.service_id: Usage(in_use=8)}
    assert [r.row for r in rank([busy, roomy], need(), date(2026, 11, 29), usage)] == [roomy, busy]

    quick, slow = service(), service()
    usage = {quick.service_id: Usage(response_hours=4), slow.service_id: Usage(response_hours=120)}
    assert [r.row for r in rank([slow, quick], need(), date(2026, 11, 29), usage)] == [quick, slow]


def test_a_free_service_ranks_before_a_paid_one_all_else_equal():
    free, paid = service(cost=Cost.free), service(cost=Cost.paid)

    assert [r.row for r in rank([paid, free], need(), date(2026, 11, 29), {})] == [free, paid]


def test_ties_are_ordered_by_service_id_so_that_the_rank_is_stable():
    rows = [service() for _ in range(5)]

    ranked = rank(rows, need(), date(2026, 11, 29), {})

    assert [r.row.service_id for r in ranked] == sorted((r.service_id for r in rows), key=str)


def test_distance_is_zero_within_a_township_and_farthest_when_unknown():
    assert distance_km(TOWNSHIP, TOWNSHIP) == 0
    assert 0 < distance_km(TOWNSHIP, "大荆镇") < 60
    assert distance_km(TOWNSHIP, None) == distance_km(TOWNSHIP, "不存在镇") == 60


# --- the index ---------------------------------------------------------------------------------------------------


def test_the_index_compares_a_need_with_its_category_only_and_follows_updates():
    tuition, tutoring = service(), service(category=NeedCategory.tutoring)
    index = MatchIndex([tuition, tutoring])

    assert [r.row for r in index.match(need(), date(2026, 11, 29), {})] == [tuition]

    index.replace(replace(tuition, category=NeedCategory.tutoring))
    assert index.match(need(), date(2026, 11, 29), {}) == []

    index.remove_organisation(ORG)
    assert index.rows() == []


# --- the case policy gives organisations outside government nothing ---------------------------------------------


def test_a_charity_holding_a_referral_still_sees_no_case_and_may_not_break_the_glass():
    person = Principal("acct-charity", "person", Agency.charity, frozenset({Role.agency_officer}), TOWNSHIP, VILLAGE)
    facts = RecordFacts(township=TOWNSHIP, village=VILLAGE, holding_agencies=frozenset({"charity"}))

    assert not may_read(person, facts, datetime.now(UTC)).allowed
    assert not may_read_agency_queue(person, Agency.charity).allowed
    assert not may_break_glass(person)

"""The visit regime, parent contact and entrusted care: the pure rules at their date edges, the scheduled check
(what it raises, once), the events it publishes and where the routing rules send them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from contracts.agencies import Agency
from contracts.cases import care_case_id
from contracts.envelope import CloudEvent
from contracts.events import (
    ChildFileUpdated,
    ChildFileUpdatedData,
    ChildrenMerged,
    ChildrenMergedData,
    EntrustedCareFlagged,
    ParentContactMissed,
    ReportFiled,
    ReportFiledData,
    VisitOverdue,
    VisitRecorded,
)
from contracts.routing import load_rules
from huhang.settings import Settings
from huhang.streams import NotificationLogSource
from services.guardianship.care import AgreementTerms, agreement_problem
from services.guardianship.care_application import RecordAgreement, RecordParentContact, RecordVisit
from services.guardianship.children import CHINA_STANDARD_TIME
from services.guardianship.main import GuardianshipService, build
from services.guardianship.risk import GuardianshipRiskFactor as F
from services.guardianship.visits import (
    NextDue,
    VisitPolicy,
    add_months,
    days_overdue,
    frequent_reasons,
    next_due,
    parent_contact_state,
)

REGISTERED_ON = date(2026, 1, 31)
PLACE = {"township": "虹桥镇", "village": "溪西村"}
POLICY = VisitPolicy()
FREQUENT_REASONS = ("guardian_serious_disability", "child_disability", "child_psychological_abnormality")


# --- calendar months ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 3, 15), 1, date(2026, 4, 15)),
    (date(2026, 1, 31), 1, date(2026, 2, 28)),  # February lacks the 31st: its last day
    (date(2028, 1, 31), 1, date(2028, 2, 29)),  # a leap year's February
    (date(2026, 3, 31), 1, date(2026, 4, 30)),
    (date(2026, 11, 30), 3, date(2027, 2, 28)),
    (date(2027, 11, 30), 3, date(2028, 2, 29)),
    (date(2028, 2, 29), 12, date(2029, 2, 28)),
    (date(2026, 12, 15), 1, date(2027, 1, 15)),  # across the year
    (date(2026, 10, 31), 3, date(2027, 1, 31)),
])
def test_months_are_calendar_months_ending_on_the_last_day_of_a_shorter_month(day, months, expected):
    assert add_months(day, months) == expected


def test_a_policy_refuses_a_regime_of_less_than_a_month():
    with pytest.raises(ValueError, match="frequent_home_visit_every_months"):
        VisitPolicy(frequent_home_visit_every_months=0)


# --- next due -----------------------------------------------------------------------------------------------------


def test_a_child_never_visited_is_due_a_contact_a_month_and_a_home_visit_three_months_after_registration():
    assert next_due(None, None, date(2026, 3, 10), False, POLICY) == NextDue(date(2026, 4, 10), date(2026, 6, 10))


def test_the_next_contact_is_due_a_month_after_the_last_contact():
    due = next_due(date(2026, 5, 20), date(2026, 4, 2), REGISTERED_ON, False, POLICY)

    assert due == NextDue(contact_due_on=date(2026, 6, 20), home_visit_due_on=date(2026, 7, 2))


def test_a_home_visit_counts_as_a_contact():
    due = next_due(date(2026, 5, 1), date(2026, 5, 20), REGISTERED_ON, False, POLICY)

    assert due.contact_due_on == date(2026, 6, 20)


def test_a_contact_on_the_31st_of_january_is_due_again_on_the_last_day_of_february():
    assert next_due(date(2026, 1, 31), None, REGISTERED_ON, False, POLICY).contact_due_on == date(2026, 2, 28)
    assert next_due(date(2028, 1, 31), None, REGISTERED_ON, False, POLICY).contact_due_on == date(2028, 2, 29)


def test_the_frequent_regime_asks_for_a_home_visit_every_month():
    assert next_due(None, date(2026, 5, 20), REGISTERED_ON, True, POLICY).home_visit_due_on == date(2026, 6, 20)
    assert next_due(None, date(2026, 5, 20), REGISTERED_ON, False, POLICY).home_visit_due_on == date(2026, 8, 20)


def test_the_frequent_regime_is_configurable():
    policy = VisitPolicy(frequent_home_visit_every_months=2)

    assert next_due(None, date(2026, 5, 20), REGISTERED_ON, True, policy).home_visit_due_on == date(2026, 7, 20)


def test_a_visit_on_the_due_day_is_on_time_and_the_day_after_is_overdue_by_one_day():
    due_on = date(2026, 2, 28)

    assert days_overdue(due_on, due_on) == 0
    assert days_overdue(due_on, due_on + timedelta(days=1)) == 1
    assert days_overdue(due_on, due_on - timedelta(days=5)) == 0


@pytest.mark.parametrize("level", ["medium", "high"])
def test_a_medium_or_high_assessment_puts_the_child_on_the_frequent_regime(level):
    assert frequent_reasons((), level) == (f"guardianship_risk_{level}",)


@pytest.mark.parametrize("level", ["low", None])
def test_a_low_or_no_assessment_leaves_the_ordinary_regime(level):
    assert frequent_reasons((), level) == ()


@pytest.mark.parametrize("reason", FREQUENT_REASONS)
def test_each_frequent_visit_reason_of_the_file_alone_puts_the_child_on_the_frequent_regime(reason):
    assert frequent_reasons((reason,), "low") == (reason,)


# --- parent contact -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "misses"), [(0, 0), (1, 0), (7, 0), (8, 1), (14, 1), (15, 2), (21, 2), (22, 3)])
def test_more_than_seven_days_without_parent_contact_is_a_missed_week(days, misses):
    last = date(2026, 3, 1)

    state = parent_contact_state(last, None, REGISTERED_ON, last + timedelta(days=days))

    assert (state.days_without_contact, state.consecutive_misses) == (days, misses)
    assert state.missed is (misses > 0)
    assert state.escalated is (misses >= 2)


def test_parent_contact_is_counted_from_the_parents_leaving_when_that_came_after_the_last_contact():
    state = parent_contact_state(date(2025, 6, 1), date(2026, 3, 1), REGISTERED_ON, date(2026, 3, 8))

    assert (state.counted_from, state.days_without_contact, state.missed) == (date(2026, 3, 1), 7, False)


def test_parent_contact_is_not_counted_from_before_guardianship_followed_the_child():
    state = parent_contact_state(None, date(2025, 1, 1), date(2026, 3, 1), date(2026, 3, 9))

    assert (state.counted_from, state.consecutive_misses) == (date(2026, 3, 1), 1)


# --- entrusted care -----------------------------------------------------------------------------------------------


def terms(start: date, end: date | None, signed: bool = True, agreement_id: str = "a1") -> AgreementTerms:
    return AgreementTerms(agreement_id, start, end, signed)


def test_no_agreement_is_missing():
    problem = agreement_problem([], date(2026, 5, 1))

    assert problem is not None
    assert (problem.problem, problem.agreement_id) == ("missing", None)


def test_a_signed_agreement_in_force_is_no_problem_through_its_end_day():
    agreement = terms(date(2026, 3, 1), date(2026, 8, 31))

    assert agreement_problem([agreement], date(2026, 3, 1)) is None
    assert agreement_problem([agreement], date(2026, 8, 31)) is None


def test_an_agreement_expires_the_day_after_its_end_day():
    problem = agreement_problem([terms(date(2026, 3, 1), date(2026, 8, 31))], date(2026, 9, 1))

    assert problem is not None
    assert (problem.problem, problem.agreement_id) == ("expired", "a1")


def test_an_unsigned_agreement_in_force_is_unsigned():
    problem = agreement_problem([terms(date(2026, 3, 1), None, signed=False)], date(2026, 5, 1))

    assert problem is not None
    assert problem.problem == "unsigned"


def test_an_agreement_that_has_not_started_leaves_care_missing():
    problem = agreement_problem([terms(date(2026, 6, 1), None)], date(2026, 5, 31))

    assert problem is not None
    assert problem.problem == "missing"


def test_a_new_signed_agreement_replaces_an_expired_one():
    agreements = [terms(date(2025, 3, 1), date(2026, 2, 28), agreement_id="old"),
                  terms(date(2026, 3, 1), None, agreement_id="new")]

    assert agreement_problem(agreements, date(2026, 3, 1)) is None


# --- the scheduled check ------------------------------------------------------------------------------------------


def at_noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=CHINA_STANDARD_TIME)


def child_file(
    child_id: uuid.UUID, *, on: date = REGISTERED_ON, categories: tuple[str, ...] = ("left_behind",),
    parents_away: bool = True, parents_away_since: date | None = None, reasons: tuple[str, ...] = (),
) -> ChildFileUpdated:
    event_id = uuid.uuid4()
    return ChildFileUpdated(
        id=event_id, source="/huhang/intake", subject=str(care_case_id(child_id)), time=at_noon(on),
        dataschema=ChildFileUpdated.schema_uri(), correlationid=event_id, actoragency=Agency.civil_affairs,
        data=ChildFileUpdatedData(
            child_id=child_id, case_id=care_case_id(child_id), categories=categories, added_categories=categories,
            removed_categories=(), category_reasons=(), parents_away=parents_away,
            parents_away_since=parents_away_since, frequent_visit_reasons=reasons,
            has_entrusted_caregiver=parents_away, **PLACE,
        ),
    )


def merged(survivor: uuid.UUID, merged_child: uuid.UUID) -> ChildrenMerged:
    event_id = uuid.uuid4()
    return ChildrenMerged(
        id=event_id, source="/huhang/intake", subject=str(care_case_id(survivor)), time=at_noon(REGISTERED_ON),
        dataschema=ChildrenMerged.schema_uri(), correlationid=event_id, actoragency=Agency.civil_affairs,
        data=ChildrenMergedData(child_id=survivor, merged_child_id=merged_child, case_id=care_case_id(survivor),
                                merged_by=Agency.civil_affairs, **PLACE),
    )


@pytest.fixture
def service() -> Iterator[GuardianshipService]:
    built = build(Settings(storage="memory"))
    yield built
    built.application.close()


def published(service: GuardianshipService) -> list[CloudEvent]:
    source = NotificationLogSource("test", service.application, service.to_integration_events(), service.positions,
                                   batch_size=100_000)
    batch = source.poll(0.01)
    return list(batch.events) if batch else []


def of_type(service: GuardianshipService, cls: type[CloudEvent]) -> list[Any]:
    return [e for e in published(service) if isinstance(e, cls)]


def known(service: GuardianshipService, **file: Any) -> uuid.UUID:
    child_id = uuid.uuid4()
    service.known_children.handle([child_file(child_id, **file)])
    return child_id


def signed_agreement(service: GuardianshipService, child_id: uuid.UUID, start: date, end: date | None) -> None:
    service.care.record_agreement(child_id, RecordAgreement(
        caregiver_name="王秀英", relation="grandparent", start_on=start, end_on=end, signed=True, signed_on=start,
        recorded_by="village", fingerprint="f",
    ))


def contact(service: GuardianshipService, child_id: uuid.UUID, on: date, kind: str = "contact") -> None:
    service.care.record_visit(child_id, RecordVisit(
        kind=kind, visited_on=on, agency="village", director_id=None, findings=("all_well",), notes=None,
        fingerprint="f",
    ))


def parent_called(service: GuardianshipService, child_id: uuid.UUID, on: date) -> None:
    service.care.record_parent_contact(child_id, RecordParentContact(
        contacted_on=on, channel="video", parent="mother", recorded_by="village", fingerprint="f",
    ))


def test_no_contact_is_overdue_on_its_due_day_and_one_is_the_day_after(service):
    child_id = known(service, parents_away=False)  # registered 31 January: a contact due 28 February

    on_due_day = service.care.check(date(2026, 2, 28))
    day_after = service.care.check(date(2026, 3, 1))

    assert (on_due_day.visit_overdue, day_after.visit_overdue) == (0, 1)
    [overdue] = of_type(service, VisitOverdue)
    assert (overdue.data.child_id, overdue.data.kind, overdue.data.due_on, overdue.data.days_overdue) == (
        child_id, "contact", date(2026, 2, 28), 1
    )


def test_a_check_run_twice_raises_nothing_twice(service):
    known(service, parents_away=True)  # overdue contact and home visit, missed parent contact, no agreement

    first = service.care.check(date(2026, 6, 1))
    second = service.care.check(date(2026, 6, 1))

    assert (first.visit_overdue, first.parent_contact_missed, first.entrusted_care_flagged) == (2, 1, 1)
    assert second.raised == 0
    assert len(published(service)) == 4


def test_an_overdue_visit_is_raised_once_per_due_day_however_many_days_it_stays_overdue(service):
    known(service, parents_away=False)

    raised = [service.care.check(date(2026, 3, 1) + timedelta(days=n)).visit_overdue for n in range(10)]

    assert raised == [1] + [0] * 9


def test_a_contact_made_moves_the_due_day_and_the_next_miss_is_a_new_notice(service):
    child_id = known(service, parents_away=False)
    service.care.check(date(2026, 3, 1))  # contact due 28 February: overdue

    contact(service, child_id, date(2026, 3, 2))  # next contact due 2 April

    assert service.care.check(date(2026, 4, 2)).visit_overdue == 0
    assert service.care.check(date(2026, 4, 3)).visit_overdue == 1
    assert [e.data.due_on for e in of_type(service, VisitOverdue) if e.data.kind == "contact"] == [
        date(2026, 2, 28), date(2026, 4, 2)
    ]


def test_a_contact_entered_late_does_not_move_the_due_day_back(service):
    child_id = known(service, parents_away=False)
    contact(service, child_id, date(2026, 3, 10))
    service.care.check(date(2026, 3, 11))  # the check's read model has the 10 March contact

    contact(service, child_id, date(2026, 3, 2))  # an earlier contact, entered afterwards

    assert service.care.check(date(2026, 4, 10)).visit_overdue == 0
    assert service.care.care_of(child_id, date(2026, 4, 10))["next_contact_due_on"] == date(2026, 4, 10)


def test_a_home_visit_is_due_three_months_after_registration_on_the_ordinary_regime(service):
    child_id = known(service, parents_away=False)
    for month in (2, 3, 4):
        contact(service, child_id, date(2026, month, 20))  # contacts keep the monthly contact on time

    assert service.care.check(date(2026, 4, 30)).visit_overdue == 0  # due 30 April (31 January + 3 months)
    assert service.care.check(date(2026, 5, 1)).visit_overdue == 1
    [overdue] = of_type(service, VisitOverdue)
    assert (overdue.data.kind, overdue.data.due_on) == ("home_visit", date(2026, 4, 30))


@pytest.mark.parametrize("reason", FREQUENT_REASONS)
def test_a_frequent_visit_reason_of_the_file_makes_the_home_visit_due_monthly(service, reason):
    child_id = known(service, parents_away=False, reasons=(reason,))
    contact(service, child_id, date(2026, 2, 20))

    assert service.care.check(date(2026, 2, 28)).visit_overdue == 0
    assert service.care.check(date(2026, 3, 1)).visit_overdue == 1  # the home visit, due 28 February
    assert [e.data.kind for e in of_type(service, VisitOverdue)] == ["home_visit"]


def assessed(service: GuardianshipService, child_id: uuid.UUID, factors: list[F]) -> None:
    case_id, event_id = uuid.uuid4(), uuid.uuid4()
    service.known_cases.handle([ReportFiled(
        id=event_id, source="/huhang/intake", subject=str(case_id), time=datetime.now(UTC),
        dataschema=ReportFiled.schema_uri(), correlationid=event_id, actoragency=Agency.village,
        data=ReportFiledData(
            report_id=uuid.uuid4(), case_id=case_id, child_id=child_id, reporter_agency=Agency.village,
            reporter_role="child_director", concern_category="lack_of_care", urgency="routine",
            child_categories=("left_behind",), observed_on=date(2026, 1, 31), **PLACE,
        ),
    )])
    service.application.assess(child_id, case_id, factors, Agency.civil_affairs)


def test_a_medium_assessment_makes_the_home_visit_due_monthly(service):
    child_id = known(service, parents_away=False)
    contact(service, child_id, date(2026, 2, 20))
    assessed(service, child_id, [F.guardian_serious_illness])  # medium

    assert service.care.check(date(2026, 3, 1)).visit_overdue == 1
    assert [e.data.kind for e in of_type(service, VisitOverdue)] == ["home_visit"]


def test_a_low_assessment_keeps_the_ordinary_regime(service):
    child_id = known(service, parents_away=False)
    contact(service, child_id, date(2026, 2, 20))
    assessed(service, child_id, [F.extreme_poverty])  # low

    assert service.care.check(date(2026, 3, 1)).visit_overdue == 0


def test_seven_days_without_parent_contact_raises_nothing_and_the_eighth_raises_a_miss(service):
    child_id = known(service)
    signed_agreement(service, child_id, REGISTERED_ON, None)
    contact(service, child_id, date(2026, 2, 20), kind="home_visit")
    parent_called(service, child_id, date(2026, 2, 1))

    assert service.care.check(date(2026, 2, 8)).parent_contact_missed == 0
    assert service.care.check(date(2026, 2, 9)).parent_contact_missed == 1
    [missed] = of_type(service, ParentContactMissed)
    assert (missed.data.last_contact_on, missed.data.days_without_contact, missed.data.consecutive_misses) == (
        date(2026, 2, 1), 8, 1
    )
    assert missed.data.escalated is False


def test_a_second_missed_week_in_a_row_is_raised_escalated_and_each_week_once(service):
    child_id = known(service)
    signed_agreement(service, child_id, REGISTERED_ON, None)
    parent_called(service, child_id, date(2026, 2, 1))

    raised = [service.care.check(date(2026, 2, 1) + timedelta(days=n)).parent_contact_missed for n in range(23)]

    assert [n for n, count in enumerate(raised) if count] == [8, 15, 22]
    assert [(e.data.consecutive_misses, e.data.escalated) for e in of_type(service, ParentContactMissed)] == [
        (1, False), (2, True), (3, True)
    ]


def test_a_parent_contact_resets_the_count(service):
    child_id = known(service)
    signed_agreement(service, child_id, REGISTERED_ON, None)
    parent_called(service, child_id, date(2026, 2, 1))
    service.care.check(date(2026, 2, 12))  # one miss

    parent_called(service, child_id, date(2026, 2, 12))

    assert service.care.check(date(2026, 2, 19)).parent_contact_missed == 0
    assert service.care.check(date(2026, 2, 20)).parent_contact_missed == 1
    assert [e.data.consecutive_misses for e in of_type(service, ParentContactMissed)] == [1, 1]


def test_parent_contact_and_entrusted_care_are_not_checked_while_the_parents_are_at_home(service):
    known(service, parents_away=False, categories=("disabled",))

    result = service.care.check(date(2026, 6, 1))

    assert (result.parent_contact_missed, result.entrusted_care_flagged) == (0, 0)


def test_parents_away_without_an_agreement_are_flagged_missing_once(service):
    child_id = known(service)

    counts = [service.care.check(date(2026, 2, 1)).entrusted_care_flagged,
              service.care.check(date(2026, 2, 2)).entrusted_care_flagged]

    assert counts == [1, 0]
    [flag] = of_type(service, EntrustedCareFlagged)
    assert (flag.data.child_id, flag.data.problem) == (child_id, "missing")


def test_an_agreement_is_flagged_expired_the_day_after_its_end_day_not_on_it(service):
    child_id = known(service)
    signed_agreement(service, child_id, REGISTERED_ON, date(2026, 6, 30))

    assert service.care.check(date(2026, 6, 30)).entrusted_care_flagged == 0
    assert service.care.check(date(2026, 7, 1)).entrusted_care_flagged == 1
    assert [e.data.problem for e in of_type(service, EntrustedCareFlagged)] == ["expired"]


def test_an_unsigned_agreement_is_flagged_until_signed(service):
    child_id = known(service)
    service.care.record_agreement(child_id, RecordAgreement(
        caregiver_name="王秀英", relation="grandparent", start_on=REGISTERED_ON, end_on=None, signed=False,
        signed_on=None, recorded_by="village", fingerprint="f",
    ))

    assert service.care.check(date(2026, 2, 1)).entrusted_care_flagged == 1
    [flag] = of_type(service, EntrustedCareFlagged)
    assert flag.data.problem == "unsigned"


def test_children_without_a_category_and_merged_children_are_not_checked(service):
    known(service, categories=())
    survivor, duplicate = known(service), known(service)
    service.known_children.handle([merged(survivor, duplicate)])

    result = service.care.check(date(2026, 6, 1))

    assert result.children_checked == 1
    assert {e.data.child_id for e in published(service)} == {survivor}  # type: ignore[attr-defined]


def test_the_check_reads_every_covered_child_once_page_by_page(service):
    ids = {known(service) for _ in range(5)}
    known(service, categories=())

    pages = list(service.care.status.covered_children(page_size=2))

    assert [len(p) for p in pages] == [2, 2, 1]
    assert [c.child_id for p in pages for c in p] == sorted(ids, key=str)


def test_the_check_projection_converges_when_caught_up_again_from_the_start(service):
    child_id = known(service, parents_away=False)
    contact(service, child_id, date(2026, 3, 2))
    service.care.check(date(2026, 3, 3))
    with service.care.status.engine.begin() as conn:
        from huhang.streams import positions_table

        conn.execute(positions_table.delete())  # as if the position were lost: every event applied again

    assert service.care.status.catch_up() > 0
    assert service.care.check(date(2026, 3, 3)).raised == 0
    assert service.care.care_of(child_id, date(2026, 3, 3))["last_contact_on"] == date(2026, 3, 2)


@pytest.mark.parametrize("storage", ["memory", "sqlite", "postgres"])
def test_the_check_is_idempotent_on_every_store(storage, tmp_path, request):
    if storage == "memory":
        settings = Settings(storage="memory")
    elif storage == "postgres":
        from tests.conftest import postgres_settings

        settings = postgres_settings(request.getfixturevalue("postgres_url"))
    else:
        settings = Settings(storage="sqlite", data_dir=tmp_path / "data")
    service = build(settings)
    service.care.status.page_size = 2  # several pages: notices saved while the children are still being read
    try:
        child_id = known(service)
        signed_agreement(service, child_id, REGISTERED_ON, date(2026, 4, 30))
        parent_called(service, child_id, date(2026, 5, 1))
        others = [known(service, parents_away=False) for _ in range(4)]

        counts = [service.care.check(date(2026, 5, 20)).raised, service.care.check(date(2026, 5, 20)).raised]

        # contact, home visit, parent contact missed, agreement expired; contact and home visit of the others
        assert counts == [4 + 2 * len(others), 0]
        assert sorted(type(e).__name__ for e in published(service) if e.data.child_id == child_id) == [  # type: ignore[attr-defined]
            "EntrustedCareAgreementSigned", "EntrustedCareFlagged", "ParentContactMissed", "ParentContactRecorded",
            "VisitOverdue", "VisitOverdue",
        ]
    finally:
        service.application.close()
        service.positions.engine.dispose()


# --- what is published --------------------------------------------------------------------------------------------


def test_check_events_are_on_the_childs_care_case_with_codes_and_dates_only(service):
    child_id = known(service)
    service.care.record_agreement(child_id, RecordAgreement(
        caregiver_name="王秀英", relation="grandparent", start_on=REGISTERED_ON, end_on=date(2026, 3, 31),
        signed=True, signed_on=REGISTERED_ON, recorded_by="village", fingerprint="f",
    ))
    service.care.check(date(2026, 6, 1))

    # the check's notices (the signed agreement itself is published too, by the village, without an area)
    events = [e for e in published(service) if type(e).__name__ != "EntrustedCareAgreementSigned"]

    assert {e.subject for e in events} == {str(care_case_id(child_id))}
    assert {e.data.case_id for e in events} == {care_case_id(child_id)}  # type: ignore[attr-defined]
    assert {e.actoragency for e in events} == {Agency.civil_affairs}
    assert all((e.data.township, e.data.village) == ("虹桥镇", "溪西村") for e in events)  # type: ignore[attr-defined]
    assert not any("王秀英" in e.model_dump_json() for e in events)


def test_a_visit_publishes_its_findings_and_next_dues_never_its_notes(service):
    child_id = known(service)
    service.care.record_visit(child_id, RecordVisit(
        kind="home_visit", visited_on=date(2026, 3, 2), agency="village", director_id=None,
        findings=("caregiver_neglectful", "child_unwell"), notes="祖母酗酒，孩子咳嗽。", fingerprint="f",
    ))

    events = published(service)

    [visit] = [e for e in events if isinstance(e, VisitRecorded)]
    assert (visit.data.kind, visit.data.findings) == ("home_visit", ("caregiver_neglectful", "child_unwell"))
    assert (visit.data.next_contact_due_on, visit.data.next_home_visit_due_on) == (date(2026, 4, 2), date(2026, 6, 2))
    assert visit.actoragency == Agency.village
    [flag] = [e for e in events if isinstance(e, EntrustedCareFlagged)]
    assert flag.data.problem == "caregiver_neglectful"
    assert flag.causationid == visit.id
    assert flag.id != visit.id
    assert not any("祖母" in e.model_dump_json() for e in events)


def test_mapping_the_same_stored_events_again_gives_the_same_event_ids(service):
    known(service)
    service.care.check(date(2026, 6, 1))

    assert [e.id for e in published(service)] == [e.id for e in published(service)]


# --- routing ------------------------------------------------------------------------------------------------------

RULES = load_rules()


def event(cls: type[CloudEvent], **data: Any) -> CloudEvent:
    child_id, event_id = uuid.uuid4(), uuid.uuid4()
    data_class = cls.model_fields["data"].annotation
    assert data_class is not None
    return cls.model_validate({
        "id": event_id, "source": "/huhang/guardianship", "subject": str(care_case_id(child_id)),
        "time": at_noon(REGISTERED_ON), "dataschema": cls.schema_uri(), "correlationid": event_id,
        "actoragency": Agency.civil_affairs,
        "data": data_class(child_id=child_id, case_id=care_case_id(child_id), **PLACE, **data),
    })


def routed(e: CloudEvent) -> set[tuple[str, str]]:
    return {(r.agency.value, r.referral_type) for r in RULES.route(e)}


def test_an_overdue_contact_goes_to_the_village():
    assert routed(event(VisitOverdue, **_overdue("contact"))) == {("village", "child_director_visit")}


def test_an_overdue_home_visit_also_goes_to_civil_affairs_for_supervision():
    assert routed(event(VisitOverdue, **_overdue("home_visit"))) == {
        ("village", "child_director_visit"), ("civil_affairs", "visit_regime_supervision")
    }


def _overdue(kind: str) -> dict[str, Any]:
    return {"kind": kind, "due_on": date(2026, 2, 28), "days_overdue": 1}


def _missed(misses: int) -> dict[str, Any]:
    return {"last_contact_on": date(2026, 2, 1), "days_without_contact": 1 + 7 * misses,
            "consecutive_misses": misses, "escalated": misses >= 2}


def test_a_first_missed_week_of_parent_contact_goes_to_the_village_only():
    assert routed(event(ParentContactMissed, **_missed(1))) == {("village", "parent_contact_follow_up")}


def test_a_second_missed_week_in_a_row_also_goes_to_the_township_and_civil_affairs():
    assert routed(event(ParentContactMissed, **_missed(2))) == {
        ("village", "parent_contact_follow_up"), ("township", "parent_contact_supervision"),
        ("civil_affairs", "parent_contact_escalation"),
    }


@pytest.mark.parametrize("problem", ["missing", "unsigned", "expired"])
def test_an_agreement_problem_goes_to_the_village_and_civil_affairs(problem):
    assert routed(event(EntrustedCareFlagged, problem=problem)) == {
        ("village", "entrusted_care_agreement"), ("civil_affairs", "entrusted_care_supervision")
    }


@pytest.mark.parametrize("problem", ["caregiver_unable", "caregiver_neglectful"])
def test_a_caregiver_unable_or_neglectful_goes_to_the_village_to_replace_or_support_and_to_civil_affairs(problem):
    found = RULES.route(event(EntrustedCareFlagged, problem=problem))

    assert {(r.agency.value, r.referral_type, r.priority.value) for r in found} == {
        ("village", "caregiver_replacement_or_support", "urgent"), ("civil_affairs", "entrusted_care_review", "urgent")
    }
    assert all(5 in r.plan_tasks for r in found)


def _visit(*findings: str) -> dict[str, Any]:
    return {"visit_id": uuid.uuid4(), "kind": "home_visit", "visited_on": date(2026, 3, 2), "findings": findings,
            "next_contact_due_on": date(2026, 4, 2), "next_home_visit_due_on": date(2026, 6, 2)}


def test_a_visit_finding_all_well_opens_no_referral():
    assert routed(event(VisitRecorded, **_visit("all_well"))) == set()


def test_a_visit_finding_the_child_absent_or_unsafe_housing_is_routed():
    assert routed(event(VisitRecorded, **_visit("child_absent"))) == {("village", "child_whereabouts_check")}
    assert routed(event(VisitRecorded, **_visit("unsafe_housing"))) == {
        ("civil_affairs", "housing_relief_review"), ("village", "housing_safety_follow_up")
    }



# --- the children guardianship knows of ---------------------------------------------------------------------------


@pytest.fixture
def children(any_storage_settings: Settings) -> Iterator[GuardianshipService]:
    built = build(any_storage_settings)
    yield built
    built.application.close()
    built.positions.engine.dispose()


def test_a_child_file_makes_the_child_known_with_its_codes_and_first_day(children):
    child_id = uuid.uuid4()
    children.known_children.handle([child_file(child_id, parents_away_since=date(2025, 12, 1),
                                               reasons=("child_disability",))])

    child = children.known_children.get(child_id)

    assert child is not None
    assert (child.categories, child.parents_away, child.parents_away_since) == (("left_behind",), True,
                                                                                date(2025, 12, 1))
    assert (child.frequent_visit_reasons, child.has_entrusted_caregiver, child.merged_into) == (
        ("child_disability",), True, None
    )
    assert (child.township, child.village, child.registered_on) == ("虹桥镇", "溪西村", REGISTERED_ON)
    assert children.known_children.get(uuid.uuid4()) is None


def test_a_later_file_update_changes_the_facts_and_an_older_or_repeated_one_changes_nothing(children):
    child_id = uuid.uuid4()
    first = child_file(child_id, categories=("left_behind",))
    later = child_file(child_id, on=REGISTERED_ON + timedelta(days=30), categories=("disabled", "left_behind"),
                       parents_away=False)

    children.known_children.handle([first])
    children.known_children.handle([later, first])  # in one batch
    in_batch = children.known_children.get(child_id)
    children.known_children.handle([later])  # repeated
    children.known_children.handle([first])  # replayed later, alone

    assert in_batch is not None
    assert in_batch.categories == ("disabled", "left_behind")

    child = children.known_children.get(child_id)
    assert child is not None
    assert (child.categories, child.parents_away) == (("disabled", "left_behind"), False)
    assert child.registered_on == REGISTERED_ON  # the first day guardianship heard of the child stays


def test_a_merged_child_stays_merged_and_is_not_counted_or_listed(children):
    survivor, duplicate, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    children.known_children.handle([child_file(survivor), child_file(duplicate), child_file(other, categories=())])

    children.known_children.handle([merged(survivor, duplicate), merged(survivor, duplicate)])
    children.known_children.handle([merged(other, duplicate)])  # a file merged once stays where it went
    children.known_children.handle([child_file(duplicate, on=REGISTERED_ON + timedelta(days=1))])

    duplicate_child = children.known_children.get(duplicate)
    assert duplicate_child is not None
    assert duplicate_child.merged_into == survivor
    assert children.known_children.covered_by_village() == {("虹桥镇", "溪西村"): 1}
    assert {c.child_id for c in children.known_children.in_village("虹桥镇", "溪西村")} == {survivor, other}
    assert children.known_children.in_village("虹桥镇", "东风村") == []


def test_a_merge_of_a_file_guardianship_never_saw_still_answers_merged_into(children):
    survivor, unseen = uuid.uuid4(), uuid.uuid4()

    children.known_children.handle([merged(survivor, unseen)])

    child = children.known_children.get(unseen)
    assert child is not None
    assert (child.merged_into, child.covered) == (survivor, False)

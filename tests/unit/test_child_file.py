"""The child's file in intake (一人一档): registration (one and in batches), facts with their source, categories derived
and re-derived (on a change of facts and as time passes), duplicates flagged and never merged silently, merges that
keep both histories, and the ChildFileUpdated / ChildrenMerged events. On every store where it is cheap."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from faker import Faker

from contracts.cases import care_case_id
from contracts.envelope import CloudEvent
from contracts.events import ChildFileUpdated, ChildrenMerged, ReportFiled
from contracts.routing import load_rules
from huhang.problems import Conflict, NotFound, Unprocessable
from huhang.settings import Settings
from huhang.storage import eventsourcing_env, read_model_engine
from services.intake import application
from services.intake.application import (
    ChildFacts,
    FileReport,
    IntakeApplication,
    RegisterChild,
    ReportAboutChild,
)
from services.intake.categories import add_months
from services.intake.facts import ChildFileFacts
from services.intake.integration import to_integration_events
from workflows.routing import plan_referrals

TODAY = date(2026, 11, 29)


class Clock:
    def __init__(self, today: date) -> None:
        self.today = today

    def __call__(self) -> date:
        return self.today


@pytest.fixture
def clock() -> Clock:
    return Clock(TODAY)


def make_app(settings: Settings, clock: Clock) -> IntakeApplication:
    return IntakeApplication(
        eventsourcing_env(settings, "intake"), identity_key=b"test-identity-key",
        read_engine=read_model_engine(settings, "intake"), today=clock,
    )


@pytest.fixture
def intake(memory_settings: Settings, clock: Clock) -> Iterator[IntakeApplication]:
    app = make_app(memory_settings, clock)
    yield app
    app.close()


@pytest.fixture
def stored_intake(any_storage_settings: Settings, clock: Clock) -> Iterator[IntakeApplication]:
    app = make_app(any_storage_settings, clock)
    yield app
    app.close()


@pytest.fixture
def fake() -> Faker:
    faker = Faker("zh_CN")
    faker.seed_instance(20261129)
    return faker


def identity(fake: Faker, **changes: Any) -> ChildFacts:
    fields: dict[str, Any] = {
        "name": fake.name(), "sex": "female", "birth_date": fake.date_between(date(2012, 1, 1), date(2020, 12, 31)),
        "id_card_number": None, "township": "虹桥镇", "village": f"{fake.last_name()}家村", "categories": (),
    }
    fields.update(changes)
    return ChildFacts(**fields)


def parents_away(since: date, caregiver: bool = True, **more: Any) -> ChildFileFacts:
    guardians = [
        {"relation": r, "status": "away_for_work", "away_since": since, "works_outside_county": True}
        for r in ("father", "mother")
    ]
    extra = {"entrusted_caregiver": {"relation": "grandparent"}} if caregiver else {}
    return ChildFileFacts.model_validate({"guardians": guardians, **extra, **more})


PARENTS_AT_HOME = ChildFileFacts.model_validate(
    {"guardians": [{"relation": "father", "status": "present"}, {"relation": "mother", "status": "present"}]}
)


def register(who: ChildFacts, facts: ChildFileFacts = PARENTS_AT_HOME, source: str = "registration",
             by: str = "village") -> RegisterChild:
    return RegisterChild(identity=who, facts=facts, registered_by=by, source=source)


def stored(intake: IntakeApplication) -> int:
    return intake.recorder.max_notification_id() or 0


def contract_events(intake: IntakeApplication) -> list[CloudEvent]:
    out: list[CloudEvent] = []
    for notification in intake.recorder.select_notifications(start=None, limit=10_000):
        out.extend(to_integration_events(intake.mapper.to_domain_event(notification)))
    return out


def file_updates(intake: IntakeApplication, child_id: Any) -> list[ChildFileUpdated]:
    return [e for e in contract_events(intake) if isinstance(e, ChildFileUpdated) and e.data.child_id == child_id]


def changes(intake: IntakeApplication, child_id: Any) -> list[str]:
    return [e["change"] for e in intake.get_child_history(child_id)]


def a_report(who: ChildFacts, **changes: Any) -> FileReport:
    fields: dict[str, Any] = {
        "reporter_agency": "education", "reporter_role": "teacher", "reporter_reference": None, "child": who,
        "concern_category": "guardian_neglect", "urgency": "urgent", "observations": "连续三天未到校。",
        "observed_on": TODAY - timedelta(days=1), "idempotency_key": None,
    }
    fields.update(changes)
    fields["fingerprint"] = hashlib.sha256(repr(sorted(fields.items(), key=lambda kv: kv[0])).encode()).hexdigest()
    return FileReport(**fields)


# --- registration -------------------------------------------------------------------------------------------------


def test_registering_a_child_creates_the_file_with_its_facts_and_derived_categories(stored_intake, fake):
    facts = parents_away(add_months(TODAY, -4), needs=[{"kind": "basic_living", "source": "dibao"}])

    (registration,) = stored_intake.register_children([register(identity(fake), facts)])

    assert (registration.created, registration.changed) == (True, True)
    assert registration.categories == ("left_behind", "difficulty_basic_living")
    file = stored_intake.get_child_file(registration.child_id)
    assert file["facts"] == facts.stored()
    assert file["category_reasons"] == ["left_behind:both_parents_away", "difficulty_basic_living:dibao"]
    assert file["facts_provenance"]["guardians"]["source"] == "registration"
    assert changes(stored_intake, registration.child_id) == ["registered", "facts_recorded", "categories_derived"]


def test_re_registering_identical_facts_changes_nothing(stored_intake, fake):
    command = register(identity(fake), parents_away(add_months(TODAY, -4)))
    first = stored_intake.register_children([command])[0]
    before = stored(stored_intake)

    again = stored_intake.register_children([command])[0]

    assert (again.child_id, again.created, again.changed) == (first.child_id, False, False)
    assert again.categories == first.categories
    assert stored(stored_intake) == before


def test_re_registering_identical_facts_without_the_registry_rows_changes_nothing(intake, fake):
    command = register(identity(fake), parents_away(add_months(TODAY, -4)))
    intake.register_children([command])
    before = stored(intake)
    with intake.registry.engine.begin() as conn:  # as if the process had died between the save and the rows
        conn.exec_driver_sql("DELETE FROM child_registry")

    again = intake.register_children([command])[0]

    assert (again.created, again.changed) == (False, False)
    assert stored(intake) == before


def test_re_importing_a_row_after_a_later_update_from_elsewhere_changes_nothing(intake, fake):
    row = register(identity(fake), PARENTS_AT_HOME, source="survey:abc:7")
    child_id = intake.register_children([row])[0].child_id
    intake.record_facts(child_id, parents_away(add_months(TODAY, -4)), recorded_by="village", source="home_visit")
    before = stored(intake)

    again = intake.register_children([row])[0]

    assert again.changed is False
    assert stored(intake) == before
    assert intake.get_child(child_id).categories == ["left_behind"]


def test_registering_known_facts_from_another_source_changes_them(intake, fake):
    who = identity(fake)
    intake.register_children([register(who, PARENTS_AT_HOME)])

    updated = intake.register_children([register(who, parents_away(add_months(TODAY, -4)), source="survey:x:2")])[0]

    assert (updated.created, updated.changed, updated.categories) == (False, True, ("left_behind",))


def test_the_same_child_twice_in_one_batch_is_one_file(intake, fake):
    who = identity(fake)

    first, second = intake.register_children([register(who), register(who)])

    assert first.child_id == second.child_id
    assert (first.created, second.created) == (True, False)
    assert changes(intake, first.child_id).count("registered") == 1


def test_a_batch_of_500_children_registers_in_one_go_and_quickly(any_storage_settings, clock, fake):
    if any_storage_settings.storage == "postgres":
        pytest.skip("the time bound is for SQLite and memory")
    app = make_app(any_storage_settings, clock)
    commands = [register(identity(fake, village=f"第{i % 40}村"), parents_away(add_months(TODAY, -5)),
                         source=f"survey:bench:{i}") for i in range(500)]
    app.register_children(commands[:5])  # warm up the code paths

    started = time.perf_counter()
    registrations = app.register_children(commands)
    elapsed = time.perf_counter() - started

    assert len({r.child_id for r in registrations}) == 500
    assert sum(r.created for r in registrations) == 495
    assert all(r.categories == ("left_behind",) for r in registrations)
    assert elapsed < 2.0  # about 0.3 s on an idle 2-core machine; a loose bound against a gross regression
    app.close()


def test_a_batch_saved_chunk_by_chunk_registers_as_its_chunks_would_one_call_after_another(
    memory_settings, clock, fake, monkeypatch
):
    """Each chunk is prepared while the one before it is still being saved (its registry rows and flags not yet
    written): what it needs of that chunk comes from memory."""
    known_before = identity(fake, name="陈晓明", sex="male", birth_date=date(2016, 5, 3))
    its_twin = dataclasses.replace(known_before, name="陳曉明")  # the same child written otherwise: a duplicate
    again, first, second = identity(fake), identity(fake, name="张小雨"), identity(fake)
    commands = [
        register(its_twin), register(identity(fake)),  # a duplicate of a file not in this batch is flagged on it ...
        register(known_before), register(again),  # ... and not again when that file comes next, unchanged
        register(again, parents_away(add_months(TODAY, -5)), source="survey:s:5"),  # changed right after
        register(first), register(dataclasses.replace(first, name="張小雨")), register(second),
    ]
    monkeypatch.setattr(application, "REGISTER_CHUNK", 2)
    whole, chunked = make_app(memory_settings, clock), make_app(memory_settings, clock)
    try:
        for app in (whole, chunked):
            app.register_children([register(known_before)])
        one_call_after_another = [
            r for start in range(0, len(commands), 2) for r in whole.register_children(commands[start:start + 2])
        ]

        in_chunks = chunked.register_children(commands)

        assert [dataclasses.astuple(r) for r in in_chunks] == [dataclasses.astuple(r) for r in one_call_after_another]
        assert [(r.created, r.changed) for r in in_chunks] == [
            (True, True), (True, True), (False, False), (True, True), (False, True), (True, True), (True, True),
            (True, True),
        ]
        twin, known, first_again = in_chunks[0], in_chunks[2], in_chunks[4]
        assert [d.child_id for d in twin.duplicates] == [known.child_id]
        assert [d.child_id for d in known.duplicates] == [twin.child_id]  # pending, not flagged a second time
        assert (first_again.child_id, first_again.categories) == (in_chunks[3].child_id, ("left_behind",))
        assert [d.child_id for d in in_chunks[6].duplicates] == [in_chunks[5].child_id]
        assert len(chunked.pending_duplicates()) == 2
        assert changes(chunked, known.child_id) == changes(whole, known.child_id)
        assert changes(chunked, first_again.child_id) == [
            "registered", "facts_recorded", "categories_derived", "facts_recorded", "categories_derived",
        ]
        assert stored(chunked) == stored(whole)
        ids = {r.child_id for r in in_chunks}
        assert chunked.registry.rows(ids) == whole.registry.rows(ids)
    finally:
        whole.close()
        chunked.close()


def test_a_conflict_in_a_later_chunk_keeps_the_chunks_saved_before_and_tries_again_from_there(
    stored_intake, fake, monkeypatch
):
    known = register(identity(fake), PARENTS_AT_HOME)
    known_id = stored_intake.register_children([known])[0].child_id
    with stored_intake.registry.engine.begin() as conn:  # the registry misses the file: taken for new, it conflicts
        conn.exec_driver_sql("DELETE FROM child_registry")
    fresh = [register(identity(fake)) for _ in range(3)]
    monkeypatch.setattr(application, "REGISTER_CHUNK", 2)

    registrations = stored_intake.register_children([fresh[0], fresh[1], known, fresh[2]])

    assert [(r.created, r.changed) for r in registrations] == [(True, True), (True, True), (False, False), (True, True)]
    assert registrations[2].child_id == known_id
    for registration in registrations:
        assert changes(stored_intake, registration.child_id).count("registered") == 1
    assert set(stored_intake.registry.rows({r.child_id for r in registrations})) == {r.child_id for r in registrations}


# --- categories: derived, re-derived on a change of facts and as time passes --------------------------------------


def test_a_change_of_facts_re_derives_the_categories_and_records_what_was_added_and_removed_and_why(intake, fake):
    child_id = intake.register_children([register(identity(fake), PARENTS_AT_HOME)])[0].child_id

    intake.record_facts(child_id, parents_away(add_months(TODAY, -3), caregiver=False), "village", "home_visit")
    intake.record_facts(child_id, parents_away(add_months(TODAY, -3), caregiver=True), "village", "home_visit")

    derived = [e["details"] for e in intake.get_child_history(child_id) if e["change"] == "categories_derived"]
    assert derived[1]["added"] == ["left_behind", "guardianship_missing"]
    assert derived[1]["removed"] == []
    assert "guardianship_missing:left_behind_without_caregiver" in derived[1]["reasons"]
    assert derived[2]["added"] == []
    assert derived[2]["removed"] == ["guardianship_missing"]
    assert derived[2]["categories"] == ["left_behind"]


def test_the_change_events_carry_the_source_agency_and_time(intake, fake):
    child_id = intake.register_children([register(identity(fake), PARENTS_AT_HOME)])[0].child_id

    intake.record_facts(child_id, parents_away(add_months(TODAY, -3)), "education", "school_record")

    entry = next(e for e in reversed(intake.get_child_history(child_id)) if e["change"] == "facts_recorded")
    assert (entry["source"], entry["agency"]) == ("school_record", "education")
    assert entry["details"]["changed_sections"] == ["guardians", "entrusted_caregiver"]
    assert entry["time"] is not None
    provenance = intake.get_child_file(child_id)["facts_provenance"]
    assert provenance["guardians"]["source"] == "school_record"
    assert provenance["school"]["source"] == "registration"


def test_recording_the_same_facts_again_records_nothing(intake, fake):
    child_id = intake.register_children([register(identity(fake))])[0].child_id
    before = stored(intake)

    result = intake.record_facts(child_id, PARENTS_AT_HOME, "village", "home_visit")

    assert result.changed is False
    assert stored(intake) == before


def test_a_change_of_notes_only_is_recorded_but_publishes_no_file_update(intake, fake):
    child_id = intake.register_children([register(identity(fake))])[0].child_id
    published = len(file_updates(intake, child_id))

    notes = PARENTS_AT_HOME.model_copy(update={"health_notes": "轻度哮喘"})
    result = intake.record_facts(child_id, notes, "health", "hospital_record")

    assert result.changed is True
    assert changes(intake, child_id)[-1] == "facts_recorded"
    assert len(file_updates(intake, child_id)) == published


def test_parents_passing_three_months_away_make_the_child_due_and_re_derivation_makes_it_left_behind(
    stored_intake, clock, fake
):
    since = add_months(TODAY, -2)  # two months away today: not yet left behind
    child_id = stored_intake.register_children([register(identity(fake), parents_away(since))])[0].child_id
    due_on = add_months(since, 3)
    assert stored_intake.get_child(child_id).categories == []

    assert child_id not in stored_intake.children_due_for_rederivation(due_on - timedelta(days=1))
    assert stored_intake.rederive_categories(due_on - timedelta(days=1)) == []
    assert child_id in stored_intake.children_due_for_rederivation(due_on)

    assert stored_intake.rederive_categories(due_on) == [child_id]
    assert stored_intake.get_child(child_id).categories == ["left_behind"]
    (update,) = [e for e in file_updates(stored_intake, child_id) if e.data.added_categories]
    assert update.data.added_categories == ("left_behind",)
    assert update.actoragency == "civil_affairs"


def test_re_deriving_twice_changes_nothing_twice(intake, fake):
    since = add_months(TODAY, -2)
    intake.register_children([register(identity(fake), parents_away(since))])
    due_on = add_months(since, 3)
    intake.rederive_categories(due_on)
    before = stored(intake)

    assert intake.rederive_categories(due_on) == []
    assert intake.children_due_for_rederivation(due_on) == []
    assert stored(intake) == before


def test_categories_are_never_derived_back_in_time(intake, fake):
    since = add_months(TODAY, -3)
    child_id = intake.register_children([register(identity(fake), parents_away(since))])[0].child_id

    intake.rederive_categories(TODAY - timedelta(days=10), child_ids=[child_id])

    assert intake.get_child(child_id).categories == ["left_behind"]


def test_re_registering_after_the_due_date_re_derives(intake, clock, fake):
    since = add_months(TODAY, -2)
    command = register(identity(fake), parents_away(since))
    intake.register_children([command])
    clock.today = add_months(since, 3)

    again = intake.register_children([command])[0]

    assert (again.changed, again.categories) == (True, ("left_behind",))


# --- reports and the file's categories ----------------------------------------------------------------------------


def test_a_report_does_not_overwrite_the_derived_categories(intake, fake):
    who = identity(fake)
    child_id = intake.register_children([register(who, parents_away(add_months(TODAY, -4)))])[0].child_id

    intake.file_report(a_report(dataclasses.replace(who, categories=("disabled",))))

    child = intake.get_child(child_id)
    assert child.categories == ["left_behind"]
    assert child.reported_categories == ["disabled"]
    (report,) = [e for e in contract_events(intake) if isinstance(e, ReportFiled)]
    assert set(report.data.child_categories) == {"left_behind", "disabled"}


def test_a_child_first_known_from_a_report_gets_a_file_and_a_file_update(intake, fake):
    filed = intake.file_report(a_report(identity(fake, categories=("left_behind",))))

    (update,) = file_updates(intake, filed.child_id)
    assert update.data.categories == ()
    assert intake.get_child(filed.child_id).reported_categories == ["left_behind"]


def test_a_report_about_a_registered_child_by_id_goes_to_its_case(intake, fake):
    child_id = intake.register_children([register(identity(fake))])[0].child_id
    command = ReportAboutChild(
        reporter_agency="village", reporter_role="child_director", reporter_reference=None,
        concern_category="caregiver_unable", urgency="urgent", observations="祖母卧病，无力照料。",
        observed_on=TODAY - timedelta(days=1), fingerprint="f-1", idempotency_key="visit-1",
    )

    filed = intake.file_report_about_child(child_id, command)
    again = intake.file_report_about_child(child_id, command)

    assert filed.child_id == child_id
    assert intake.get_child(child_id).case_ids == [filed.case_id]
    assert (again.report_id, again.replayed) == (filed.report_id, True)


def test_a_report_about_an_unknown_child_id_is_not_found(intake, fake):
    command = ReportAboutChild(
        reporter_agency="village", reporter_role="child_director", reporter_reference=None,
        concern_category="caregiver_unable", urgency="urgent", observations="无人照料。",
        observed_on=TODAY, fingerprint="f-2",
    )
    with pytest.raises(NotFound):
        intake.file_report_about_child(intake.child_id_for(identity(fake)), command)


def test_a_report_about_a_child_dated_before_its_birth_is_unprocessable(intake, fake):
    who = identity(fake)
    child_id = intake.register_children([register(who)])[0].child_id
    command = ReportAboutChild(
        reporter_agency="village", reporter_role="child_director", reporter_reference=None,
        concern_category="caregiver_unable", urgency="urgent", observations="无人照料。",
        observed_on=who.birth_date - timedelta(days=1), fingerprint="f-3",
    )
    before = stored(intake)

    with pytest.raises(Unprocessable) as refused:
        intake.file_report_about_child(child_id, command)

    assert [e.field for e in refused.value.errors] == ["observed_on"]
    assert stored(intake) == before


# --- duplicates: flagged, never merged silently; merges keep both histories ---------------------------------------


def twins_in_writing(fake: Faker) -> tuple[ChildFacts, ChildFacts]:
    """The same child written twice: simplified and traditional characters, no ID number."""
    first = identity(fake, name="陈晓明", sex="male", birth_date=date(2016, 5, 3))
    return first, dataclasses.replace(first, name="陳曉明")


def test_a_probable_duplicate_is_flagged_on_the_new_child_and_nothing_is_merged(stored_intake, fake):
    first, second = twins_in_writing(fake)
    a = stored_intake.register_children([register(first)])[0]

    b = stored_intake.register_children([register(second)])[0]

    assert b.child_id != a.child_id
    assert [d.child_id for d in b.duplicates] == [a.child_id]
    assert stored_intake.get_child(b.child_id).pending_duplicates().keys() == {a.child_id}
    assert stored_intake.get_child(a.child_id).merged_into is None
    assert stored_intake.get_child(b.child_id).merged_into is None
    (pending,) = stored_intake.pending_duplicates()
    assert {pending["child_id"], pending["other_child_id"]} == {str(a.child_id), str(b.child_id)}
    assert [d["child_id"] for d in stored_intake.get_child_file(a.child_id)["duplicates_pending"]] == [b.child_id]


def test_duplicates_within_one_batch_are_flagged_once(intake, fake):
    first, second = twins_in_writing(fake)

    a, b = intake.register_children([register(first), register(second)])

    assert len(intake.pending_duplicates()) == 1
    assert len(a.duplicates) + len(b.duplicates) >= 1


def test_registering_again_does_not_flag_a_known_pair_again(intake, fake):
    first, second = twins_in_writing(fake)
    intake.register_children([register(first)])
    intake.register_children([register(second)])
    before = stored(intake)

    again = intake.register_children([register(first), register(second)])

    assert stored(intake) == before
    assert not any(r.changed for r in again)
    assert len(intake.pending_duplicates()) == 1


def test_a_report_about_a_probable_duplicate_flags_it(intake, fake):
    first, second = twins_in_writing(fake)
    a = intake.register_children([register(first)])[0]

    filed = intake.file_report(a_report(second))

    assert filed.child_id != a.child_id
    assert a.child_id in intake.get_child(filed.child_id).pending_duplicates()


def test_confirming_a_duplicate_merges_it_keeping_both_histories_as_events(stored_intake, fake):
    first, second = twins_in_writing(fake)
    a = stored_intake.register_children([register(first, parents_away(add_months(TODAY, -4)))])[0]
    reported = stored_intake.file_report(a_report(second))
    merged_history = changes(stored_intake, reported.child_id)

    merge = stored_intake.confirm_duplicate(a.child_id, reported.child_id, by="civil_affairs", note="户籍核对一致")

    survivor, merged = stored_intake.get_child(a.child_id), stored_intake.get_child(reported.child_id)
    assert merged.merged_into == a.child_id
    assert survivor.absorbed == [reported.child_id]
    assert reported.case_id in survivor.case_ids
    assert survivor.open_case_id == reported.case_id
    assert merge.case_ids == (reported.case_id,)
    assert changes(stored_intake, reported.child_id) == [*merged_history, "merged_into"]
    assert changes(stored_intake, a.child_id)[-1] == "absorbed"
    (event,) = [e for e in contract_events(stored_intake) if isinstance(e, ChildrenMerged)]
    assert (event.data.child_id, event.data.merged_child_id) == (a.child_id, reported.child_id)
    assert event.subject == str(care_case_id(a.child_id)) == str(event.data.case_id)
    assert event.data.merged_by == "civil_affairs"
    assert stored_intake.pending_duplicates() == []
    assert stored_intake.pending_duplicates(status="confirmed")[0]["resolved_by"] == "civil_affairs"


def test_confirming_twice_is_a_conflict(intake, fake):
    first, second = twins_in_writing(fake)
    a = intake.register_children([register(first)])[0]
    b = intake.register_children([register(second)])[0]
    intake.confirm_duplicate(a.child_id, b.child_id, by="civil_affairs")
    before = stored(intake)

    with pytest.raises(Conflict):
        intake.confirm_duplicate(a.child_id, b.child_id, by="civil_affairs")
    with pytest.raises(Conflict):
        intake.confirm_duplicate(b.child_id, a.child_id, by="civil_affairs")

    assert stored(intake) == before


def test_a_child_cannot_be_merged_into_itself(intake, fake):
    a = intake.register_children([register(identity(fake))])[0]
    with pytest.raises(Unprocessable):
        intake.confirm_duplicate(a.child_id, a.child_id, by="civil_affairs")


def test_a_report_about_a_merged_child_goes_to_the_survivor(intake, fake):
    first, second = twins_in_writing(fake)
    a = intake.register_children([register(first)])[0]
    b = intake.register_children([register(second)])[0]
    intake.confirm_duplicate(a.child_id, b.child_id, by="civil_affairs")

    filed = intake.file_report(a_report(second))

    assert filed.child_id == a.child_id
    assert filed.case_id in intake.get_child(a.child_id).case_ids


def test_a_survivor_without_facts_takes_the_merged_files_facts_and_re_derives(intake, fake):
    first, second = twins_in_writing(fake)
    reported = intake.file_report(a_report(first))  # known from a report only: no facts
    b = intake.register_children([register(second, parents_away(add_months(TODAY, -4)))])[0]

    intake.confirm_duplicate(reported.child_id, b.child_id, by="civil_affairs")

    survivor = intake.get_child(reported.child_id)
    assert survivor.facts == parents_away(add_months(TODAY, -4)).stored()
    assert survivor.categories == ["left_behind"]


def test_dismissing_a_duplicate_keeps_both_files_and_is_not_flagged_again(intake, fake):
    first, second = twins_in_writing(fake)
    a = intake.register_children([register(first)])[0]
    b = intake.register_children([register(second)])[0]

    intake.dismiss_duplicate(a.child_id, b.child_id, by="village", note="双胞胎")
    again = intake.register_children([register(second), register(first)])

    assert intake.get_child(b.child_id).duplicates[a.child_id]["status"] == "dismissed"
    assert intake.pending_duplicates() == []
    assert all(r.duplicates == () for r in again)
    with pytest.raises(Conflict):
        intake.dismiss_duplicate(b.child_id, a.child_id, by="village")


def test_dismissing_a_pair_never_flagged_is_not_found(intake, fake):
    a = intake.register_children([register(identity(fake))])[0]
    b = intake.register_children([register(identity(fake))])[0]
    with pytest.raises(NotFound):
        intake.dismiss_duplicate(a.child_id, b.child_id, by="village")


def test_recording_facts_on_a_merged_file_is_a_conflict(intake, fake):
    first, second = twins_in_writing(fake)
    a = intake.register_children([register(first)])[0]
    b = intake.register_children([register(second)])[0]
    intake.confirm_duplicate(a.child_id, b.child_id, by="civil_affairs")

    with pytest.raises(Conflict):
        intake.record_facts(b.child_id, PARENTS_AT_HOME, "village", "home_visit")


# --- the ChildFileUpdated event -----------------------------------------------------------------------------------


def test_child_file_updated_carries_the_care_case_categories_and_visit_reasons(stored_intake, fake):
    facts = parents_away(add_months(TODAY, -4), disability={"has_disability": True},
                         psychological_abnormality=True)
    child_id = stored_intake.register_children([register(identity(fake), facts)])[0].child_id

    (event,) = file_updates(stored_intake, child_id)

    assert event.subject == str(care_case_id(child_id))
    assert event.data.case_id == care_case_id(child_id)
    assert event.data.categories == event.data.added_categories == ("left_behind", "disabled")
    assert event.data.parents_away
    assert event.data.parents_away_since == add_months(TODAY, -4)
    assert event.data.frequent_visit_reasons == ("child_disability", "child_psychological_abnormality")
    assert event.data.has_entrusted_caregiver
    assert event.actoragency == "village"


def test_file_events_carry_no_name_id_number_or_notes(intake, fake):
    birth = date(2015, 4, 9)
    who = identity(fake, id_card_number=f"330382{birth:%Y%m%d}0021", birth_date=birth)
    facts = parents_away(add_months(TODAY, -4), health_notes="先天性心脏病术后", psychological_notes="夜间哭闹")
    a = intake.register_children([register(who, facts)])[0]
    b = intake.register_children([register(dataclasses.replace(who, id_card_number=None, name=who.name + "儿"))])[0]
    intake.confirm_duplicate(a.child_id, b.child_id, by="civil_affairs")

    text = " ".join(e.model_dump_json() for e in contract_events(intake))

    assert who.name not in text
    assert "330382" not in text
    assert "心脏病" not in text
    assert "哭闹" not in text


def test_an_unknown_agency_is_refused_before_anything_is_stored(intake, fake):
    with pytest.raises(Unprocessable) as refused:
        intake.register_children([register(identity(fake), by="mayor")])

    assert [e.field for e in refused.value.errors] == ["registered_by"]
    assert stored(intake) == 0


# --- routing of the file's new categories (contracts/routing_rules.yaml) ------------------------------------------


def routed(intake: IntakeApplication, child_id: Any) -> set[tuple[str, str]]:
    planned = plan_referrals(load_rules(), file_updates(intake, child_id))
    return {(r.owner_agency.value, r.referral_type) for r in planned}


def test_newly_derived_categories_are_routed_to_the_responsible_agencies(intake, fake):
    facts = parents_away(add_months(TODAY, -4), caregiver=False, disability={"has_disability": True},
                         needs=[{"kind": "medical", "source": "medical_assistance"},
                                {"kind": "education", "source": "education_assistance"}])

    child_id = intake.register_children([register(identity(fake), facts)])[0].child_id

    assert routed(intake, child_id) == {
        ("civil_affairs", "guardianship_assessment"), ("village", "guardianship_follow_up"),
        ("civil_affairs", "relief_assessment"), ("health", "medical_assistance"),
        ("education", "education_assistance"), ("dpf", "rehabilitation_and_assistive_devices"),
        ("village", "child_director_assignment"), ("village", "entrusted_care_check"), ("hrss", "source_assistance"),
    }


def test_a_file_update_that_only_removes_categories_is_routed_nowhere(intake, fake):
    child_id = intake.register_children([register(identity(fake), parents_away(add_months(TODAY, -4)))])[0].child_id
    intake.record_facts(child_id, PARENTS_AT_HOME, "village", "home_visit")

    last = file_updates(intake, child_id)[-1]

    assert last.data.removed_categories == ("left_behind",)
    assert plan_referrals(load_rules(), [last]) == []

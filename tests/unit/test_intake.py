"""Intake on every store: one child one file, one open case per child, idempotent filing, a ReportFiled that
carries codes and ids and no personal data."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from faker import Faker
from fastapi.testclient import TestClient

from contracts.events import ReportFiled
from huhang.bootstrap import service_api
from huhang.problems import Unprocessable
from huhang.settings import Settings
from services.intake.application import ChildFacts, FiledReport, FileReport, IntakeApplication
from services.intake.integration import to_integration_events
from services.intake.main import IntakeService, build
from services.intake.schemas import REPORT_EXAMPLE
from tests.support.auth import client_for

OBSERVATIONS = "连续三天未到校，家访发现孩子独自在家，祖母卧病，家中缺乏食物。"


@pytest.fixture
def fake() -> Faker:
    faker = Faker("zh_CN")
    faker.seed_instance(20261129)
    return faker


@pytest.fixture
def service(any_storage_settings: Settings) -> Iterator[IntakeService]:
    built = build(any_storage_settings)
    yield built
    built.application.close()
    built.positions.engine.dispose()


@pytest.fixture
def intake(service: IntakeService) -> IntakeApplication:
    return service.application


def id_card_number(fake: Faker, birth_date: date) -> str:
    """A synthetic 18-character number of the right shape: area, birth date, sequence, GB 11643 check digit."""
    body = f"{fake.numerify('33####')}{birth_date:%Y%m%d}{fake.numerify('###')}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def a_child(fake: Faker, *, with_id_card: bool = True) -> ChildFacts:
    birth_date = fake.date_of_birth(minimum_age=4, maximum_age=14)
    return ChildFacts(
        name=fake.name(), sex="female", birth_date=birth_date,
        id_card_number=id_card_number(fake, birth_date) if with_id_card else None,
        township=f"{fake.last_name()}桥镇", village=f"{fake.last_name()}家村", categories=("left_behind",),
    )


def a_report(child: ChildFacts, *, key: str | None = None, **changes: Any) -> FileReport:
    fields: dict[str, Any] = {
        "reporter_agency": "education", "reporter_role": "teacher", "reporter_reference": "T-0421",
        "child": child, "concern_category": "guardian_neglect", "urgency": "urgent",
        "observations": OBSERVATIONS, "observed_on": date.today() - timedelta(days=1), "idempotency_key": key,
    }
    fields.update(changes)
    fields["fingerprint"] = hashlib.sha256(repr(sorted(fields.items(), key=lambda kv: kv[0])).encode()).hexdigest()
    return FileReport(**fields)


def stored(intake: IntakeApplication) -> int:
    return intake.recorder.max_notification_id() or 0


def report_filed_events(intake: IntakeApplication) -> list[ReportFiled]:
    out: list[Any] = []
    for notification in intake.recorder.select_notifications(start=None, limit=1000):
        out.extend(e for e in to_integration_events(intake.mapper.to_domain_event(notification)))
    return [e for e in out if isinstance(e, ReportFiled)]


# --- one child, one file; one open case ---------------------------------------------------------------------------


def test_filing_a_report_registers_the_child(intake, fake):
    child = a_child(fake)

    filed = intake.file_report(a_report(child))

    registered = intake.get_child(filed.child_id)
    assert (registered.name, registered.birth_date, registered.village) == (child.name, child.birth_date, child.village)
    assert registered.case_ids == [filed.case_id]


def test_filing_a_report_opens_a_case_holding_the_report(intake, fake):
    filed = intake.file_report(a_report(a_child(fake)))

    case = intake.get_case(filed.case_id)
    assert case["child_id"] == filed.child_id
    assert [r["report_id"] for r in case["reports"]] == [filed.report_id]


def test_filing_a_report_is_not_a_replay(intake, fake):
    assert intake.file_report(a_report(a_child(fake))).replayed is False


def test_a_second_report_with_the_same_id_card_number_goes_to_the_same_child_and_case(intake, fake):
    child = a_child(fake)
    first = intake.file_report(a_report(child))

    # Another reporter spells the name differently and gives the village's other name: the id card decides.
    same_card = dataclasses.replace(child, name=f"{child.name}儿", village="新村")
    second = intake.file_report(a_report(same_card, reporter_agency="health", reporter_role="doctor"))

    assert (second.child_id, second.case_id) == (first.child_id, first.case_id)


def test_an_id_card_number_in_lower_case_identifies_the_same_child(intake, fake):
    child = dataclasses.replace(a_child(fake), id_card_number="33038220160512002X")
    first = intake.file_report(a_report(child))

    second = intake.file_report(a_report(dataclasses.replace(child, id_card_number="33038220160512002x")))

    assert second.child_id == first.child_id


def test_a_second_report_matching_name_birth_date_sex_and_place_goes_to_the_same_child_and_case(intake, fake):
    child = a_child(fake, with_id_card=False)
    first = intake.file_report(a_report(child))

    second = intake.file_report(a_report(dataclasses.replace(child), concern_category="school_dropout"))

    assert (second.child_id, second.case_id) == (first.child_id, first.case_id)


def test_a_second_report_about_the_same_child_is_added_to_the_case(intake, fake):
    child = a_child(fake)
    first = intake.file_report(a_report(child))

    second = intake.file_report(a_report(child, concern_category="school_dropout"))

    reports = intake.get_case(first.case_id)["reports"]
    assert [r["report_id"] for r in reports] == [first.report_id, second.report_id]


def test_a_second_report_adds_newly_reported_categories_to_the_reporters_observation_not_the_file(intake, fake):
    child = a_child(fake)
    first = intake.file_report(a_report(child))

    intake.file_report(a_report(dataclasses.replace(child, categories=("single_parent",))))

    registered = intake.get_child(first.child_id)
    assert registered.reported_categories == ["left_behind", "single_parent"]
    assert registered.categories == []  # the file's own categories are derived from its facts


def test_a_different_child_gets_a_different_file_and_case(intake, fake):
    first = intake.file_report(a_report(a_child(fake)))

    second = intake.file_report(a_report(a_child(fake)))

    assert second.child_id != first.child_id
    assert second.case_id != first.case_id


@pytest.mark.parametrize(
    "difference",
    [{"name": "王小明"}, {"birth_date": date(2015, 1, 1)}, {"sex": "male"}, {"township": "城关镇"},
     {"village": "东山村"}],
    ids=lambda d: next(iter(d)),
)
def test_without_an_id_card_a_child_differing_in_one_identity_fact_is_a_different_child(intake, fake, difference):
    child = a_child(fake, with_id_card=False)
    first = intake.file_report(a_report(child))

    second = intake.file_report(a_report(dataclasses.replace(child, **difference)))

    assert second.child_id != first.child_id


# --- idempotency --------------------------------------------------------------------------------------------------


def test_repeating_a_report_with_the_same_idempotency_key_returns_the_first_answer(intake, fake):
    command = a_report(a_child(fake), key="retry-0001")
    first = intake.file_report(command)

    again = intake.file_report(command)

    assert again == FiledReport(first.report_id, first.case_id, first.child_id, replayed=True)


def test_repeating_a_report_with_the_same_idempotency_key_stores_nothing_new(intake, fake):
    command = a_report(a_child(fake), key="retry-0002")
    intake.file_report(command)
    before = stored(intake)

    intake.file_report(command)

    assert stored(intake) == before


def test_reusing_an_idempotency_key_with_a_different_body_is_unprocessable(intake, fake):
    child = a_child(fake)
    intake.file_report(a_report(child, key="retry-0003"))

    with pytest.raises(Unprocessable) as refused:
        intake.file_report(a_report(child, key="retry-0003", urgency="immediate_danger"))

    assert [e.field for e in refused.value.errors] == ["Idempotency-Key"]


def test_reusing_an_idempotency_key_with_a_different_body_stores_nothing(intake, fake):
    child = a_child(fake)
    intake.file_report(a_report(child, key="retry-0004"))
    before = stored(intake)

    with pytest.raises(Unprocessable):
        intake.file_report(a_report(child, key="retry-0004", urgency="immediate_danger"))

    assert stored(intake) == before


def test_the_same_idempotency_key_from_another_agency_files_another_report(intake, fake):
    child = a_child(fake)
    first = intake.file_report(a_report(child, key="shared-0001"))

    second = intake.file_report(a_report(child, key="shared-0001", reporter_agency="police",
                                         reporter_role="police_officer"))

    assert second.replayed is False
    assert second.report_id != first.report_id


@pytest.fixture
def client(any_storage_settings: Settings, service: IntakeService) -> TestClient:
    return client_for(service_api(any_storage_settings, service))


def example_body(fake: Faker) -> dict[str, Any]:
    return {**REPORT_EXAMPLE, "child": {**REPORT_EXAMPLE["child"], "name": fake.name()}}


def test_a_retried_post_with_the_same_idempotency_key_answers_the_first_report_as_a_replay(client, intake, fake):
    body = example_body(fake)
    first = client.post("/v1/reports", json=body, headers={"Idempotency-Key": "http-0001"})
    before = stored(intake)

    again = client.post("/v1/reports", json=body, headers={"Idempotency-Key": "http-0001"})

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert stored(intake) == before


def test_a_post_reusing_an_idempotency_key_with_another_body_answers_422_naming_the_header(client, intake, fake):
    body = example_body(fake)
    client.post("/v1/reports", json=body, headers={"Idempotency-Key": "http-0002"})
    before = stored(intake)

    answer = client.post("/v1/reports", json={**body, "urgency": "routine"}, headers={"Idempotency-Key": "http-0002"})

    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["Idempotency-Key"]
    assert stored(intake) == before


# --- the ReportFiled integration event ----------------------------------------------------------------------------


def test_filing_a_report_publishes_one_report_filed_event(intake, fake):
    intake.file_report(a_report(a_child(fake)))

    assert len(report_filed_events(intake)) == 1


def test_report_filed_carries_case_child_categories_and_codes(intake, fake):
    child = dataclasses.replace(a_child(fake), categories=("left_behind", "disabled"))
    filed = intake.file_report(a_report(child, concern_category="guardian_abuse", urgency="immediate_danger"))

    (event,) = report_filed_events(intake)

    assert event.subject == str(filed.case_id)
    assert (event.data.report_id, event.data.case_id, event.data.child_id) == (
        filed.report_id, filed.case_id, filed.child_id,
    )
    assert set(event.data.child_categories) == {"left_behind", "disabled"}
    assert (event.data.concern_category, event.data.urgency) == ("guardian_abuse", "immediate_danger")
    assert (event.data.reporter_agency, event.data.reporter_role) == ("education", "teacher")
    assert (event.data.township, event.data.village) == (child.township, child.village)
    assert event.actoragency == "education"


def test_report_filed_contains_no_name_id_card_number_or_observations(intake, fake):
    child = a_child(fake)
    intake.file_report(a_report(child))

    (event,) = report_filed_events(intake)

    text = event.model_dump_json()
    assert child.name not in text
    assert child.id_card_number is not None
    assert child.id_card_number not in text
    assert child.id_card_number[:14] not in text
    assert OBSERVATIONS not in text
    assert "祖母卧病" not in text
    assert "T-0421" not in text


def test_mapping_the_same_stored_event_twice_gives_the_same_event_id(intake, fake):
    intake.file_report(a_report(a_child(fake)))

    first, second = report_filed_events(intake), report_filed_events(intake)

    assert [e.id for e in first] == [e.id for e in second]


def test_each_report_gets_its_own_report_filed_event_id(intake, fake):
    child = a_child(fake)
    intake.file_report(a_report(child))
    intake.file_report(a_report(child, concern_category="school_dropout"))

    ids = [e.id for e in report_filed_events(intake)]

    assert len(ids) == len(set(ids)) == 2

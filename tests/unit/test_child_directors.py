"""Child directors (儿童主任): the roster per village, one director per child, workload, training record and the
coverage report (a director per village, another over 30 covered children, training every calendar year)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from contracts.cases import care_case_id
from contracts.events import (
    ChildFileUpdated,
    ChildFileUpdatedData,
    ChildrenMerged,
    ChildrenMergedData,
    ReportFiled,
    ReportFiledData,
)
from huhang.bootstrap import service_api
from huhang.settings import Settings
from services.guardianship.directors import (
    AppointDirector,
    ChildDirectors,
    DirectorRoster,
    RecordTraining,
    village_flags,
)
from services.guardianship.ladder_schemas import china_today
from services.guardianship.main import GuardianshipService, build
from services.guardianship.risk import GuardianshipRiskFactor as F
from tests.support.auth import client_for

TOWNSHIP, VILLAGE = "虹桥镇", "溪西村"
TODAY = china_today()
THIS_YEAR = TODAY.year


def child_file(
    child_id: uuid.UUID, township: str = TOWNSHIP, village: str = VILLAGE,
    categories: Sequence[str] = ("left_behind",), frequent: Sequence[str] = (),
) -> ChildFileUpdated:
    event_id = uuid.uuid4()
    return ChildFileUpdated(
        id=event_id, source="/huhang/intake", subject=str(care_case_id(child_id)), time=datetime.now(UTC),
        dataschema=ChildFileUpdated.schema_uri(), correlationid=event_id, actoragency=Agency.village,
        data=ChildFileUpdatedData(
            child_id=child_id, case_id=care_case_id(child_id), township=township, village=village,
            categories=tuple(categories), added_categories=tuple(categories), removed_categories=(),
            category_reasons=(), parents_away=True, parents_away_since=date(2025, 3, 1),
            frequent_visit_reasons=tuple(frequent), has_entrusted_caregiver=True,
        ),
    )


def children_merged(survivor: uuid.UUID, merged: uuid.UUID) -> ChildrenMerged:
    event_id = uuid.uuid4()
    return ChildrenMerged(
        id=event_id, source="/huhang/intake", subject=str(care_case_id(survivor)), time=datetime.now(UTC),
        dataschema=ChildrenMerged.schema_uri(), correlationid=event_id, actoragency=Agency.civil_affairs,
        data=ChildrenMergedData(
            child_id=survivor, merged_child_id=merged, case_id=care_case_id(survivor), township=TOWNSHIP,
            village=VILLAGE, merged_by=Agency.civil_affairs,
        ),
    )


@pytest.fixture
def service() -> GuardianshipService:
    return build(Settings(storage="memory"))


@pytest.fixture
def client(service: GuardianshipService) -> TestClient:
    return client_for(service_api(service.settings, service))


def known_child(service: GuardianshipService, **changes: Any) -> uuid.UUID:
    child_id = uuid.uuid4()
    service.known_children.handle([child_file(child_id, **changes)])
    return child_id


def appoint(client: TestClient, key: str | None = None, **changes: Any) -> dict[str, Any]:
    body = {"name": "陈丽华", "phone": "13857712345", "township": TOWNSHIP, "village": VILLAGE,
            "appointed_on": "2024-04-15", **changes}
    response = client.post("/v1/child-directors", json=body, headers={"Idempotency-Key": key} if key else {})
    assert response.status_code == 201, response.json()
    return response.json()


def assign(client: TestClient, child_id: uuid.UUID, director_id: str) -> Any:
    return client.put(f"/v1/children/{child_id}/child-director", json={"director_id": director_id})


def leave(client: TestClient, director_id: str, left_on: date = TODAY) -> Any:
    return client.post(f"/v1/child-directors/{director_id}/leave", json={"left_on": left_on.isoformat()})


def train(client: TestClient, director_id: str, trained_on: date, **changes: Any) -> Any:
    body = {"trained_on": trained_on.isoformat(), "course": "儿童主任全覆盖培训", "hours": 8, **changes}
    return client.post(f"/v1/child-directors/{director_id}/trainings", json=body)


def coverage(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/child-directors/coverage", params=params)
    assert response.status_code == 200, response.json()
    return response.json()


def assert_problem(response: Any, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.json()
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert field in [e["field"] for e in body["errors"]], body
    return body


# --- the roster ---------------------------------------------------------------------------------------------------


def test_an_appointed_director_is_on_the_village_roster(client):
    director = appoint(client)

    assert director["name"] == "陈丽华"
    assert (director["township"], director["village"], director["children"]) == (TOWNSHIP, VILLAGE, 0)
    roster = client.get("/v1/child-directors", params={"township": TOWNSHIP, "village": VILLAGE}).json()
    assert [d["director_id"] for d in roster] == [director["director_id"]]
    assert client.get("/v1/child-directors", params={"village": "东风村"}).json() == []
    got = client.get(f"/v1/child-directors/{director['director_id']}")
    assert got.status_code == 200
    assert got.json()["phone"] == "13857712345"


def test_the_phone_is_optional(client):
    director = appoint(client, phone=None)

    assert director["phone"] is None


@pytest.mark.parametrize(("field", "value"), [
    ("phone", "12345"), ("name", ""), ("name", "陈\n丽华"), ("village", ""),
    ("appointed_on", (TODAY + timedelta(days=1)).isoformat()),
])
def test_a_bad_appointment_answers_422_naming_the_field(client, field, value):
    body = {"name": "陈丽华", "township": TOWNSHIP, "village": VILLAGE, "appointed_on": "2024-04-15", field: value}

    assert_problem(client.post("/v1/child-directors", json=body), 422, field)
    assert client.get("/v1/child-directors").json() == []


def test_an_unknown_director_answers_404_problem(client):
    assert_problem(client.get(f"/v1/child-directors/{uuid.uuid4()}"), 404, "director_id")


def test_a_retried_appointment_with_the_same_key_appoints_one_director(client):
    first = appoint(client, key="appoint-1")
    response = client.post("/v1/child-directors", headers={"Idempotency-Key": "appoint-1"}, json={
        "name": "陈丽华", "phone": "13857712345", "township": TOWNSHIP, "village": VILLAGE,
        "appointed_on": "2024-04-15",
    })

    assert response.status_code == 201
    assert response.headers["Idempotent-Replayed"] == "true"
    assert response.json()["director_id"] == first["director_id"]
    assert len(client.get("/v1/child-directors").json()) == 1


def test_the_same_key_for_another_appointment_answers_422_naming_the_key(client):
    appoint(client, key="appoint-2")
    response = client.post("/v1/child-directors", headers={"Idempotency-Key": "appoint-2"}, json={
        "name": "王建国", "township": TOWNSHIP, "village": VILLAGE, "appointed_on": "2024-04-15",
    })

    assert_problem(response, 422, "Idempotency-Key")


# --- one director per child ---------------------------------------------------------------------------------------


def test_assigning_a_child_gives_it_its_director(client, service):
    director = appoint(client)
    child_id = known_child(service)

    response = assign(client, child_id, director["director_id"])

    assert response.status_code == 200
    assert response.json() == {"child_id": str(child_id), "director_id": director["director_id"],
                               "previous_director_id": None}
    assert client.get(f"/v1/children/{child_id}/child-director").json()["director_id"] == director["director_id"]
    detail = client.get(f"/v1/child-directors/{director['director_id']}").json()
    assert detail["child_ids"] == [str(child_id)]
    assert detail["children"] == 1


def test_reassigning_a_child_moves_it_to_the_new_director(client, service):
    first, second = appoint(client), appoint(client, name="王建国")
    child_id = known_child(service)
    assign(client, child_id, first["director_id"])

    response = assign(client, child_id, second["director_id"])

    assert response.json()["previous_director_id"] == first["director_id"]
    assert client.get(f"/v1/child-directors/{first['director_id']}").json()["child_ids"] == []
    assert client.get(f"/v1/child-directors/{second['director_id']}").json()["child_ids"] == [str(child_id)]
    counts = {d["director_id"]: d["children"] for d in client.get("/v1/child-directors").json()}
    assert counts == {first["director_id"]: 0, second["director_id"]: 1}


def test_assigning_the_same_director_again_changes_nothing(client, service):
    director = appoint(client)
    child_id = known_child(service)
    assign(client, child_id, director["director_id"])

    again = assign(client, child_id, director["director_id"])

    assert again.status_code == 200
    assert again.json()["previous_director_id"] == director["director_id"]
    assert client.get(f"/v1/child-directors/{director['director_id']}").json()["child_ids"] == [str(child_id)]


def test_a_director_who_left_gets_no_assignments(client, service):
    director = appoint(client)
    assert leave(client, director["director_id"]).status_code == 200

    body = assert_problem(assign(client, known_child(service), director["director_id"]), 409, "director_id")
    assert "left" in body["errors"][0]["reason"]


def test_leaving_releases_the_children_for_reassignment(client, service):
    director = appoint(client)
    children = [known_child(service) for _ in range(2)]
    for child_id in children:
        assign(client, child_id, director["director_id"])

    response = leave(client, director["director_id"])

    assert response.status_code == 200
    assert sorted(response.json()["released_children"]) == sorted(str(c) for c in children)
    assert all(client.get(f"/v1/children/{c}/child-director").json()["director_id"] is None for c in children)
    assert client.get("/v1/child-directors").json() == []
    left = client.get("/v1/child-directors", params={"include_left": True}).json()
    assert [(d["left_on"], d["children"]) for d in left] == [(TODAY.isoformat(), 0)]


def test_a_retried_leave_answers_the_same_and_another_date_answers_409(client, service):
    director = appoint(client)
    child_id = known_child(service)
    assign(client, child_id, director["director_id"])
    first = leave(client, director["director_id"])

    again = leave(client, director["director_id"])
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert_problem(leave(client, director["director_id"], TODAY - timedelta(days=1)), 409, "left_on")


def test_leaving_before_the_appointment_answers_422_naming_left_on(client):
    director = appoint(client, appointed_on="2024-04-15")

    assert_problem(leave(client, director["director_id"], date(2024, 4, 14)), 422, "left_on")
    assert leave(client, director["director_id"], date(2024, 4, 15)).status_code == 200


def test_a_child_unknown_to_guardianship_answers_404_naming_child_id(client):
    assert_problem(assign(client, uuid.uuid4(), appoint(client)["director_id"]), 404, "child_id")


def test_an_unknown_director_answers_422_naming_director_id(client, service):
    assert_problem(assign(client, known_child(service), str(uuid.uuid4())), 422, "director_id")


def test_a_director_of_another_village_answers_422_naming_director_id(client, service):
    director = appoint(client, village="东风村")

    assert_problem(assign(client, known_child(service), director["director_id"]), 422, "director_id")


def test_a_merged_child_file_is_not_assigned(client, service):
    child_id = known_child(service)
    service.known_children.handle([children_merged(uuid.uuid4(), child_id)])

    assert_problem(assign(client, child_id, appoint(client)["director_id"]), 422, "child_id")


def test_a_malformed_assignment_answers_422_naming_director_id(client, service):
    response = client.put(f"/v1/children/{known_child(service)}/child-director", json={"director_id": "nobody"})

    assert_problem(response, 422, "director_id")


# --- workload -----------------------------------------------------------------------------------------------------


def test_the_workload_counts_the_children_on_the_more_frequent_visit_regime(client, service):
    director = appoint(client)
    ordinary = known_child(service)
    disabled = known_child(service, categories=("disabled",), frequent=("child_disability",))
    at_risk = known_child(service)
    report = _report(at_risk)
    service.known_cases.handle([report])
    service.application.assess(at_risk, report.data.case_id, [F.guardian_serious_illness], Agency.civil_affairs)
    for child_id in (ordinary, disabled, at_risk):
        assign(client, child_id, director["director_id"])
    service.known_children.handle([children_merged(uuid.uuid4(), ordinary)])  # merged after its assignment

    workload = client.get(f"/v1/child-directors/{director['director_id']}").json()["workload"]

    assert workload == {"children": 2, "frequent_visits": 2, "not_yet_known": 0, "merged_children": [str(ordinary)]}


def _report(child_id: uuid.UUID) -> ReportFiled:
    event_id = uuid.uuid4()
    return ReportFiled(
        id=event_id, source="/huhang/intake", subject=str(uuid.uuid4()), time=datetime.now(UTC),
        dataschema=ReportFiled.schema_uri(), correlationid=event_id, actoragency=Agency.village,
        data=ReportFiledData(
            report_id=uuid.uuid4(), case_id=uuid.uuid4(), child_id=child_id, reporter_agency=Agency.village,
            reporter_role="child_director", concern_category="lack_of_care", urgency="routine",
            child_categories=("left_behind",), township=TOWNSHIP, village=VILLAGE, observed_on=TODAY,
        ),
    )


# --- trainings ----------------------------------------------------------------------------------------------------


def test_a_training_is_kept_in_the_director_s_record(client):
    director = appoint(client)

    response = train(client, director["director_id"], date(THIS_YEAR, 1, 1))

    assert response.status_code == 201
    [training] = client.get(f"/v1/child-directors/{director['director_id']}").json()["trainings"]
    assert training == {**response.json(), "trained_on": f"{THIS_YEAR}-01-01"}


def test_the_same_course_on_the_same_day_answers_409_naming_course(client):
    director = appoint(client)
    train(client, director["director_id"], date(THIS_YEAR, 1, 1))

    assert_problem(train(client, director["director_id"], date(THIS_YEAR, 1, 1)), 409, "course")


def test_a_retried_training_records_it_once(client):
    director = appoint(client)
    training_id = str(uuid.uuid4())
    first = train(client, director["director_id"], date(THIS_YEAR, 1, 1), training_id=training_id)

    again = train(client, director["director_id"], date(THIS_YEAR, 1, 1), training_id=training_id)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(client.get(f"/v1/child-directors/{director['director_id']}").json()["trainings"]) == 1
    assert_problem(train(client, director["director_id"], date(THIS_YEAR, 1, 1), training_id=training_id,
                         course="心理健康"), 409, "training_id")


def test_the_same_training_key_for_another_training_answers_422_naming_the_key(client):
    director = appoint(client)
    url = f"/v1/child-directors/{director['director_id']}/trainings"
    body = {"trained_on": f"{THIS_YEAR}-01-01", "course": "儿童主任全覆盖培训", "hours": 8}
    assert client.post(url, json=body, headers={"Idempotency-Key": "t-1"}).status_code == 201
    assert client.post(url, json=body, headers={"Idempotency-Key": "t-1"}).status_code == 201

    assert_problem(client.post(url, json={**body, "hours": 4}, headers={"Idempotency-Key": "t-1"}),
                   422, "Idempotency-Key")


def test_no_training_is_recorded_after_the_director_left(client):
    director = appoint(client)
    leave(client, director["director_id"], TODAY - timedelta(days=1))

    assert_problem(train(client, director["director_id"], TODAY), 409, "trained_on")


@pytest.mark.parametrize(("field", "value"), [("hours", 0), ("hours", 201), ("course", " ")])
def test_a_bad_training_answers_422_naming_the_field(client, field, value):
    director = appoint(client)

    assert_problem(train(client, director["director_id"], TODAY, **{field: value}), 422, field)


# --- coverage -----------------------------------------------------------------------------------------------------


def covered_children(service: GuardianshipService, n: int, village: str = VILLAGE) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    service.known_children.handle([child_file(i, village=village) for i in ids])
    return ids


def village(report: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [v for v in report["villages"] if v["village"] == name]
    return found


@pytest.mark.parametrize(("covered", "directors", "flags"), [
    (0, 0, ()), (1, 0, ("no_director",)), (30, 1, ()), (31, 1, ("needs_another_director",)), (31, 2, ()),
    (31, 0, ("no_director", "needs_another_director")),
])
def test_village_flags(covered, directors, flags):
    assert village_flags(covered, directors) == flags


def test_a_village_with_exactly_30_covered_children_and_one_director_is_not_flagged(client, service):
    covered_children(service, 30)
    appoint(client)

    report = coverage(client)

    assert village(report, VILLAGE) == {"township": TOWNSHIP, "village": VILLAGE, "covered_children": 30,
                                        "directors": 1, "flags": []}
    assert report["villages_needing_another_director"] == []


def test_a_village_with_31_covered_children_and_one_director_needs_another(client, service):
    covered_children(service, 31)
    appoint(client)

    report = coverage(client)

    assert village(report, VILLAGE)["flags"] == ["needs_another_director"]
    assert [v["village"] for v in report["villages_needing_another_director"]] == [VILLAGE]
    appoint(client, name="王建国")
    assert coverage(client)["villages_needing_another_director"] == []


def test_children_without_a_category_or_merged_away_are_not_counted(client, service):
    ids = covered_children(service, 31)
    service.known_children.handle([children_merged(ids[0], ids[1])])
    known_child(service, categories=())
    appoint(client)

    assert village(coverage(client), VILLAGE)["covered_children"] == 30


def test_a_village_with_covered_children_and_no_director_is_reported(client, service):
    covered_children(service, 2, village="东风村")
    director = appoint(client, village="东风村")
    leave(client, director["director_id"])

    report = coverage(client)

    assert [(v["village"], v["covered_children"]) for v in report["villages_without_director"]] == [("东风村", 2)]


def test_the_coverage_report_keeps_to_the_township_asked(client, service):
    covered_children(service, 1)
    appoint(client, township="柳市镇", village="东风村")

    report = coverage(client, township="柳市镇")

    assert [(v["township"], v["village"], v["flags"]) for v in report["villages"]] == [("柳市镇", "东风村", [])]
    assert report["villages_without_director"] == []


def test_a_director_trained_on_31_december_of_last_year_is_untrained_this_year(client):
    director = appoint(client)
    train(client, director["director_id"], date(THIS_YEAR - 1, 12, 31))

    untrained = coverage(client, year=THIS_YEAR)["untrained_directors"]

    assert untrained == [{"director_id": director["director_id"], "name": "陈丽华", "township": TOWNSHIP,
                          "village": VILLAGE, "last_trained_on": f"{THIS_YEAR - 1}-12-31"}]
    assert coverage(client, year=THIS_YEAR - 1)["untrained_directors"] == []


def test_a_director_trained_on_1_january_is_trained_this_year(client):
    director = appoint(client)
    train(client, director["director_id"], date(THIS_YEAR, 1, 1))

    report = coverage(client)

    assert report["untrained_directors"] == []
    assert (report["year"], report["directors_in_office"]) == (THIS_YEAR, 1)


def test_the_training_check_of_a_year_counts_the_directors_in_office_at_its_end(client):
    appoint(client, appointed_on=f"{THIS_YEAR}-01-01")
    gone = appoint(client, name="王建国", appointed_on=f"{THIS_YEAR - 2}-03-01")
    leave(client, gone["director_id"], date(THIS_YEAR - 1, 12, 31))

    last_year = coverage(client, year=THIS_YEAR - 1)

    assert last_year["untrained_directors"] == []  # one not yet appointed, one gone on its last day
    assert last_year["directors_in_office"] == 0
    assert [u["name"] for u in coverage(client, year=THIS_YEAR - 2)["untrained_directors"]] == ["王建国"]


def test_a_year_out_of_range_answers_422_naming_year(client):
    assert_problem(client.get("/v1/child-directors/coverage", params={"year": 1999}), 422, "query.year")


# --- the roster read model ----------------------------------------------------------------------------------------


def test_catching_up_again_changes_nothing_and_a_new_roster_converges(service):
    directors: ChildDirectors = service.child_directors
    appointed = directors.appoint(AppointDirector("陈丽华", None, TOWNSHIP, VILLAGE, date(2024, 4, 15), "f"))
    directors.record_training(appointed.director_id, RecordTraining(TODAY, "儿童主任全覆盖培训", 8, "t"))
    before = directors.roster.entries()

    assert directors.roster.catch_up() == 0
    assert directors.roster.entries() == before
    fresh = DirectorRoster(directors.roster.engine, service.application)
    assert fresh.catch_up() == 0  # the position is shared: nothing to do
    assert fresh.untrained(THIS_YEAR, TODAY) == []


def test_the_roster_on_every_store(any_storage_settings: Settings):
    service = build(any_storage_settings)
    directors: ChildDirectors = service.child_directors
    child_id = uuid.uuid4()
    service.known_children.handle([child_file(child_id)])
    first = directors.appoint(AppointDirector("陈丽华", "13857712345", TOWNSHIP, VILLAGE, date(2024, 4, 15), "a",
                                              idempotency_key="k-1"))
    assert directors.appoint(AppointDirector("陈丽华", "13857712345", TOWNSHIP, VILLAGE, date(2024, 4, 15), "a",
                                             idempotency_key="k-1")).replayed
    second = directors.appoint(AppointDirector("王建国", None, TOWNSHIP, VILLAGE, date(2025, 1, 2), "b"))
    directors.assign(child_id, first.director_id)
    directors.assign(child_id, second.director_id)
    directors.leave(first.director_id, TODAY, "resigned")

    assert [(e.name, e.children) for e in directors.roster_entries(TOWNSHIP, VILLAGE)] == [("王建国", 1)]
    assert directors.director_of(child_id) == second.director_id
    report = directors.coverage(THIS_YEAR, TODAY)
    assert [(v.covered_children, v.directors, v.flags) for v in report.villages] == [(1, 1, ())]
    assert [u.name for u in report.untrained_directors] == ["王建国"]


def test_every_request_body_example_is_valid():
    from services.guardianship.director_schemas import (
        DIRECTOR_EXAMPLE,
        TRAINING_EXAMPLE,
        DirectorAssign,
        DirectorCreate,
        DirectorLeave,
        TrainingCreate,
    )

    DirectorCreate.model_validate(DIRECTOR_EXAMPLE)
    TrainingCreate.model_validate(TRAINING_EXAMPLE)
    for model in (DirectorAssign, DirectorLeave):
        for example in model.model_json_schema()["examples"]:
            model.model_validate(example)

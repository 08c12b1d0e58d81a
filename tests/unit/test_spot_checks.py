"""The annual archive spot check (issue 8): a sample reproducible from its seed, drawn from the children the
indicators read models know as of the draw; results per checklist item and their summary (JSON and CSV); a failed
item routed to the township through the packaged routing rules; who may draw, record and read.

Real parts throughout: the indicators service's read models (SQLite, migrated, fed with ChildFileUpdated events
as the service's subscription feeds them), an eventsourcing application sealing per child, the referral service
opening what the rules demand, and an HTTP app with real tokens.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from faker import Faker
from fastapi import FastAPI
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from contracts.cases import care_case_id
from contracts.events import ChildFileUpdated, SpotCheckFollowUpRequired
from contracts.routing import load_rules
from huhang.access.access_log import AccessLog
from huhang.access.api import install_access
from huhang.access.case_access import CaseAccess
from huhang.auth.principal import Principal, Role
from huhang.bootstrap import build_router, build_services
from huhang.eventstore import ServiceApplication
from huhang.personal import child_keys
from huhang.settings import Settings
from huhang.storage import eventsourcing_env, temporary_engine
from huhang.web import create_api
from services.indicators import spot_checks_api
from services.indicators.migrate import migrate
from services.indicators.queries import SqlIndicatorQueries
from services.indicators.spot_checks import (
    IndicatorRoster,
    SpotChecks,
    TableRoster,
    draw_sample,
    load_checklist,
    sample_size,
    spot_check_events,
)
from services.indicators.store import IndicatorStore
from tests.support.auth import SYSTEM, bearer
from tests.support.principals import (
    AUDITOR,
    LEAD_OFFICER,
    LEAD_SUPERVISOR,
    POLICE_OFFICER,
    TOWNSHIP_OFFICER,
    WCWC_OFFICER,
)
from tests.support.referrals import referral_service
from workflows.routing import plan_referrals

RULES = load_rules()
HONGQIAO, LIUSHI = "虹桥镇", "柳市镇"
REGISTERED_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DRAWN_AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
fake = Faker("zh_CN")


def child_file_updated(child_id: uuid.UUID, township: str, village: str, at: datetime) -> ChildFileUpdated:
    event_id = uuid.uuid4()
    return ChildFileUpdated.model_validate({
        "id": event_id, "source": "/huhang/intake", "subject": str(care_case_id(child_id)), "time": at,
        "dataschema": ChildFileUpdated.schema_uri(), "correlationid": event_id, "actoragency": "village",
        "data": {
            "child_id": child_id, "case_id": care_case_id(child_id), "township": township, "village": village,
            "categories": ("left_behind",), "added_categories": ("left_behind",), "removed_categories": (),
            "category_reasons": ("parents_away_3_months",), "parents_away": True,
            "parents_away_since": date(2025, 12, 1), "frequent_visit_reasons": (), "has_entrusted_caregiver": True,
        },
    })


@dataclass
class Desk:
    store: IndicatorStore
    spot_checks: SpotChecks
    app: ServiceApplication
    children: dict[str, list[uuid.UUID]]

    def register(self, township: str, village: str, count: int, at: datetime) -> list[uuid.UUID]:
        ids = [uuid.uuid4() for _ in range(count)]
        self.store.handle([child_file_updated(c, township, village, at) for c in ids])
        self.children.setdefault(township, []).extend(ids)
        return ids

    def follow_ups(self) -> list[SpotCheckFollowUpRequired]:
        """The integration events of everything stored, read from the notification log (the outbox)."""
        notifications = self.app.recorder.select_notifications(start=None, limit=10_000)
        return [ce for n in notifications for ce in spot_check_events(self.app.mapper.to_domain_event(n))
                if isinstance(ce, SpotCheckFollowUpRequired)]


@pytest.fixture
def desk(memory_settings: Settings) -> Iterator[Desk]:
    engine = temporary_engine("indicators-spot-checks")
    migrate(engine)
    app = ServiceApplication(eventsourcing_env(memory_settings, "indicators"),
                             child_keys=child_keys(memory_settings, engine))
    built = Desk(IndicatorStore(engine), SpotChecks(app, TableRoster(engine)), app, {})
    built.register(HONGQIAO, "溪西村", 25, REGISTERED_AT)
    built.register(HONGQIAO, "溪东村", 15, REGISTERED_AT)
    built.register(LIUSHI, "长虹村", 12, REGISTERED_AT)
    yield built
    app.close()
    engine.dispose()


def draw(desk: Desk, seed: int | None, **changes: Any) -> Any:
    arguments: dict[str, Any] = {"year": 2026, "townships": [HONGQIAO, LIUSHI], "size": 6, "rate": None,
                                 "seed": seed, "as_of": DRAWN_AT, "drawn_by": "acct-ca-supervisor",
                                 "agency": "civil_affairs"}
    return desk.spot_checks.draw(**{**arguments, **changes})


def sampled(check: Any, township: str) -> list[str]:
    return [row["child_id"] for row in check.samples[township]]


# --- the sample ----------------------------------------------------------------------------------------------------


def test_the_same_seed_and_as_of_draw_the_same_sample_and_another_seed_another(desk):
    first, again, other = draw(desk, 20261129), draw(desk, 20261129), draw(desk, 7)

    assert first.id != again.id
    assert sampled(first, HONGQIAO) == sampled(again, HONGQIAO)
    assert sampled(first, LIUSHI) == sampled(again, LIUSHI)
    assert sampled(first, HONGQIAO) != sampled(other, HONGQIAO)
    assert len(sampled(first, HONGQIAO)) == 6
    assert set(sampled(first, HONGQIAO)) <= {str(c) for c in desk.children[HONGQIAO]}
    assert set(sampled(first, LIUSHI)) <= {str(c) for c in desk.children[LIUSHI]}
    assert first.populations == {HONGQIAO: 40, LIUSHI: 12}


def test_a_township_draws_the_same_files_whichever_townships_are_drawn_with_it(desk):
    both = draw(desk, 99)
    alone = draw(desk, 99, townships=[LIUSHI])

    assert sampled(alone, LIUSHI) == sampled(both, LIUSHI)


def test_children_registered_after_the_draw_as_of_are_not_in_its_population(desk):
    late = set(map(str, desk.register(HONGQIAO, "溪西村", 30, DRAWN_AT + timedelta(days=1))))

    check = draw(desk, 5, size=40)

    assert check.populations[HONGQIAO] == 40
    assert not late & set(sampled(check, HONGQIAO))
    assert sampled(check, HONGQIAO) == sampled(draw(desk, 5, size=40), HONGQIAO)


def test_the_roster_read_from_the_table_is_the_children_the_registration_indicator_counts(desk):
    desk.register(LIUSHI, "长虹村", 3, DRAWN_AT + timedelta(days=1))
    engine = desk.store.engine
    by_table, by_indicator = TableRoster(engine), IndicatorRoster(SqlIndicatorQueries(engine))

    for township in (HONGQIAO, LIUSHI, "北白象镇"):
        for at in (DRAWN_AT, DRAWN_AT + timedelta(days=2)):
            assert sorted(map(str, by_table.registered(township, at))) == \
                sorted(map(str, by_indicator.registered(township, at)))
    assert len(by_table.registered(LIUSHI, DRAWN_AT + timedelta(days=2))) == 15


def test_a_seed_is_generated_and_recorded_when_none_is_given(desk):
    check = draw(desk, None)
    stored = desk.spot_checks.get(check.id)

    assert isinstance(stored.seed, int)
    assert sampled(draw(desk, stored.seed), HONGQIAO) == sampled(stored, HONGQIAO)


def test_a_rate_is_rounded_up_per_township_and_never_exceeds_the_township():
    assert sample_size(40, None, 0.05) == 2
    assert sample_size(12, None, 0.01) == 1
    assert sample_size(0, None, 0.5) == 0
    assert sample_size(3, 10, None) == 3


def test_the_sample_does_not_depend_on_the_order_the_children_come_in():
    children = [uuid.uuid4() for _ in range(50)]

    assert draw_sample(children, 3, HONGQIAO, 5) == draw_sample(list(reversed(children)), 3, HONGQIAO, 5)


# --- results, summary and follow-ups ---------------------------------------------------------------------------------


def answers(**failed: str) -> dict[str, Any]:
    from services.indicators.spot_checks import ItemResult

    return {code: ((ItemResult.failed, failed[code]) if code in failed else (ItemResult.passed, ""))
            for code in load_checklist().codes}


def test_a_failed_item_opens_a_follow_up_referral_to_the_township(desk, memory_settings):
    check = draw(desk, 11)
    child_id = uuid.UUID(sampled(check, HONGQIAO)[0])
    note = f"{fake.name()}家中未见委托照护协议"

    desk.spot_checks.record(check.id, child_id, answers(entrusted_care_agreement=note), date(2026, 11, 25),
                            "acct-ca-officer", "civil_affairs")

    (follow_up,) = desk.follow_ups()
    assert follow_up.data.items_failed == ("entrusted_care_agreement",)
    assert follow_up.data.case_id == care_case_id(child_id)
    assert follow_up.data.township == HONGQIAO
    assert note not in follow_up.model_dump_json()
    with referral_service(memory_settings) as referrals:
        commands = plan_referrals(RULES, [follow_up])
        assert [(c.owner_agency, c.referral_type) for c in commands] == [
            (Agency.township, "archive_spot_check_follow_up")]
        referrals.application.open_referrals(commands)
        opened = referrals.application.get(commands[0].referral_id)
        assert opened.owner_agency == Agency.township.value
        assert opened.township == HONGQIAO
        assert "spot-check-follow-up" in opened.rule_ids


def test_recording_a_file_again_routes_only_items_newly_failed(desk):
    check = draw(desk, 12)
    child_id = uuid.UUID(sampled(check, LIUSHI)[0])
    record = desk.spot_checks.record

    record(check.id, child_id, answers(director_assigned="无"), date(2026, 11, 25), "a", "civil_affairs")
    record(check.id, child_id, answers(director_assigned="仍无"), date(2026, 11, 26), "a", "civil_affairs")
    record(check.id, child_id, answers(director_assigned="仍无", visit_regime_kept="缺"), date(2026, 11, 27), "a",
           "civil_affairs")
    record(check.id, child_id, answers(), date(2026, 11, 28), "a", "civil_affairs")

    assert [f.data.items_failed for f in desk.follow_ups()] == [("director_assigned",), ("visit_regime_kept",)]


def test_the_notes_are_sealed_under_the_childs_key(desk):
    check = draw(desk, 13)
    child_id = uuid.UUID(sampled(check, HONGQIAO)[1])
    note = f"监护人{fake.name()}未登记"

    desk.spot_checks.record(check.id, child_id, answers(guardians_recorded=note), date(2026, 11, 25), "a",
                            "civil_affairs")

    stored = desk.app.recorder.select_notifications(start=None, limit=10_000)
    assert stored
    assert not any(note.encode() in n.state for n in stored)
    assert desk.spot_checks.file(check, child_id).results["guardians_recorded"]["note"] == note


def test_an_erased_childs_results_no_longer_open_and_the_rest_of_the_check_stands(desk):
    check = draw(desk, 14)
    erased, kept = (uuid.UUID(c) for c in sampled(check, HONGQIAO)[:2])
    for child_id in (erased, kept):
        desk.spot_checks.record(check.id, child_id, answers(director_assigned="无"), date(2026, 11, 25), "a",
                                "civil_affairs")

    assert desk.app.mapper.keys.erase(erased)

    assert desk.spot_checks.file(check, erased) is None
    assert set(desk.spot_checks.files(check)) == {kept}
    hongqiao = next(t for t in desk.spot_checks.summary(check) if t.township == HONGQIAO)
    assert (hongqiao.checked, hongqiao.files_with_failures) == (1, 1)


# --- over HTTP -------------------------------------------------------------------------------------------------------


@pytest.fixture
def api(desk: Desk, memory_settings: Settings) -> FastAPI:
    app = create_api("spot checks", memory_settings, [spot_checks_api.router])
    engine = temporary_engine("spot-check-access")
    install_access(app, CaseAccess(engine), AccessLog(engine, 0.05))
    app.state.spot_checks = desk.spot_checks
    return app


def call(api: FastAPI, principal: Principal, method: str, path: str, **kwargs: Any) -> Any:
    return TestClient(api).request(method, path, headers=bearer(api, principal), **kwargs)


def full_results(**failed: str) -> list[dict[str, str]]:
    return [{"item": code, "result": "fail" if code in failed else "pass", "note": failed.get(code, "")}
            for code in load_checklist().codes]


def test_draw_record_and_summarise_over_http(api):
    drawn = call(api, LEAD_SUPERVISOR, "POST", "/v1/spot-checks",
                 json={"year": 2026, "townships": [HONGQIAO, LIUSHI], "sample_size": 4, "seed": 31,
                       "as_of": DRAWN_AT.isoformat()})
    assert drawn.status_code == 201, drawn.text
    view = drawn.json()
    check_id = view["spot_check_id"]
    assert view["seed"] == 31
    assert view["sampled"] == 8
    assert view["checked"] == 0
    hongqiao = [f["child_id"] for f in view["townships"][0]["files"]]

    for i, child_id in enumerate(hongqiao[:3]):
        failed = {"visit_regime_kept": "缺少入户记录"} if i == 0 else {}
        answer = call(api, LEAD_OFFICER, "POST", f"/v1/spot-checks/{check_id}/files/{child_id}",
                      json={"checked_on": "2026-11-25", "results": full_results(**failed)})
        assert answer.status_code == 200, answer.text
        assert answer.json()["follow_up_items"] == (["visit_regime_kept"] if i == 0 else [])

    progress = call(api, AUDITOR, "GET", f"/v1/spot-checks/{check_id}").json()
    assert progress["checked"] == 3
    summary = call(api, WCWC_OFFICER, "GET", f"/v1/spot-checks/{check_id}/summary").json()
    township = next(t for t in summary["townships"] if t["township"] == HONGQIAO)
    visits = next(i for i in township["items"] if i["item"] == "visit_regime_kept")
    assert (township["sampled"], township["checked"], township["files_with_failures"]) == (4, 3, 1)
    assert (visits["passed"], visits["failed"], visits["pass_rate"]) == (2, 1, pytest.approx(2 / 3))
    assert visits["label_zh"]

    as_csv = call(api, LEAD_OFFICER, "GET", f"/v1/spot-checks/{check_id}/summary", params={"format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text.lstrip("\ufeff"))))
    row = next(r for r in rows if r["township"] == HONGQIAO and r["item"] == "visit_regime_kept")
    assert (row["passed"], row["failed"], row["pass_rate"]) == ("2", "1", "0.6667")


def test_bad_input_answers_422_naming_the_field_and_a_file_outside_the_sample_404(api, desk):
    both = call(api, LEAD_SUPERVISOR, "POST", "/v1/spot-checks",
                json={"year": 2026, "townships": [HONGQIAO], "sample_size": 3, "sample_rate": 0.1})
    assert both.status_code == 422
    assert both.headers["content-type"] == "application/problem+json"
    check = draw(desk, 41)
    child_id = sampled(check, HONGQIAO)[0]

    partial = call(api, LEAD_OFFICER, "POST", f"/v1/spot-checks/{check.id}/files/{child_id}",
                   json={"checked_on": "2026-11-25", "results": full_results()[:2]})
    assert partial.status_code == 422
    assert {e["field"] for e in partial.json()["errors"]} == {"results"}
    outside = call(api, LEAD_OFFICER, "POST", f"/v1/spot-checks/{check.id}/files/{uuid.uuid4()}",
                   json={"checked_on": "2026-11-25", "results": full_results()})
    assert outside.status_code == 404
    future = call(api, LEAD_SUPERVISOR, "POST", "/v1/spot-checks",
                  json={"year": 2026, "townships": [HONGQIAO], "sample_size": 3, "as_of": "9999-12-31T23:59:59Z"})
    assert future.status_code == 422
    assert future.json()["errors"][0]["field"] == "as_of"
    unknown = call(api, AUDITOR, "GET", f"/v1/spot-checks/{uuid.uuid4()}")
    assert unknown.status_code == 404


@pytest.mark.parametrize(("principal", "may_draw", "may_record", "may_read"), [
    (SYSTEM, True, True, True),
    (LEAD_SUPERVISOR, True, True, True),
    (LEAD_OFFICER, False, True, True),
    (WCWC_OFFICER, False, False, True),
    (AUDITOR, False, False, True),
    (TOWNSHIP_OFFICER, False, False, False),
    (POLICE_OFFICER, False, False, False),
    (Principal("acct-ca-admin", "person", Agency.civil_affairs, frozenset({Role.administrator})), False, False,
     False),
], ids=lambda v: getattr(v, "subject", None) or "")
def test_who_may_draw_record_and_read(api, desk, principal, may_draw, may_record, may_read):
    check = draw(desk, 51)
    child_id = sampled(check, HONGQIAO)[0]

    drawn = call(api, principal, "POST", "/v1/spot-checks", json={"year": 2026, "townships": [LIUSHI],
                                                                  "sample_rate": 0.5})
    recorded = call(api, principal, "POST", f"/v1/spot-checks/{check.id}/files/{child_id}",
                    json={"checked_on": "2026-11-25", "results": full_results()})
    read = call(api, principal, "GET", f"/v1/spot-checks/{check.id}")
    summary = call(api, principal, "GET", f"/v1/spot-checks/{check.id}/summary")

    assert (drawn.status_code == 201) is may_draw
    assert (drawn.status_code == 403) is not may_draw
    assert (recorded.status_code == 200) is may_record
    assert (recorded.status_code == 403) is not may_record
    assert (read.status_code == 200) is may_read
    assert (read.status_code == 403) is not may_read
    assert (summary.status_code == 200) is may_read
    assert (summary.status_code == 403) is not may_read


def test_the_router_of_the_running_platform_hears_the_follow_ups(memory_settings):
    # The composition root routes the indicators service's events (huhang.bootstrap.ROUTED_SOURCES): the follow-up
    # a failed item raises reaches the router's source, where the rules send it to the township.
    services = build_services(memory_settings)
    indicators = services["indicators"]
    ids = [uuid.uuid4() for _ in range(8)]
    indicators.store.handle([child_file_updated(c, HONGQIAO, "溪西村", REGISTERED_AT) for c in ids])  # type: ignore[attr-defined]
    spot_checks = SpotChecks(indicators.application, TableRoster(indicators.store.engine))  # type: ignore[attr-defined]
    check = spot_checks.draw(year=2026, townships=[HONGQIAO], size=3, rate=None, seed=5, as_of=DRAWN_AT,
                             drawn_by="acct-ca-supervisor", agency="civil_affairs")
    child_id = uuid.UUID(sampled(check, HONGQIAO)[0])
    spot_checks.record(check.id, child_id, answers(entrusted_care_agreement="未见协议"), date(2026, 11, 25),
                       "acct-ca-officer", "civil_affairs")

    router = build_router(memory_settings, services)
    heard: list[Any] = []
    for _ in range(20):
        batch = router.source.poll(0.01)
        if batch is not None:
            heard.extend(batch.events)
            batch.commit()
    follow_ups = [e for e in heard if isinstance(e, SpotCheckFollowUpRequired)]
    assert [f.data.child_id for f in follow_ups] == [child_id]
    assert [(c.owner_agency, c.township) for c in plan_referrals(router.rules, follow_ups)] == [
        (Agency.township, HONGQIAO)]

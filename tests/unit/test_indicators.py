"""The indicators read models on a small hand-made county with fixed dates: each indicator's figure, as of a past
date after later events, colours from thresholds and their change events, small-cell suppression, rebuild equal to
live. The same tests on SQLite and on PostgreSQL (marked integration)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from contracts.events import ChildFileUpdated, ChildFileUpdatedData, IndicatorColourChanged
from huhang.settings import Settings
from huhang.storage import read_model_engine
from services.indicators import tables as t
from services.indicators.application import IndicatorsApplication
from services.indicators.catalogue import colour_of, default_catalogue, load_catalogue
from services.indicators.colours import ColourWatch
from services.indicators.integration import to_integration_events
from services.indicators.migrate import migrate
from services.indicators.queries import SqlIndicatorQueries, months_back
from services.indicators.store import IndicatorStore
from tests.conftest import postgres_settings

A, B = "虹桥镇", "城关镇"
V1, W1 = "溪西村", "东门村"
AV, BW = f"{A}/{V1}", f"{B}/{W1}"
C = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"c{i}")) for i in range(1, 6)]  # township A, village V1
D = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"d{i}")) for i in range(1, 3)]  # township B, village W1
MARCH_END = datetime(2026, 3, 31, 4, 0, tzinfo=UTC)  # 12:00 in China on 31 March


def at(day: str, hour: int = 2) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def ev(event_type: str, when: datetime, /, **data: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": f"cn.huhang.{event_type}", "time": when.isoformat(), "source": "/huhang/t",
            "data": data}


def child(child_id: str, township: str, village: str, when: datetime, categories: tuple[str, ...],
          parents_away: bool, frequent: tuple[str, ...] = ()) -> dict[str, Any]:
    return ev("child.file-updated.v1", when, child_id=child_id, township=township, village=village,
              categories=list(categories), parents_away=parents_away, frequent_visit_reasons=list(frequent))


def visit(child_id: str, kind: str, on: str, recorded: datetime | None = None) -> dict[str, Any]:
    return ev("guardianship.visit-recorded.v1", recorded or at(on), visit_id=str(uuid.uuid4()), child_id=child_id,
              kind=kind, visited_on=on)


def county() -> list[dict[str, Any]]:
    jan = at("2026-01-10")
    lb = ("left_behind",)
    events = [child(c, A, V1, jan, lb, True) for c in C[:4]]
    events += [child(C[4], A, V1, jan, ("disabled",), False, ("child_disability",))]
    events += [child(d, B, W1, jan, ("single_parent",), False) for d in D]
    events += [
        visit(C[0], "home_visit", "2026-03-01"), visit(C[1], "contact", "2026-03-05"),
        visit(C[2], "home_visit", "2026-01-15"), visit(C[4], "home_visit", "2026-02-20"),
        ev("guardianship.parent-contact-recorded.v1", at("2026-03-28"), contact_id=str(uuid.uuid4()),
           child_id=C[0], contacted_on="2026-03-28"),
        ev("guardianship.entrusted-care-agreement-signed.v1", at("2026-01-20"), agreement_id="a1", child_id=C[0],
           expires_on="2026-12-31"),
        ev("guardianship.entrusted-care-agreement-signed.v1", at("2026-01-20"), agreement_id="a2", child_id=C[1],
           expires_on="2026-03-01"),
        ev("guardianship.child-director-assigned.v1", at("2026-01-05"), director_id="dir1", township=A, village=V1),
        ev("guardianship.child-director-trained.v1", at("2026-02-10"), training_id="tr1", director_id="dir1",
           trained_on="2026-02-10"),
        ev("guardianship.risk-assessed.v1", at("2026-02-01"), child_id=C[0], colour="green", township=A, village=V1),
        ev("guardianship.risk-assessed.v1", at("2026-03-10"), child_id=C[0], colour="red", township=A, village=V1),
        ev("guardianship.risk-assessed.v1", at("2026-03-11"), child_id=C[1], colour="yellow", township=A,
           village=V1),
        ev("referral.requested.v1", at("2026-03-01", 0), referral_id="r1", owner_agency="police",
           referral_type="guardianship_check", priority="urgent", township=A, village=V1,
           due_at=at("2026-03-02").isoformat(), complete_by=at("2026-04-30").isoformat()),
        ev("referral.status-changed.v1", at("2026-03-01", 6), referral_id="r1", owner_agency="police",
           status="accepted"),
        ev("referral.status-changed.v1", at("2026-03-05", 0), referral_id="r1", owner_agency="police",
           status="completed"),
        ev("referral.requested.v1", at("2026-03-20"), referral_id="r2", owner_agency="education",
           referral_type="dropout_return", priority="routine", township=B, village=W1,
           due_at=at("2026-03-21").isoformat(), complete_by=None),
        ev("education.school-dropout-reported.v1", at("2026-02-01"), child_id=D[0], township=B, village=W1),
        ev("education.school-return-reported.v1", at("2026-03-15"), child_id=D[0], township=B, village=W1),
        ev("education.school-dropout-reported.v1", at("2026-03-01"), child_id=D[1], township=B, village=W1),
        ev("guardianship.intervention-recorded.v1", at("2026-03-12"), intervention_id="i1", child_id=C[0],
           kind="admonition", agency="village", township=A, village=V1),
    ]
    return events


def later() -> list[dict[str, Any]]:
    """April: what comes after the end of March, including a March contact recorded only in April."""
    return [
        visit(C[3], "contact", "2026-03-20", recorded=at("2026-04-05")),
        *[visit(c, "home_visit", "2026-04-02") for c in C],
        ev("referral.status-changed.v1", at("2026-04-01"), referral_id="r2", owner_agency="education",
           status="accepted"),
        ev("guardianship.risk-assessed.v1", at("2026-04-03"), child_id=C[0], colour="green", township=A,
           village=V1),
        ev("education.school-return-reported.v1", at("2026-04-04"), child_id=D[1], township=B, village=W1),
        ev("referral.owner-changed.v1", at("2026-04-06"), referral_id="r2", from_agency="education",
           to_agency="civil_affairs"),
        ev("guardianship.child-director-left.v1", at("2026-04-07"), director_id="dir1"),
        ev("guardianship.entrusted-care-agreement-ended.v1", at("2026-04-07"), agreement_id="a1", child_id=C[0]),
        ev("child.merged.v1", at("2026-04-08"), child_id=D[0], merged_child_id=D[1]),
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        settings = Settings(storage="sqlite", data_dir=tmp_path / "data")
    else:
        request.applymarker(pytest.mark.integration)
        settings = postgres_settings(request.getfixturevalue("postgres_url"))
    made = read_model_engine(settings, "indicators")
    migrate(made)
    yield made
    made.dispose()


@pytest.fixture
def store(engine: Engine) -> IndicatorStore:
    s = IndicatorStore(engine)
    s.ingest(county())
    return s


@pytest.fixture
def queries(engine: Engine, store: IndicatorStore) -> SqlIndicatorQueries:
    return SqlIndicatorQueries(engine)


def one(queries: SqlIndicatorQueries, code: str, kind: Any, unit: str, as_of: datetime = MARCH_END,
        breakdown: str | None = None, suppress: bool = False) -> Any:
    found = [v for v in queries.values(code, kind, unit, as_of, suppress) if v.breakdown == breakdown]
    assert len(found) == 1, found
    return found[0]


def test_children_registered_by_unit_and_category(queries: SqlIndicatorQueries) -> None:
    assert one(queries, "children_registered", "county", "county").numerator == 7
    assert one(queries, "children_registered", "township", A).numerator == 5
    assert one(queries, "children_registered", "village", AV, breakdown="category:left_behind").numerator == 4
    assert queries.values("children_registered", "township", A, at("2026-01-09")) == []


def test_visit_compliance_by_regime(queries: SqlIndicatorQueries) -> None:
    contact = one(queries, "contact_compliance", "township", A)
    assert (contact.numerator, contact.denominator) == (2, 5)  # c1 (1 March), c2 (5 March)
    home = one(queries, "home_visit_compliance", "township", A)
    assert (home.numerator, home.denominator) == (2, 5)  # c1, c3; c5 is frequent: 20 Feb is too old
    both = one(queries, "visit_compliance", "township", A)
    assert (both.numerator, both.denominator, both.value, both.colour) == (1, 5, 0.2, "red")
    assert sorted(map(str, queries.children_behind("visit_compliance", "township", A, MARCH_END))) == sorted(C[1:])


def test_parent_contacts_agreements_directors_training(queries: SqlIndicatorQueries) -> None:
    parent = one(queries, "parent_contact_compliance", "township", A)
    assert (parent.numerator, parent.denominator) == (1, 4)
    agreements = one(queries, "entrusted_care_coverage", "township", A)
    assert (agreements.numerator, agreements.denominator) == (1, 4)  # a2 expired on 1 March
    coverage = one(queries, "director_coverage", "county", "county")
    assert (coverage.numerator, coverage.denominator, coverage.colour) == (1, 2, "red")
    assert queries.values("director_sufficiency", "county", "county", MARCH_END) == []  # no village over 30
    training = one(queries, "training_coverage", "township", A)
    assert (training.numerator, training.denominator, training.colour) == (1, 1, "green")
    assert one(queries, "training_coverage", "township", A, as_of=at("2026-02-09")).numerator == 0


def test_risk_distribution_and_movement(queries: SqlIndicatorQueries) -> None:
    red = one(queries, "risk_red_share", "township", A)
    assert (red.numerator, red.denominator, red.value) == (1, 2, 0.5)
    assert one(queries, "risk_distribution", "township", A, breakdown="colour:yellow").numerator == 1
    worsened = one(queries, "risk_worsened", "township", A)
    assert (worsened.numerator, worsened.month) == (1, "2026-03")
    assert queries.values("risk_worsened", "township", A, at("2026-02-20")) == []


def test_referrals_per_agency(queries: SqlIndicatorQueries) -> None:
    assert one(queries, "referrals_open", "agency", "education").numerator == 1
    assert queries.values("referrals_open", "agency", "police", MARCH_END) == []  # completed
    overdue = one(queries, "referrals_overdue", "agency", "education")
    assert (overdue.numerator, overdue.colour) == (1, "yellow")
    assert one(queries, "referrals_overdue", "agency", "education", breakdown="priority:routine").numerator == 1
    assert one(queries, "referral_accept_hours", "agency", "police").value == 6.0
    assert one(queries, "referral_complete_hours", "agency", "police").value == 96.0
    assert one(queries, "referrals_open", "agency", "police", as_of=at("2026-03-03")).numerator == 1


def test_dropouts_and_interventions(queries: SqlIndicatorQueries) -> None:
    dropouts = one(queries, "dropout_return_rate", "township", B)
    assert (dropouts.numerator, dropouts.denominator) == (1, 2)
    steps = one(queries, "interventions", "village", AV, breakdown="kind:admonition")
    assert (steps.numerator, steps.month) == (1, "2026-03")


def test_as_of_gives_the_old_figure_after_later_events(store: IndicatorStore, queries: SqlIndicatorQueries) -> None:
    before = queries.values(None, "township", None, MARCH_END)
    store.ingest(later())
    assert queries.values(None, "township", None, MARCH_END) == before  # a contact recorded late changes nothing
    april = one(queries, "visit_compliance", "township", A, as_of=at("2026-04-10"))
    assert (april.numerator, april.colour) == (5, "green")
    assert one(queries, "dropout_return_rate", "township", B, as_of=at("2026-04-10")).numerator == 2


def test_trend_has_one_point_per_month_end(store: IndicatorStore, queries: SqlIndicatorQueries) -> None:
    store.ingest(later())
    points = queries.trend("visit_compliance", "township", A, 3, at("2026-04-10"))
    assert [p.month for p in points] == ["2026-02", "2026-03", "2026-04"]
    assert [p.numerator for p in points] == [1, 1, 5]  # end of February: c5's visit of 20 February still counts


def test_redelivered_events_change_nothing(engine: Engine, store: IndicatorStore) -> None:
    events = county()
    assert store.ingest(events[:3]) == 3  # fresh ids: kept
    size = store.inbox_size()
    assert store.ingest(events[:3]) == 0
    assert store.inbox_size() == size


def test_contract_events_are_kept_as_they_travel(engine: Engine) -> None:
    child_id = uuid.uuid4()
    event_id = uuid.uuid4()
    e = ChildFileUpdated(
        id=event_id, source="/huhang/intake", subject=str(child_id), time=at("2026-01-10"),
        dataschema=ChildFileUpdated.schema_uri(), correlationid=event_id, actoragency="township",
        data=ChildFileUpdatedData(
            child_id=child_id, case_id=uuid.uuid4(), township=A, village=V1, categories=("left_behind",),
            added_categories=("left_behind",), removed_categories=(), category_reasons=(), parents_away=True,
            parents_away_since=date(2025, 1, 1), frequent_visit_reasons=(), has_entrusted_caregiver=True,
        ),
    )
    s = IndicatorStore(engine)
    s.handle([e])
    s.handle([e])
    assert s.inbox_size() == 1
    assert one(SqlIndicatorQueries(engine), "children_registered", "township", A).numerator == 1


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for tables in t.MODELS.values():
            for table in tables:
                cols = [c for c in table.c if c.name != "id"]
                out[table.name] = sorted(tuple(str(v) for v in row) for row in conn.execute(select(*cols)))
    return out


def test_rebuild_equals_live(engine: Engine, store: IndicatorStore, queries: SqlIndicatorQueries) -> None:
    store.ingest(later())
    live, figures = dump(engine), queries.values(None, "village", None, at("2026-04-10"))
    seen: list[int] = []
    assert store.rebuild(progress=seen.append) == store.inbox_size()
    assert sum(seen) == store.inbox_size()
    assert dump(engine) == live
    assert queries.values(None, "village", None, at("2026-04-10")) == figures
    store.rebuild(["referrals"])
    assert dump(engine) == live
    with pytest.raises(KeyError):
        store.rebuild(["nonsense"])


def test_small_cells_suppressed_when_asked(queries: SqlIndicatorQueries) -> None:
    small = one(queries, "contact_compliance", "township", B, suppress=True)  # 2 children
    assert small.suppressed
    assert (small.numerator, small.denominator, small.value, small.colour) == (
        None, None, None, None)
    big = one(queries, "contact_compliance", "township", A, suppress=True)  # 5 children
    assert not big.suppressed
    assert big.denominator == 5
    assert one(queries, "referrals_overdue", "agency", "education", suppress=True).numerator == 1  # not children
    assert not one(queries, "contact_compliance", "township", B).suppressed


def test_colour_thresholds_as_data(tmp_path: Path) -> None:
    visit_compliance = {i.code: i for i in default_catalogue()}["visit_compliance"]
    assert [colour_of(visit_compliance, v) for v in (0.95, 0.9499, 0.85, 0.8499, None)] == [
        "green", "yellow", "yellow", "red", None]
    overdue = {i.code: i for i in default_catalogue()}["referrals_overdue"]
    assert [colour_of(overdue, v) for v in (0, 1, 5, 6)] == ["green", "yellow", "yellow", "red"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: x\nindicators:\n  - {code: a, name_zh: 甲, name_en: A, measure: share, direction: up,\n"
                   "     unit_kinds: [county], small_cells: true,\n"
                   "     thresholds: [{colour: green, at: 0.5}, {colour: yellow, at: 0.9}]}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="out of order"):
        load_catalogue(bad)


def test_colour_change_is_an_event(engine: Engine, store: IndicatorStore, queries: SqlIndicatorQueries) -> None:
    app = IndicatorsApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    watch = ColourWatch(queries, app)
    first = watch.check(MARCH_END)
    assert any(c.indicator == "visit_compliance" and c.unit == A and c.colour == "red" for c in first)
    assert watch.check(MARCH_END) == []  # the same colours: nothing recorded twice
    store.ingest(later())
    changes = [c for c in watch.check(at("2026-04-10")) if c.indicator == "visit_compliance"]
    township_a = [c for c in changes if c.unit_kind == "township" and c.unit == A]
    assert [(c.previous, c.colour) for c in township_a] == [("red", "green")]
    assert queries.colour_changes(at("2026-04-01"))[0].changed_at == at("2026-04-10")
    published = [
        e for n in app.recorder.select_notifications(start=1, limit=1000)
        for e in to_integration_events(app.mapper.to_domain_event(n))
    ]
    changed = [e for e in published if isinstance(e, IndicatorColourChanged)]
    assert len(changed) == len(first) + len(
        [c for c in watch.queries.colour_changes(at("2026-04-01"))]
    )
    last = [e for e in changed if e.data.indicator == "visit_compliance" and e.data.unit == A][-1]
    assert (last.data.previous_colour, last.data.colour, last.data.township) == ("red", "green", A)
    assert last.data.change_id == township_a[0].change_id
    small = [e for e in changed if e.data.unit == B and e.data.indicator == "contact_compliance"]
    assert small
    assert all(e.data.value is None for e in small)


def test_months_back_clamps_to_the_month_end() -> None:
    assert months_back(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_back(date(2026, 1, 15), 3) == date(2025, 10, 15)
    assert date(2026, 3, 31) - timedelta(days=7) == date(2026, 3, 24)


def test_the_rebuild_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from huhang.cli import main

    monkeypatch.setenv("HUHANG_STORAGE", "sqlite")
    monkeypatch.setenv("HUHANG_DATA_DIR", str(tmp_path))
    assert main(["indicators", "migrate"]) == 0
    made = read_model_engine(Settings(storage="sqlite", data_dir=tmp_path), "indicators")
    store = IndicatorStore(made)
    store.ingest(county())
    live = dump(made)
    assert main(["indicators", "rebuild"]) == 0
    assert dump(made) == live
    assert "rebuilt from" in capsys.readouterr().err
    assert main(["indicators", "rebuild", "--model", "risks"]) == 0
    assert dump(made) == live
    with pytest.raises(SystemExit):
        main(["indicators", "rebuild", "--model", "nonsense"])
    made.dispose()

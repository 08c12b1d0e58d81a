"""The indicators' family statements (counted in SQL, ``GROUP BY`` unit) give the very figures of the row-per-thing
facts they replaced, on a random county that uses every event type: every indicator, every unit kind, one unit
asked alone (the unit pushed down as a filter), several ``as_of`` instants and trends. Then the bulk rebuild, with
its indexes dropped and made again, equals the live projection. SQLite, and PostgreSQL (marked integration)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect

from huhang.settings import Settings
from huhang.storage import read_model_engine
from services.indicators import tables as t
from services.indicators.migrate import migrate
from services.indicators.model import IndicatorValue, UnitKind
from services.indicators.queries import SqlIndicatorQueries, Window, _latest_recorded, _Scope, _window
from services.indicators.store import IndicatorStore
from tests.conftest import postgres_settings
from tests.unit.test_indicators import dump

TOWNSHIPS = ["虹桥镇", "城关镇", "大荆镇"]
VILLAGES = ["溪西村", "东门村", "南岙村", "上林村"]
START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 400
INSTANTS = [START + timedelta(days=d, hours=h)
            for d, h in ((60, 3), (200, 15), (330, 23), (395, 8), (400, 1), (500, 0))]
PRESENT = INSTANTS[4:]
"""Instants after the last event: the present, read from the present rows (``ind_child_present``)."""


def random_county(seed: int = 9, children: int = 150, events: int = 3000) -> list[dict[str, Any]]:
    """Events of every type the read models follow, in time order, with repeats, merges and owner changes."""
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(children)]
    place = {c: (rng.choice(TOWNSHIPS), rng.choice(VILLAGES)) for c in ids}
    directors = [f"dir{i}" for i in range(14)]
    referrals: list[str] = []
    agreements: list[str] = []
    out: list[dict[str, Any]] = []

    def ev(event_type: str, when: datetime, /, **data: Any) -> None:
        out.append({"id": str(uuid.UUID(int=rng.getrandbits(128))), "type": f"cn.huhang.{event_type}",
                    "time": when.isoformat(), "source": "/huhang/t", "data": data})

    for n in range(events):
        when = START + timedelta(seconds=DAYS * 86400 * n / events)
        c = rng.choice(ids)
        tw, v = place[c]
        day = (when + timedelta(hours=8)).date()
        roll = rng.random()
        if n < children or roll < 0.06:
            if rng.random() < 0.1:
                place[c] = (rng.choice(TOWNSHIPS), rng.choice(VILLAGES))
                tw, v = place[c]
            away = rng.random() < 0.6
            ev("child.file-updated.v1", when, child_id=ids[n] if n < children else c, township=tw, village=v,
               categories=rng.sample(["left_behind", "disabled", "single_parent"], rng.randint(1, 2)),
               parents_away=away, frequent_visit_reasons=["child_disability"] if rng.random() < 0.2 else [])
        elif roll < 0.30:
            on = day - timedelta(days=rng.choice((0, 0, 3, 20, 40, -2)))  # -2: dated ahead, counted from its recording
            ev("guardianship.visit-recorded.v1", when, visit_id=str(uuid.uuid4()), child_id=c,
               kind=rng.choice(("contact", "home_visit")), visited_on=on.isoformat())
        elif roll < 0.42:
            ev("guardianship.parent-contact-recorded.v1", when, contact_id=str(uuid.uuid4()), child_id=c,
               contacted_on=(day - timedelta(days=rng.choice((0, 2, 9)))).isoformat())
        elif roll < 0.50:
            ev("guardianship.risk-assessed.v1", when, child_id=c, colour=rng.choice(("green", "yellow", "red")),
               township=tw, village=v)
        elif roll < 0.56:
            r = f"r{n}"
            referrals.append(r)
            ev("referral.requested.v1", when, referral_id=r, owner_agency=rng.choice(("police", "education")),
               referral_type=rng.choice(("guardianship_check", "relief")), priority=rng.choice(("routine", "urgent")),
               township=tw, village=v, due_at=(when + timedelta(days=1)).isoformat(),
               complete_by=(when + timedelta(days=20)).isoformat() if rng.random() < 0.7 else None)
        elif roll < 0.68 and referrals:
            r = rng.choice(referrals)
            if rng.random() < 0.2:
                ev("referral.owner-changed.v1", when, referral_id=r, from_agency="police", to_agency="civil_affairs")
            else:
                ev("referral.status-changed.v1", when, referral_id=r, owner_agency=rng.choice(("police", "education")),
                   status=rng.choice(("received", "accepted", "in-progress", "completed", "rejected")))
        elif roll < 0.72:
            ev("education.school-dropout-reported.v1", when, child_id=c, township=tw, village=v)
        elif roll < 0.76:
            ev("education.school-return-reported.v1", when, child_id=c, township=tw, village=v)
        elif roll < 0.80:
            ev("guardianship.intervention-recorded.v1", when, intervention_id=str(uuid.uuid4()), child_id=c,
               kind=rng.choice(("admonition", "guidance")), agency="village", township=tw, village=v)
        elif roll < 0.85:
            a = f"a{n}" if rng.random() < 0.7 or not agreements else rng.choice(agreements)
            agreements.append(a)
            ev("guardianship.entrusted-care-agreement-signed.v1", when, agreement_id=a, child_id=c,
               expires_on=(day + timedelta(days=rng.choice((10, 90, 400)))).isoformat())
        elif roll < 0.87 and agreements:
            ev("guardianship.entrusted-care-agreement-ended.v1", when, agreement_id=rng.choice(agreements), child_id=c)
        elif roll < 0.91:
            ev("guardianship.child-director-assigned.v1", when, director_id=rng.choice(directors),
               township=rng.choice(TOWNSHIPS), village=rng.choice(VILLAGES))
        elif roll < 0.92:
            ev("guardianship.child-director-left.v1", when, director_id=rng.choice(directors))
        elif roll < 0.95:
            ev("guardianship.child-director-trained.v1", when, training_id=str(uuid.uuid4()),
               director_id=rng.choice(directors), trained_on=day.isoformat())
        elif roll < 0.96:
            ev("child.merged.v1", when, child_id=rng.choice(ids), merged_child_id=c)
        else:
            ev("child.data-erased.v1", when, child_id=c)
    out.extend(out[i] for i in rng.sample(range(len(out)), 40))  # redelivered
    return out


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        settings = Settings(storage="sqlite", data_dir=tmp_path_factory.mktemp("data"))
    else:
        request.applymarker(pytest.mark.integration)
        settings = postgres_settings(request.getfixturevalue("postgres_url"))
    made = read_model_engine(settings, "indicators")
    migrate(made)
    IndicatorStore(made).ingest(random_county())
    yield made
    made.dispose()


def by_facts(queries: SqlIndicatorQueries, unit_kind: UnitKind, unit: str | None, at: datetime) -> list[Any]:
    """The figures as the row-per-thing facts give them (the reference)."""
    window = Window.of(at)
    out: list[IndicatorValue] = []
    with queries.engine.connect() as conn:
        for ind in queries.catalogue():
            if unit_kind in ind.unit_kinds:
                facts = queries._facts[ind.code](conn, window)
                out.extend(queries._aggregate(ind, facts, unit_kind, unit, window, False))
    return out


@pytest.mark.parametrize("unit_kind", ["county", "township", "village", "agency"])
def test_family_statements_equal_the_facts(engine: Engine, unit_kind: UnitKind) -> None:
    queries = SqlIndicatorQueries(engine)
    for at in INSTANTS:
        expected = by_facts(queries, unit_kind, None, at)
        assert expected, at
        assert queries.values(None, unit_kind, None, at) == expected
        units = sorted({v.unit for v in expected})
        for unit in units[:3]:
            assert queries.values(None, unit_kind, unit, at) == [v for v in expected if v.unit == unit]


def test_the_present_is_read_from_the_present_rows_only_after_the_last_event(engine: Engine) -> None:
    with engine.connect() as conn:
        latest = _latest_recorded(conn)
    assert [_window(at, latest).present for at in INSTANTS] == [at in PRESENT for at in INSTANTS]
    present = SqlIndicatorQueries(engine).values(None, "county", None, PRESENT[0])
    assert {v.indicator for v in present if v.numerator} >= {
        "visit_compliance", "contact_compliance", "home_visit_compliance", "parent_contact_compliance",
        "entrusted_care_coverage", "referrals_open", "dropout_return_rate", "children_registered"}


def test_migration_0003_fills_the_present_as_the_projection_keeps_it(engine: Engine) -> None:
    """Down to 0002 (the present tables and columns dropped) and up again: the rows the migration fills from the
    temporal tables are those the live projection kept."""
    live = dump(engine)
    migrate(engine, "0002")
    migrate(engine)
    assert dump(engine) == live


def test_the_indicators_count_something(engine: Engine) -> None:
    """The county is rich enough for the equality above to mean something: every indicator has a figure."""
    counted = {v.indicator for at in INSTANTS[1:4] for kind in ("county", "agency")
               for v in SqlIndicatorQueries(engine).values(None, kind, None, at)
               if v.numerator}
    assert counted == {i.code for i in SqlIndicatorQueries(engine).catalogue()} - {"director_sufficiency"}


def test_a_unit_that_is_not_there_has_no_figures(engine: Engine) -> None:
    queries = SqlIndicatorQueries(engine)
    assert queries.values(None, "village", "no-such-village", INSTANTS[2]) == []
    assert queries.values(None, "village", "虹桥镇/溪西村/x", INSTANTS[2]) == []
    assert _Scope("village", "a/b/c").where(t.children.c.township, t.children.c.village)  # both cuts tried


def test_trend_points_equal_values_at_month_ends(engine: Engine) -> None:
    queries = SqlIndicatorQueries(engine)
    unit = TOWNSHIPS[0]
    points = queries.trend("visit_compliance", "township", unit, 6, INSTANTS[3])
    assert len(points) == 6
    assert [p.month for p in points] == ["2025-08", "2025-09", "2025-10", "2025-11", "2025-12", "2026-01"]
    assert replace(points[-1], month=None) == queries.values("visit_compliance", "township", unit, INSTANTS[3])[0]
    for p in points[:-1]:
        assert [replace(p, month=None)] == [
            v for v in by_facts(queries, "township", unit, p.as_of) if v.indicator == "visit_compliance"]


def test_rebuild_equals_live_and_keeps_the_indexes(engine: Engine) -> None:
    indexes = {table: {i["name"] for i in inspect(engine).get_indexes(table)} for table in ("ind_contact", "ind_child")}
    live = dump(engine)
    figures = SqlIndicatorQueries(engine).values(None, "village", None, INSTANTS[3])
    store = IndicatorStore(engine)
    assert store.rebuild() == store.replay_size()
    assert dump(engine) == live
    assert SqlIndicatorQueries(engine).values(None, "village", None, INSTANTS[3]) == figures
    assert {table: {i["name"] for i in inspect(engine).get_indexes(table)} for table in indexes} == indexes


def test_sqlite_bulk_path_stores_the_text_the_live_projection_stores(tmp_path: Path) -> None:
    """The SQLite rebuild writes through the driver: its stored text (dates, times, booleans) must be the very text
    SQLAlchemy wrote live, or ``as_of`` comparisons (text on SQLite) would drift."""
    made = read_model_engine(Settings(storage="sqlite", data_dir=tmp_path), "indicators")
    migrate(made)
    store = IndicatorStore(made)
    store.ingest(random_county(seed=3, children=40, events=600))

    def stored() -> dict[str, list[tuple[Any, ...]]]:
        with made.connect() as conn:
            return {
                table.name: sorted((
                    tuple(row) for row in conn.exec_driver_sql(
                        f"SELECT {', '.join(c.name for c in table.c if c.name != 'id')} FROM {table.name}")
                ), key=repr)
                for tables in t.MODELS.values() for table in tables
            }

    live = stored()
    assert all(live.values()), [name for name, rows in live.items() if not rows]
    store.rebuild()
    assert stored() == live
    made.dispose()


def test_the_migrations_make_the_tables_the_queries_expect(tmp_path: Path) -> None:
    """0002's indexes are those ``tables.py`` declares (which a rebuild drops and makes again)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    made = read_model_engine(Settings(storage="sqlite", data_dir=tmp_path), "indicators")
    migrate(made)
    with made.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), t.metadata)
    made.dispose()
    assert [d[0] for d in diff] == ["remove_table"]  # alembic's own version table only
    assert "ix_ind_contact_window" in {i.name for i in t.contacts.indexes}

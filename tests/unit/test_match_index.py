"""The persistent match index on every store (in-memory SQLite, SQLite file, PostgreSQL): the same answers as the
in-memory matcher, idempotent upserts, removal, and a batch of 500 answered with one query."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, Column, Date, Engine, Float, MetaData, String, Table, event, func, select

from bench.child_matching import record_of
from bench.synthetic_roster import generate_roster
from huhang.personal import ChildKeys
from huhang.settings import Settings
from huhang.storage import read_model_engine
from services.intake.match_index import _KEY_PARTS, MatchIndex, _fetch_statement, among, match_index_table, upsert_rows
from services.intake.matching import (
    BLOCKING_COMPLETE_AT,
    PROBABLE_AT,
    DuplicateMatcher,
    PersonRecord,
    lookup_keys,
    prepare,
)

ID_CARD = "33038220160512234X"


@pytest.fixture
def engine(any_storage_settings: Settings) -> Iterator[Engine]:
    built = read_model_engine(any_storage_settings, "intake")
    yield built
    built.dispose()


def index_on(engine: Engine, threshold: float = PROBABLE_AT) -> MatchIndex:
    return MatchIndex(engine, ChildKeys(engine, bytes(32)), threshold=threshold)


@pytest.fixture
def index(engine: Engine) -> MatchIndex:
    return index_on(engine)


def person(name: str = "李晓雨", **changes: object) -> PersonRecord:
    base = PersonRecord(
        child_id=uuid.uuid4(), name=name, sex="female", birth_date=date(2016, 5, 12), id_card_number=None,
        township="虹桥镇", village="溪西村",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def rows_in(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(match_index_table)).scalar_one())


class StatementCounter:
    def __init__(self, engine: Engine) -> None:
        self.selects = 0
        event.listen(engine, "before_cursor_execute", self._count)
        self.engine = engine

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.selects += 1

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


def test_the_index_answers_as_the_in_memory_matcher(index: MatchIndex) -> None:
    rows = list(generate_roster(1500, duplicate_rate=0.15, seed=21))
    records = [record_of(i, row) for i, row in enumerate(rows)]
    stored, asked = records[:1000], records[1000:]
    index.upsert(stored)
    matcher = DuplicateMatcher()
    for record in stored:
        matcher.add(record)
    answers = index.candidates_many(asked)
    assert set(answers) == {r.child_id for r in asked}
    expected = {r.child_id: matcher.candidates(r) for r in asked}
    assert answers == expected
    assert sum(1 for found in answers.values() if found) > 40  # seeded duplicates of the first 1,000 are found
    one = next(r for r in asked if expected[r.child_id])
    assert index.candidates(one) == expected[one.child_id]


def test_a_batch_of_500_takes_one_query(index: MatchIndex, engine: Engine) -> None:
    records = [record_of(i, row) for i, row in enumerate(generate_roster(1000, seed=22))]
    index.upsert(records[:500])
    counter = StatementCounter(engine)
    try:
        index.candidates_many(records[500:])
    finally:
        counter.close()
    assert counter.selects == 1


def test_upsert_is_idempotent_and_replaces_a_childs_record(index: MatchIndex, engine: Engine) -> None:
    record = person(id_card_number=ID_CARD.lower())
    index.upsert([record, person("王芳")])
    index.upsert([record])
    assert rows_in(engine) == 2
    assert [m.child_id for m in index.candidates(person("李小雨"))] == [record.child_id]
    moved = dataclasses.replace(record, name="张伟", birth_date=date(2012, 3, 4), id_card_number=None)
    index.upsert([record, moved])  # the last record of a child in a batch wins
    assert rows_in(engine) == 2
    assert index.candidates(person("李小雨")) == []
    assert [m.child_id for m in index.candidates(person("张伟", birth_date=date(2012, 3, 4)))] == [record.child_id]


def test_the_identity_card_number_matches_exactly_whatever_the_case(index: MatchIndex) -> None:
    record = person(id_card_number=ID_CARD.lower())
    index.upsert([record])
    [match] = index.candidates(person("王芳", birth_date=date(2010, 1, 1), township="柳市镇", id_card_number=ID_CARD))
    assert match.exact
    assert match.child_id == record.child_id
    assert index.candidates(person(id_card_number="330382201605122358")) == []  # another number: not a match


def test_removed_children_are_no_longer_candidates(index: MatchIndex, engine: Engine) -> None:
    kept, removed = person(), person("李小雨")
    index.upsert([kept, removed])
    index.remove([removed.child_id, removed.child_id, uuid.uuid4()])
    assert rows_in(engine) == 1
    assert [m.child_id for m in index.candidates(person("李晓宇"))] == [kept.child_id]


def test_a_child_is_never_its_own_candidate(index: MatchIndex) -> None:
    record = person(id_card_number=ID_CARD)
    index.upsert([record])
    assert index.candidates(record) == []
    assert index.candidates_many([record, dataclasses.replace(record, name="李小雨")]) == {record.child_id: []}


def test_within_batch_finds_a_child_repeated_in_the_same_batch(index: MatchIndex) -> None:
    first, again = person(), person("李小雨", birth_date=date(2016, 12, 5))
    assert index.candidates_many([first, again]) == {first.child_id: [], again.child_id: []}
    found = index.candidates_many([first, again], within_batch=True)
    assert found[first.child_id] == []
    assert [m.child_id for m in found[again.child_id]] == [first.child_id]
    assert "birth_date_day_month_swapped" in found[again.child_id][0].reasons


def test_the_index_survives_a_second_instance_on_the_same_store(engine: Engine) -> None:
    record = person()
    index_on(engine).upsert([record])
    assert [m.child_id for m in index_on(engine).candidates(person("李曉雨"))] == [record.child_id]


def test_a_threshold_blocking_does_not_cover_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="threshold"):
        index_on(engine, threshold=BLOCKING_COMPLETE_AT - 0.05)


def test_filing_and_matching_in_one_go_answers_as_filing_then_asking(engine: Engine) -> None:
    rows = list(generate_roster(1200, duplicate_rate=0.15, seed=23))
    records = [record_of(i, row) for i, row in enumerate(rows)]
    stored, new = records[:800], records[800:]
    in_one_go, step_by_step = index_on(engine), index_on(engine)
    in_one_go.upsert(stored)
    asked = [*new, dataclasses.replace(new[0], name="李晓雨")]  # a child asked about twice: the last record counts

    found = in_one_go.file_and_match(new, asked)

    expected = step_by_step.candidates_many(asked)  # the same table, now holding what file_and_match filed
    assert found == expected
    assert sum(1 for matches in found.values() if matches) > 40  # seeded duplicates, in the store and in the batch
    assert rows_in(engine) == 1200


def test_a_child_filed_in_the_batch_is_matched_as_filed_not_read_back(index: MatchIndex, engine: Engine) -> None:
    first, again = person(), person("李小雨")
    index.keys.ensure([first.child_id])  # the child's key exists already (made when its file is saved)
    counter = StatementCounter(engine)
    try:
        found = index.file_and_match([first], [first, again])
    finally:
        counter.close()
    assert counter.selects == 1
    assert found[first.child_id] == []  # the record asked about after it is not filed: only the other way round
    assert [m.child_id for m in found[again.child_id]] == [first.child_id]
    assert index.candidates(person("李晓宇")) != []  # and it is in the index


def test_rows_pass_as_one_json_parameter_with_dates_booleans_lists_and_nulls(engine: Engine) -> None:
    metadata = MetaData()
    table = Table(
        "json_rows_probe", metadata, Column("id", String(36), primary_key=True), Column("day", Date, nullable=True),
        Column("flag", Boolean, nullable=False), Column("codes", JSON, nullable=False),
        Column("score", Float, nullable=False), Column("text", String(50), nullable=True),
    )
    metadata.create_all(engine)
    tricky = '李"晓\'雨\\ \u3000 ,{}'
    rows: list[dict[str, Any]] = [
        {"id": "a", "day": date(2024, 2, 29), "flag": True, "codes": ["x", "y"], "score": 0.93, "text": tricky},
        {"id": "b", "day": None, "flag": False, "codes": [], "score": 1.0, "text": None},
    ]
    with engine.begin() as conn:
        upsert_rows(conn, table, rows, key="id")
        upsert_rows(conn, table, [{**rows[0], "flag": False, "codes": ["z"]}], key="id")  # replaces, keeps "b"
        stored = [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]
        assert stored == [
            ("a", date(2024, 2, 29), False, ["z"], 0.93, tricky), ("b", None, False, [], 1.0, None),
        ]
        assert [r.id for r in conn.execute(select(table.c.id).where(among(conn, table.c.id, ["b", tricky])))] == ["b"]


def test_a_lookup_on_a_young_table_without_statistics_stays_fast(index: MatchIndex) -> None:
    """A regression guard: keys bound as arrays the planner could not hash made PostgreSQL test every row of a young
    table against every key (about a second for 500 records against 10,000); one index lookup per key takes
    milliseconds."""
    records = [record_of(i, row) for i, row in enumerate(generate_roster(10_500, seed=24))]
    for start in range(0, 10_000, 5000):
        index.upsert(records[start:start + 5000])
    index.candidates_many(records[10_000:10_100])  # warm up
    found = index.file_and_match(records[10_000:], records[10_000:])
    assert set(found) == {r.child_id for r in records[10_000:]}

    def lookup() -> float:
        started = time.perf_counter()
        index.candidates_many(records[10_000:])
        return time.perf_counter() - started

    # the best of three: a busy machine only ever adds time, while the regression was slow every time
    assert min(lookup() for _ in range(3)) < 0.8


def test_one_reports_lookup_probes_the_key_indexes_on_postgresql(index: MatchIndex, engine: Engine) -> None:
    """A report looks up one child's few keys: PostgreSQL must probe the four key indexes, not scan the table. As a
    semi-join on the unnested JSON array (estimated at 100 rows) it chose four sequential scans even with the
    table's statistics: 1.2 ms at 1,000 children against 0.15 ms, and growing with the children filed."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    records = [record_of(i, row) for i, row in enumerate(generate_roster(2_001, seed=5))]
    index.upsert(records[:2_000])
    keys = lookup_keys(prepare(records[2_000]))
    params = {name: json.dumps(sorted({index.blind(k) for k in part(keys)})) for name, part in _KEY_PARTS.items()}
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE child_match_index")
        compiled = _fetch_statement("postgresql").compile(dialect=conn.dialect)
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}", params))
    assert "Seq Scan" not in plan, plan
    assert plan.count("ix_child_match_index_") == 4, plan

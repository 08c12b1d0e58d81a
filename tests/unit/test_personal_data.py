"""Personal data at rest (huhang/personal.py): sealed per child, unreadable after erasure, chain intact.

The raw-table tests read every table of intake's stores as the database holds them (SQLite files, the PostgreSQL
schema) and look for the child's name, identity-card number and a phrase of the free-text observations.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import MapperDeserialisationError, StoredEvent
from faker import Faker
from sqlalchemy import Engine, MetaData, create_engine, select

from contracts.events import ChildDataErased
from huhang.audit import verify_service
from huhang.chain import build_chainer
from huhang.eventstore import DateAsISO
from huhang.personal import MAGIC, ChildDataMapper, ChildKeys, ErasureFollower, PersonalDataErased, keys_of
from huhang.settings import Settings
from huhang.storage import schema_name
from services.guardianship.main import build as build_guardianship
from services.intake.application import ChildFacts, FileReport
from services.intake.main import IntakeService
from services.intake.main import build as build_intake
from tests.conftest import sqlite_or_postgres_settings
from tests.support.auth import client_for, officer

OBSERVED = "孩子说晚上一个人在家，邻居张阿姨经常听到哭声"


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return sqlite_or_postgres_settings(request, tmp_path)


@pytest.fixture
def intake(settings: Settings) -> Iterator[IntakeService]:
    built = build_intake(settings)
    yield built
    built.application.close()
    built.positions.engine.dispose()


def a_report(fake: Faker, name: str, id_card: str | None) -> FileReport:
    today = date.today()
    return FileReport(
        reporter_agency="education", reporter_role="teacher", reporter_reference=None,
        child=ChildFacts(
            name=name, sex="female", birth_date=today - timedelta(days=9 * 365), id_card_number=id_card,
            township="虹桥镇", village="东村", categories=("left_behind",),
        ),
        concern_category="guardian_neglect", urgency="urgent", observations=f"{name}：{OBSERVED}",
        observed_on=today - timedelta(days=1), fingerprint=hashlib.sha256(fake.uuid4().encode()).hexdigest(),
    )


def raw_values(settings: Settings, intake: IntakeService) -> Iterator[tuple[str, Any]]:
    """Every value of every row of every table of intake's stores, as stored."""
    engines: list[tuple[Engine, str | None]]
    if settings.storage == "sqlite":
        engines = [(create_engine(f"sqlite:///{settings.data_dir / name}"), None)
                   for name in ("intake.events.sqlite", "intake.read.sqlite")]
    else:
        engines = [(intake.positions.engine, schema_name(settings, "intake"))]
    for engine, schema in engines:
        metadata = MetaData()
        metadata.reflect(engine, schema=schema)
        with engine.connect() as conn:
            for table in metadata.tables.values():
                for row in conn.execute(select(table)):
                    for value in row:
                        yield table.name, value


def holding(settings: Settings, intake: IntakeService, needle: str) -> set[str]:
    """The tables holding ``needle`` in clear (as text, or as UTF-8 bytes in a binary or JSON column)."""
    found = set()
    for table, value in raw_values(settings, intake):
        if isinstance(value, bytes | bytearray | memoryview):
            if needle.encode() in bytes(value):
                found.add(table)
        elif value is not None and needle in str(value):
            found.add(table)
    return found


def test_the_raw_tables_hold_no_name_id_number_or_note(settings: Settings, intake: IntakeService) -> None:
    fake = Faker("zh_CN")
    name, id_card = fake.name(), fake.ssn()
    filed = intake.application.file_report(a_report(fake, name, id_card))
    file = intake.application.get_child_file(filed.child_id)
    assert file["name"] == name
    assert file["id_card_number"] == id_card
    assert list(raw_values(settings, intake))  # the search does see the tables
    assert holding(settings, intake, name) == set()
    assert holding(settings, intake, id_card) == set()
    assert holding(settings, intake, OBSERVED[:12]) == set()


def test_a_duplicate_is_still_found_with_the_index_blinded_and_sealed(intake: IntakeService) -> None:
    fake = Faker("zh_CN")
    first = intake.application.file_report(a_report(fake, "李晓雨", None))
    again = intake.application.file_report(a_report(fake, "李小雨", None))  # a homophone, same date and place
    assert first.child_id != again.child_id
    pending = intake.application.pending_duplicates()
    assert {(p["child_id"], p["other_child_id"]) for p in pending} == {(str(again.child_id), str(first.child_id))}


def test_erasure_makes_the_data_unreadable_keeps_the_chain_and_purges_copies(
    settings: Settings, intake: IntakeService
) -> None:
    fake = Faker("zh_CN")
    erased = intake.application.file_report(a_report(fake, fake.name(), fake.ssn()))
    kept = intake.application.file_report(a_report(fake, fake.name(), fake.ssn()))
    chainer = build_chainer(settings, intake)
    chainer.catch_up()
    chainer.checkpoint()
    before = {(e.originator_id, e.originator_version): bytes(e.state)
              for e in intake.application.recorder.select_notifications(start=1, limit=1000)}

    assert intake.application.erase_child(erased.child_id, reason="retention_expired", by="civil_affairs")
    assert not intake.application.erase_child(erased.child_id, reason="retention_expired", by="civil_affairs")

    with pytest.raises(PersonalDataErased):
        intake.application.get_child_file(erased.child_id)
    with pytest.raises(PersonalDataErased):
        intake.application.get_case(erased.case_id)
    assert intake.application.get_child_file(kept.child_id)["name"]  # another child is untouched
    after = {(e.originator_id, e.originator_version): bytes(e.state)
             for e in intake.application.recorder.select_notifications(start=1, limit=1000)}
    assert {k: v for k, v in after.items() if k in before} == before  # no stored event changed
    chainer.catch_up()
    chainer.checkpoint()
    assert verify_service(settings, intake).ok  # the chain and its checkpoints still verify
    assert intake.application.match_index.candidates_many([]) == {}
    with intake.positions.engine.connect() as conn:
        from services.intake.match_index import match_index_table

        left = {r.child_id for r in conn.execute(select(match_index_table.c.child_id))}
    assert str(erased.child_id) not in left
    assert str(kept.child_id) in left


def test_the_erasure_is_published_and_every_service_destroys_its_key(settings: Settings, intake: IntakeService) -> None:
    fake = Faker("zh_CN")
    filed = intake.application.file_report(a_report(fake, fake.name(), None))
    intake.application.erase_child(filed.child_id, reason="court_order", by="civil_affairs")
    published = [
        e for n in intake.application.recorder.select_notifications(start=1, limit=1000)
        for e in intake.application.integration_events(n, intake.to_integration_events())  # the relay's way
        if isinstance(e, ChildDataErased)
    ]
    assert [(e.data.child_id, e.data.reason.value) for e in published] == [(filed.child_id, "court_order")]

    guardianship = build_guardianship(settings)
    try:
        keys = keys_of(guardianship.application)
        assert keys is not None
        keys.ensure([filed.child_id])  # guardianship had sealed events about the child
        ErasureFollower(keys).handle(published)
        assert keys.is_erased(filed.child_id)
    finally:
        guardianship.application.close()
        guardianship.positions.engine.dispose()


def test_the_erasure_endpoint_is_for_administrators_and_answers_410_after(settings: Settings) -> None:
    from contracts.agencies import Agency
    from huhang.auth.principal import Role
    from huhang.bootstrap import service_api

    service = build_intake(settings)
    try:
        fake = Faker("zh_CN")
        filed = service.application.file_report(a_report(fake, fake.name(), None))
        api = service_api(settings, service)
        body = {"reason": "retention_expired", "erased_by": "civil_affairs"}
        officer_client = client_for(api, officer(Agency.civil_affairs))
        assert officer_client.post(f"/v1/children/{filed.child_id}/erasure", json=body).status_code == 403
        admin = client_for(api, officer(Agency.civil_affairs, Role.administrator))
        answer = admin.post(f"/v1/children/{filed.child_id}/erasure", json=body)
        assert answer.status_code == 200
        assert answer.json() == {"child_id": str(filed.child_id), "erased_now": True}
        assert admin.post(f"/v1/children/{filed.child_id}/erasure", json=body).json()["erased_now"] is False
        gone = client_for(api).get(f"/v1/children/{filed.child_id}")
        assert gone.status_code == 410
        assert gone.headers["content-type"].startswith("application/problem+json")
        bad = admin.post(f"/v1/children/{filed.child_id}/erasure", json={"reason": "because", "erased_by": "x"})
        assert bad.status_code == 422
        unknown = admin.post(f"/v1/children/{uuid.uuid4()}/erasure", json=body)
        assert unknown.status_code == 404
    finally:
        service.application.close()
        service.positions.engine.dispose()


# --- the mapper and the keys, in memory ------------------------------------------------------------------------------


@pytest.fixture
def keys(tmp_path: Path) -> ChildKeys:
    return ChildKeys(create_engine(f"sqlite:///{tmp_path / 'keys.sqlite'}"), bytes(range(32)))


def test_a_sealed_state_moved_to_another_record_does_not_open(keys: ChildKeys) -> None:
    from eventsourcing.application import Application
    from eventsourcing.persistence import JSONTranscoder

    transcoder = JSONTranscoder()
    Application().register_transcodings(transcoder)
    transcoder.register(DateAsISO())
    mapper = ChildDataMapper(transcoder, keys)
    from services.intake.domain import Report

    child_id = uuid.uuid4()
    keys.ensure([child_id])
    report = Report(
        report_id=uuid.uuid4(), case_id=uuid.uuid4(), child_id=child_id, reporter_agency="police",
        reporter_role="police_officer", reporter_reference=None, concern_category="guardian_neglect",
        urgency="urgent", observations="秘密", observed_on=date(2026, 11, 1), request_fingerprint="f",
    )
    (event,) = report.collect_events()
    stored = mapper.to_stored_event(event)
    assert stored.state.startswith(MAGIC)
    assert "秘密".encode() not in stored.state
    assert mapper.to_domain_event(stored).observations == "秘密"
    moved = StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic=stored.topic, state=stored.state)
    with pytest.raises(MapperDeserialisationError):
        mapper.to_domain_event(moved)


def test_keys_are_stored_wrapped_and_open_only_with_the_data_key(keys: ChildKeys, tmp_path: Path) -> None:
    child_id = uuid.uuid4()
    keys.ensure([child_id])
    sealed = keys.seal(child_id, b"data")
    with pytest.raises(ValueError, match="does not open"):
        ChildKeys(keys.engine, bytes(32)).open(child_id, sealed)
    assert ChildKeys(keys.engine, bytes(range(32))).open(child_id, sealed) == b"data"
    keys.erase(child_id)
    with pytest.raises(PersonalDataErased):
        ChildKeys(keys.engine, bytes(range(32))).open(child_id, sealed)
    later = uuid.uuid4()
    keys.erase(later)  # erased before it had a key: none is made afterwards
    keys.ensure([later])
    assert keys.is_erased(later)


def test_two_processes_making_a_childs_key_at_once_both_use_the_one_stored_first(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'keys.sqlite'}")
    first, second = ChildKeys(engine, bytes(32)), ChildKeys(engine, bytes(32))
    child_id = uuid.uuid4()
    first.ensure([child_id])
    second.ensure([child_id])  # its own key loses the insert: it reads the first's
    assert second.open(child_id, first.seal(child_id, b"x")) == b"x"
    assert first.open(child_id, second.seal(child_id, b"y")) == b"y"


def test_another_process_sees_an_erasure_within_the_cache_time(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'keys.sqlite'}")
    now = [0.0]
    here, there = ChildKeys(engine, bytes(32), clock=lambda: now[0]), ChildKeys(engine, bytes(32))
    child_id = uuid.uuid4()
    here.ensure([child_id])
    sealed = here.seal(child_id, b"x")
    there.erase(child_id)
    assert here.open(child_id, sealed) == b"x"  # still cached here
    now[0] += 61
    with pytest.raises(PersonalDataErased):
        here.open(child_id, sealed)


def test_production_refuses_to_start_without_a_data_key() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="HUHANG_DATA_KEY must be set in production"):
        Settings(environment="production", identity_key="a-real-secret")
    with pytest.raises(ValidationError, match="32 bytes"):
        Settings(data_key="c2hvcnQ=")

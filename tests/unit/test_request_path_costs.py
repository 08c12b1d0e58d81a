"""What keeps the request path cheap under the county's mixed workload (issue 7), held so that it stays so.

- Every inbox read counts the agency's referrals by status: an index on (owner, status) lets the count read the
  index alone, and a store made before the index gains it when the service starts.
- Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool, a
  hop (and, under load, a wait for a free worker) per dependency per request.
- The counts an inbox page shows are counted again at most every ``inbox_counts_max_age_s`` per process, and at
  once after the process projects events itself.
- The case-access guard asks its read model one statement per request, whatever the record.
- An API's thread pool has ``api_threads`` threads (anyio's 40 contend for the GIL under load).
- An agency's first inbox pages are answered from the page built at most ``inbox_page_max_age_s`` before, per
  process, forgotten at once when the process projects referral events itself.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy import inspect as sql_inspect

from contracts.agencies import Agency
from contracts.vocabulary import ReferralStatus
from huhang import recent
from huhang.access import guards
from huhang.access.case_access import CaseAccess
from huhang.bootstrap import service_api
from huhang.settings import Settings
from huhang.storage import read_model_engine
from huhang.web import create_api
from services.guardianship import api as guardianship_api
from services.guardianship import care_api
from services.intake import api as intake_api
from services.intake import history_api
from services.notifications import api as notifications_api
from services.referral import api as referral_api
from services.referral.inbox import Inbox, owner_status_index, referrals_table
from tests.conftest import postgres_settings
from tests.support.auth import bearer, client_for, officer
from tests.support.referrals import referral_service
from tests.unit.test_notifications_feed import referral_requested, status_changed


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Engine:
    settings = (Settings(storage="sqlite", data_dir=tmp_path / "data") if request.param == "sqlite"
                else postgres_settings(request.getfixturevalue("postgres_url")))
    return read_model_engine(settings, "referral")


def _indexes(engine: Engine) -> set[str]:
    return {str(ix["name"]) for ix in sql_inspect(engine).get_indexes(referrals_table.name)}


def test_a_store_made_before_the_owner_status_index_gains_it(engine: Engine) -> None:
    Inbox(engine)
    owner_status_index.drop(engine)  # as a store made before the index was
    assert owner_status_index.name not in _indexes(engine)
    Inbox(engine)
    assert owner_status_index.name in _indexes(engine)
    Inbox(engine)  # and again: already there, nothing to do


def test_counting_an_inbox_by_status_reads_the_index_alone() -> None:
    engine = read_model_engine(Settings(storage="memory"), "referral")
    Inbox(engine)
    t = referrals_table
    query = select(t.c.status, func.count()).where(t.c.owner_agency == "police").group_by(t.c.status)
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    assert f"COVERING INDEX {owner_status_index.name}" in plan


NO_IO_DEPENDENCIES: list[Callable[..., Any]] = [
    guards.get_case_access, guards.get_access_log, guards.purpose_of, guards.agency_queue, guards.creator,
    referral_api.get_referrals, referral_api.get_inbox, intake_api.get_intake, intake_api.get_timeline,
    history_api.get_history, guardianship_api.get_guardianship, care_api.get_care, notifications_api.get_feed,
    notifications_api.feed_filter,
]


@pytest.mark.parametrize("dependency", NO_IO_DEPENDENCIES, ids=lambda d: f"{d.__module__}.{d.__name__}")
def test_dependencies_without_io_run_on_the_event_loop(dependency: Callable[..., Any]) -> None:
    assert inspect.iscoroutinefunction(dependency)


def test_dependencies_that_query_a_read_model_stay_off_the_event_loop() -> None:
    """The guards that read the case-access read model block on the database: never on the event loop."""
    for dependency in (guards.case_reader, guards.case_writer, guards.child_reader, guards.child_writer):
        assert not inspect.iscoroutinefunction(dependency)


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, sql, *args: seen.append(sql))
    return seen


def test_an_inbox_page_counts_again_only_when_its_counts_are_older_than_the_max_age(engine: Engine) -> None:
    inbox = Inbox(engine, counts_max_age_s=60)
    inbox.handle([referral_requested(Agency.police)])
    seen = _statements(engine)
    assert inbox.page_and_counts("police")[1] == {"requested": 1}
    assert inbox.page_and_counts("police")[1] == {"requested": 1}
    assert sum("count(" in sql.lower() for sql in seen) == 1  # the second page reused the counts
    inbox.handle([status_changed(ReferralStatus.received)])  # projected here: counted again at once
    assert inbox.page_and_counts("police")[1] == {"received": 1}


def test_an_inbox_without_a_max_age_counts_on_every_page(engine: Engine) -> None:
    inbox = Inbox(engine)
    inbox.handle([referral_requested(Agency.police)])
    seen = _statements(engine)
    inbox.page_and_counts("police")
    inbox.page_and_counts("police")
    assert sum("count(" in sql.lower() for sql in seen) == 2


def test_the_case_access_facts_are_one_statement_for_a_case_and_for_a_child(engine: Engine) -> None:
    access = CaseAccess(engine)
    access.handle([referral_requested(Agency.police)])
    seen = _statements(engine)
    facts = access.facts_for_case(referral_requested().data.case_id)
    assert facts is not None
    assert facts.holding_agencies == frozenset({"police"})
    assert access.facts_for_child(uuid.uuid4()) is None
    assert len(seen) == 2


def test_an_api_runs_its_blocking_work_on_as_many_threads_as_configured() -> None:
    import anyio.to_thread

    app = create_api("threads", Settings(storage="memory", api_threads=3), [])

    @app.get("/threads")
    async def threads() -> dict[str, float]:
        return {"total": anyio.to_thread.current_default_thread_limiter().total_tokens}

    with TestClient(app) as client:
        assert client.get("/threads").json() == {"total": 3}


# --- recent answers: the inbox's first pages ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_recent_answer_is_kept_for_its_max_age_then_computed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(recent.time, "monotonic", clock)
    computed: list[int] = []
    kept: recent.Recent[int] = recent.Recent(max_age_s=1.0)

    def compute() -> int:
        computed.append(len(computed))
        return len(computed)

    assert [kept.get("a", compute), kept.get("a", compute)] == [1, 1]
    clock.now += 0.99
    assert kept.get("a", compute) == 1
    clock.now += 0.02
    assert kept.get("a", compute) == 2  # older than the max age: computed again
    assert kept.get("b", compute) == 3  # another key, its own answer
    kept.clear()
    assert kept.get("a", compute) == 4


def test_no_max_age_keeps_nothing_and_the_keys_kept_are_bounded() -> None:
    nothing: recent.Recent[int] = recent.Recent(max_age_s=0)
    values = iter(range(10))
    assert [nothing.get("a", lambda: next(values)) for _ in range(3)] == [0, 1, 2]
    bounded: recent.Recent[int] = recent.Recent(max_age_s=60, max_entries=4)
    for key in range(10):
        bounded.get(key, lambda: 0)
    assert len(bounded._kept) <= 4
    assert 9 in bounded._kept  # the newest stays


def a_referral(days_ago: int = 0) -> Any:
    """A new referral at the police, its own ids, requested ``days_ago``."""
    event = referral_requested(Agency.police)
    return event.model_copy(update={"id": uuid.uuid4(), "time": event.time - timedelta(days=days_ago),
                                    "data": event.data.model_copy(update={"referral_id": uuid.uuid4()})})


def test_an_agencys_first_inbox_page_is_answered_from_the_recent_page(tmp_path: Any) -> None:
    """Every desk of an agency opens the same first page: within ``inbox_page_max_age_s`` it is answered without a
    statement. What another process projects meanwhile shows after that age (as the counts do); what this process
    projects, at once; a later page (a cursor) is always read afresh. Who may read it is decided on every request."""
    settings = Settings(storage="sqlite", data_dir=tmp_path / "data", inbox_page_max_age_s=60)
    with referral_service(settings) as service:
        client = client_for(service_api(settings, service))
        elsewhere = Inbox(service.inbox.engine)  # another process's projection of the same store
        elsewhere.handle([a_referral()])
        first = client.get("/v1/agencies/police/referrals", params={"limit": 1})
        assert len(first.json()["items"]) == 1, first.text
        seen = _statements(service.inbox.engine)
        elsewhere.handle([a_referral(days_ago=1)])  # older: on the second page
        seen.clear()
        again = client.get("/v1/agencies/police/referrals", params={"limit": 1})
        assert again.json() == first.json()
        assert not [sql for sql in seen if "referral_inbox" in sql]  # answered from the recent page
        later = client.get("/v1/agencies/police/referrals", params={"limit": 1, "cursor": first.json()["next_cursor"]})
        assert len(later.json()["items"]) == 1  # a later page: read afresh, the new referral's row is there
        filtered = client.get("/v1/agencies/police/referrals", params={"limit": 1, "status": "received"})
        assert filtered.json()["items"] == []  # other filters: another page
        service.inbox.handle([a_referral()])  # projected by this process: forgotten at once
        newest = client.get("/v1/agencies/police/referrals", params={"limit": 1})
        assert newest.json()["counts_by_status"] == {"requested": 3}
        app = client.app
        refused = client.get("/v1/agencies/police/referrals", params={"limit": 1},
                             headers=bearer(app, officer(Agency.health)))  # type: ignore[arg-type]
        assert refused.status_code == 403  # the page kept, the access decided again

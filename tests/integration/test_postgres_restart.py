"""Issue 7: PostgreSQL restarted under load. Requests in flight fail cleanly (503 application/problem+json with
Retry-After, never a 500 nor a dropped connection), no case is half-written, every report acknowledged before,
during and after the restart survives, a report refused with 503 is absent or stored once when retried with its
Idempotency-Key, and the service files reports again after the restart without being restarted itself.

Real parts only: intake's API as its own process (``huhang api intake``) on a private PostgreSQL cluster started,
stopped (fast shutdown: sessions terminated) and started again by the test (tests/support/postgres_cluster.py);
the machine's shared PostgreSQL is never touched.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from faker import Faker

from huhang.problems import PROBLEM_JSON, UNAVAILABLE_TYPE
from services.intake.application import REPORT_ID_NAMESPACE
from services.intake.schemas import REPORT_EXAMPLE
from tests.support.auth import minted_auth, new_signing_key
from tests.support.postgres_cluster import PostgresCluster, private_postgres
from tests.support.processes import free_port, huhang_env, huhang_process, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RETRY_AFTER_S = 3
SCHEMA_PREFIX = "restart_"
EVENTS = f"{SCHEMA_PREFIX}intake.intake_events"
REPORTER = "education"
WORKERS = 4
PAUSE_S = 0.05  # per worker between requests: some 20 to 60 reports a second in all, as the machine allows
# The eventsourcing pool waits 2 s for a connection, 10 times, before it gives up (huhang/storage.py): a request
# in flight while the database is down answers within about 22 s; the client waits longer than that.
CLIENT_TIMEOUT_S = 40.0
GIVEN_NAME_CHARS = "子涵浩然梓轩雨欣一诺欣怡宇航佳怡思远梦琪俊杰晨曦文博雅静嘉怡天佑若汐明轩可馨"


@dataclass
class Attempt:
    key: str
    body: dict[str, Any]
    sent_at: float
    answered_at: float = 0.0
    status: int | None = None
    content_type: str = ""
    retry_after: str | None = None
    replayed: bool = False
    answer: dict[str, Any] = field(default_factory=dict)
    transport_error: str | None = None

    @property
    def report_id(self) -> uuid.UUID:
        return uuid.uuid5(REPORT_ID_NAMESPACE, f"{REPORTER}\x1f{self.key}")


class Reporter:
    """Files reports at a steady rate from a few threads, each a new child (a distinct synthetic identity) with a
    distinct Idempotency-Key, and records every answer with when it was sent and answered."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.attempts: list[Attempt] = []
        self.stop = threading.Event()
        self._numbers = itertools.count()
        self._faker = Faker("zh_CN")
        self._faker.seed_instance(7)
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, name=f"reporter-{i}") for i in range(WORKERS)]

    def __enter__(self) -> Reporter:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_S + 5)

    def body(self, n: int) -> dict[str, Any]:
        body = copy.deepcopy(REPORT_EXAMPLE)
        with self._lock:
            surname = self._faker.last_name()
        chars = GIVEN_NAME_CHARS
        body["child"].update(
            name=f"{surname}{chars[n // len(chars) % len(chars)]}{chars[n % len(chars)]}",
            sex="female" if n % 2 else "male",
            birth_date=(date(2010, 1, 1) + timedelta(days=n % 5000)).isoformat(),  # distinct below 5,000
        )
        return body

    def file(self, key: str, body: dict[str, Any]) -> Attempt:
        attempt = Attempt(key, body, time.monotonic())
        try:
            answer = self.client.post("/v1/reports", json=body, headers={"Idempotency-Key": key})
        except httpx.HTTPError as exc:  # a reset or dropped connection: counted as a failure, never a success
            attempt.transport_error = type(exc).__name__
        else:
            attempt.status = answer.status_code
            attempt.content_type = answer.headers.get("content-type", "")
            attempt.retry_after = answer.headers.get("retry-after")
            attempt.replayed = answer.headers.get("idempotent-replayed") == "true"
            try:
                attempt.answer = answer.json()
            except ValueError:
                attempt.answer = {"unparsable": answer.text[:200]}
        attempt.answered_at = time.monotonic()
        return attempt

    def _run(self) -> None:
        while not self.stop.is_set():
            n = next(self._numbers)
            attempt = self.file(f"restart-{n}", self.body(n))
            with self._lock:
                self.attempts.append(attempt)
            self.stop.wait(PAUSE_S)

    def snapshot(self) -> list[Attempt]:
        with self._lock:
            return list(self.attempts)


@pytest.fixture
def intake_on_private_postgres(tmp_path: Path) -> Iterator[tuple[PostgresCluster, httpx.Client, Any]]:
    signing_key = new_signing_key()
    with private_postgres() as cluster:
        port = free_port()
        env = huhang_env(
            storage="postgres", database_url=cluster.url, schema_prefix=SCHEMA_PREFIX, transport="inprocess",
            auth_signing_key=signing_key, data_dir=str(tmp_path / "data"),
            unavailable_retry_after_s=str(RETRY_AFTER_S),
        )
        log = tmp_path / "api-intake.log"
        with huhang_process(["api", "intake", "--port", str(port)], env, log) as process:
            try:
                wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=90, process=process)
            except (TimeoutError, RuntimeError):
                raise AssertionError(log.read_text()[-3000:]) from None
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=minted_auth(signing_key),
                              timeout=CLIENT_TIMEOUT_S) as client:
                yield cluster, client, process
            assert process.poll() is None, log.read_text()[-3000:]  # never restarted, never crashed


def stored(cluster: PostgresCluster, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(cluster.url) as conn:
        return list(conn.execute(sql, params).fetchall())


def topic_counts(cluster: PostgresCluster) -> dict[str, int]:
    rows = stored(cluster, f"SELECT topic, count(*) FROM {EVENTS} GROUP BY topic")
    return {topic.rsplit(":", 1)[-1]: count for topic, count in rows}


def reports_stored(cluster: PostgresCluster, report_id: uuid.UUID) -> int:
    return int(stored(
        cluster, f"SELECT count(*) FROM {EVENTS} WHERE originator_id = %s AND topic LIKE %s",
        report_id, "%:Report.Received",
    )[0][0])


def assert_clean_503(attempt: Attempt) -> None:
    assert attempt.content_type == PROBLEM_JSON, attempt
    assert attempt.retry_after == str(RETRY_AFTER_S), attempt
    assert attempt.answer["type"] == UNAVAILABLE_TYPE, attempt
    assert attempt.answer["status"] == 503, attempt


@pytest.mark.timeout(240)
def test_postgresql_restarted_under_load(intake_on_private_postgres: tuple[PostgresCluster, httpx.Client, Any]) -> None:
    cluster, client, _process = intake_on_private_postgres
    first = client.post("/v1/reports", json=Reporter(client).body(4_999), headers={"Idempotency-Key": "warm-up"})
    assert first.status_code == 201, first.text
    warm_case, warm_child = first.json()["case_id"], first.json()["child_id"]
    dropout_path = f"/v1/children/{warm_child}/school-dropouts"
    dropout = {"school_code": "3303820001", "last_attended_on": "2026-11-20"}

    with Reporter(client) as reporter:
        time.sleep(3.0)
        stop_began = time.monotonic()
        cluster.stop("fast")  # terminates every session: what a restart does to requests in flight
        down_at = time.monotonic()
        # While it is down, a route on the read models answers at once: 503 problem+json with Retry-After
        during = client.get(f"/v1/cases/{warm_case}/timeline")
        assert during.status_code == 503, during.text
        assert during.headers["content-type"] == PROBLEM_JSON
        assert during.headers["retry-after"] == str(RETRY_AFTER_S)
        assert during.json()["type"] == UNAVAILABLE_TYPE
        # A fact posted with an Idempotency-Key while the database is down is refused, and recorded once when
        # retried after the restart (below)
        refused_fact = client.post(dropout_path, json=dropout, headers={"Idempotency-Key": "dropout-1"})
        assert refused_fact.status_code == 503, refused_fact.text
        assert refused_fact.headers["retry-after"] == str(RETRY_AFTER_S)
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.headers["retry-after"] == str(RETRY_AFTER_S)
        time.sleep(max(0.0, 3.0 - (time.monotonic() - down_at)))
        cluster.start()
        up_at = time.monotonic()
        # New reports succeed again without restarting the service: ten sent after the restart, or give up
        deadline = up_at + 30.0
        while time.monotonic() < deadline:
            after = [a for a in reporter.snapshot() if a.sent_at > up_at and a.status == 201]
            if len(after) >= 10:
                break
            time.sleep(0.2)
    assert client.get("/readyz").status_code == 200

    attempts = reporter.snapshot()
    summary = {
        "attempts": len(attempts), "201": sum(a.status == 201 for a in attempts),
        "503": sum(a.status == 503 for a in attempts),
        "in flight during the outage": sum(a.sent_at < up_at and a.answered_at > stop_began for a in attempts),
    }
    print(f"PostgreSQL restart under load: {summary}")  # shown with -s / -rA
    # Every answer is 201 or a clean 503: no 500, no other status, no connection reset or timeout.
    assert [a for a in attempts if a.transport_error is not None] == [], summary
    assert [(a.key, a.status, a.answer) for a in attempts if a.status not in (201, 503)] == [], summary
    for attempt in attempts:
        if attempt.status == 503:
            assert_clean_503(attempt)
    assert summary["in flight during the outage"] >= 1, summary
    after_restart = [a for a in attempts if a.sent_at > up_at and a.status == 201]
    assert len(after_restart) >= 10, summary

    # A report refused with 503 is absent, or (its commit's answer lost with the connection) stored once; retried
    # with the same Idempotency-Key it is stored once, and the retry of one already stored replays it.
    refused = [a for a in attempts if a.status == 503]
    for attempt in refused:
        before_retry = reports_stored(cluster, attempt.report_id)
        assert before_retry in (0, 1), attempt
        retried = reporter.file(attempt.key, attempt.body)
        assert retried.status == 201, retried
        assert retried.answer["report_id"] == str(attempt.report_id)
        assert retried.replayed == (before_retry == 1), retried
        assert reports_stored(cluster, attempt.report_id) == 1

    fact = client.post(dropout_path, json=dropout, headers={"Idempotency-Key": "dropout-1"})
    assert fact.status_code == 201, fact.text
    again = client.post(dropout_path, json=dropout, headers={"Idempotency-Key": "dropout-1"})
    assert again.status_code == 201, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == fact.json()
    assert topic_counts(cluster).get("InboundFact.Reported") == 1

    # Every report acknowledged, before, during and after the restart (and every retried one), is there once.
    acknowledged = [a for a in attempts if a.status == 201] + refused
    for attempt in acknowledged:
        assert reports_stored(cluster, attempt.report_id) == 1, attempt
        case_id = uuid.UUID(attempt.answer["case_id"]) if attempt.status == 201 else None
        if case_id is None:
            continue
        case = client.get(f"/v1/cases/{case_id}")
        assert case.status_code == 200, case.text
        assert [r["report_id"] for r in case.json()["reports"]] == [str(attempt.report_id)], case.json()

    # Nothing half-written: each report was about a new child, saved with its case and report in one transaction,
    # so the store holds exactly as many children, cases, case-report links and reports as reports filed, and no
    # case without its report.
    filed = len(acknowledged) + 1  # and the warm-up report
    counts = topic_counts(cluster)
    assert counts.get("Report.Received") == filed, (counts, summary)
    assert counts.get("Case.Opened") == filed, counts
    assert counts.get("Case.ReportFiled") == filed, counts
    assert counts.get("Child.Registered") == filed, counts
    assert counts.get("Child.CaseOpened") == filed, counts
    orphans = stored(cluster, f"""
        SELECT opened.originator_id FROM {EVENTS} AS opened
        WHERE opened.topic LIKE %s AND NOT EXISTS (
            SELECT 1 FROM {EVENTS} AS filed
            WHERE filed.originator_id = opened.originator_id AND filed.topic LIKE %s)
    """, "%:Case.Opened", "%:Case.ReportFiled")
    assert orphans == []

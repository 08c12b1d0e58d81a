"""Case reconstruction as of any moment: the pure fold (in memory), the snapshots (equal to folding from the start,
late events included) and ``GET /v1/cases/{case_id}/history`` (404 before the first event, 422 naming ``as_of``,
the same answer every time).

``synthetic_case_events`` is also what ``bench/reconstruction.py`` feeds the timeline with.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from faker import Faker
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from contracts.envelope import CloudEvent
from contracts.events import (
    ChildFileUpdated,
    ChildFileUpdatedData,
    CourtProtectionOrderIssued,
    CourtProtectionOrderIssuedData,
    GuardianshipRiskAssessed,
    GuardianshipRiskAssessedData,
    InterventionDocument,
    InterventionRecorded,
    InterventionRecordedData,
    ReferralEscalated,
    ReferralEscalatedData,
    ReferralRequested,
    ReferralRequestedData,
    ReferralStatusChanged,
    ReferralStatusChangedData,
    ReportFiled,
    ReportFiledData,
    VisitRecorded,
    VisitRecordedData,
)
from contracts.vocabulary import (
    CourtOrderKind,
    EscalationKind,
    InterventionDocumentKind,
    InterventionKind,
    Priority,
    ReferralStatus,
    RiskColour,
    RiskLevel,
    VisitFinding,
    VisitKind,
)
from huhang.bootstrap import service_api
from huhang.settings import Settings
from services.intake.history import case_file, empty_case, fold, history_event, iso_time, order_key, reconstruct
from services.intake.history_store import CaseHistoryStore
from services.intake.main import IntakeService, build
from tests.support.auth import client_for

START = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
OWNERS = (Agency.police, Agency.education, Agency.health, Agency.civil_affairs, Agency.womens_federation)
STATUSES = (ReferralStatus.received, ReferralStatus.accepted, ReferralStatus.in_progress, ReferralStatus.on_hold,
            ReferralStatus.completed)


class _Case:
    """One synthetic case's ids and area (Faker zh_CN place names)."""

    def __init__(self, rng: random.Random, case_id: uuid.UUID | None = None) -> None:
        fake = Faker("zh_CN")
        fake.seed_instance(rng.randrange(2**32))
        self.rng = rng
        self.case_id = case_id or uuid.UUID(int=rng.getrandbits(128), version=4)
        self.child_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        self.township = fake.city_name() + "镇"
        self.village = fake.street_name() + "村"
        self.referrals: list[tuple[uuid.UUID, Agency]] = []
        self.correlation = uuid.UUID(int=rng.getrandbits(128), version=4)

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def envelope(self, at: datetime, actor: Agency, source: str) -> dict[str, Any]:
        return {"id": self.uuid(), "source": source, "subject": str(self.case_id), "time": at,
                "correlationid": self.correlation, "causationid": self.correlation, "actoragency": actor}

    def area(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "child_id": self.child_id, "township": self.township, "village": self.village}

    def report(self, at: datetime) -> ReportFiled:
        e = self.envelope(at, Agency.education, "/huhang/intake")
        e["id"] = e["correlationid"] = self.correlation
        e.pop("causationid")
        return ReportFiled(**e, dataschema=ReportFiled.schema_uri(), data=ReportFiledData(
            report_id=self.uuid(), reporter_agency=Agency.education, reporter_role="teacher",
            concern_category=self.rng.choice(["guardian_neglect", "abandonment", "caregiver_unable"]),
            urgency=self.rng.choice(["routine", "urgent"]), child_categories=("left_behind",),
            observed_on=at.date(), **self.area()))

    def next_event(self, at: datetime) -> CloudEvent:
        rng = self.rng
        kind = rng.random()
        if kind < 0.12 or not self.referrals:
            referral_id, owner = self.uuid(), rng.choice(OWNERS)
            self.referrals.append((referral_id, owner))
            return ReferralRequested(**self.envelope(at, Agency.civil_affairs, "/huhang/referral"),
                                     dataschema=ReferralRequested.schema_uri(), data=ReferralRequestedData(
                referral_id=referral_id, owner_agency=owner, requester_agency=Agency.civil_affairs,
                referral_type="guardianship_intervention", priority=rng.choice(list(Priority)),
                due_at=at + timedelta(hours=24), plan_tasks=(4, 6), rule_id="neglect-to-police",
                rules_version=f"2026.{rng.randint(1, 3)}", source_event_id=self.correlation, **self.area()))
        if kind < 0.55:
            referral_id, owner = rng.choice(self.referrals)
            status = rng.choice(STATUSES)
            return ReferralStatusChanged(**self.envelope(at, owner, "/huhang/referral"),
                                         dataschema=ReferralStatusChanged.schema_uri(), data=ReferralStatusChangedData(
                referral_id=referral_id, case_id=self.case_id, owner_agency=owner, status=status,
                reason_code="awaiting_guardian" if status is ReferralStatus.on_hold else None))
        if kind < 0.62:
            referral_id, owner = rng.choice(self.referrals)
            return ReferralEscalated(**self.envelope(at, Agency.civil_affairs, "/huhang/referral"),
                                     dataschema=ReferralEscalated.schema_uri(), data=ReferralEscalatedData(
                referral_id=referral_id, case_id=self.case_id, owner_agency=owner, level=rng.randint(1, 2),
                kind=EscalationKind.overdue_acceptance, supervising_agency=Agency.civil_affairs,
                overdue_since=at - timedelta(hours=1)))
        if kind < 0.72:
            level = rng.choice(list(RiskLevel))
            colour = {RiskLevel.low: RiskColour.green, RiskLevel.medium: RiskColour.yellow}.get(level, RiskColour.red)
            return GuardianshipRiskAssessed(**self.envelope(at, Agency.civil_affairs, "/huhang/guardianship"),
                                            dataschema=GuardianshipRiskAssessed.schema_uri(),
                                            data=GuardianshipRiskAssessedData(
                assessment_id=self.uuid(), risk_level=level, colour=colour, previous_risk_level=None,
                factors=("guardian_absent",), **self.area()))
        if kind < 0.86:
            visited = at.date()
            return VisitRecorded(**self.envelope(at, Agency.civil_affairs, "/huhang/guardianship"),
                                 dataschema=VisitRecorded.schema_uri(), data=VisitRecordedData(
                visit_id=self.uuid(), kind=rng.choice(list(VisitKind)), visited_on=visited,
                findings=(rng.choice(list(VisitFinding)),), next_contact_due_on=visited + timedelta(days=30),
                next_home_visit_due_on=visited + timedelta(days=90), **self.area()))
        if kind < 0.93:
            return InterventionRecorded(**self.envelope(at, Agency.police, "/huhang/guardianship"),
                                        dataschema=InterventionRecorded.schema_uri(), data=InterventionRecordedData(
                intervention_id=self.uuid(), kind=rng.choice(list(InterventionKind)), agency=Agency.police,
                documents=(InterventionDocument(kind=InterventionDocumentKind.reprimand_letter,
                                                reference=f"训诫-{rng.randint(1, 9999):04d}"),), **self.area()))
        if kind < 0.96:
            return CourtProtectionOrderIssued(**self.envelope(at, Agency.court, "/huhang/guardianship"),
                                              dataschema=CourtProtectionOrderIssued.schema_uri(),
                                              data=CourtProtectionOrderIssuedData(
                order_id=self.uuid(), order_kind=CourtOrderKind.personal_safety_protection,
                court_case_number=f"(2026)民保令{rng.randint(1, 999)}号", issued_on=at.date(),
                expires_on=at.date() + timedelta(days=180), **self.area()))
        return ChildFileUpdated(**self.envelope(at, Agency.civil_affairs, "/huhang/intake"),
                                dataschema=ChildFileUpdated.schema_uri(), data=ChildFileUpdatedData(
            child_id=self.child_id, case_id=self.case_id, township=self.township, village=self.village,
            categories=("left_behind",), added_categories=(), removed_categories=(),
            category_reasons=("both_parents_away",), parents_away=True, parents_away_since=date(2025, 2, 1),
            frequent_visit_reasons=(), has_entrusted_caregiver=rng.random() < 0.5))


def synthetic_case_events(
    n: int, *, seed: int = 7, start: datetime = START, case_id: uuid.UUID | None = None,
) -> list[CloudEvent]:
    """A case with ``n`` integration events from intake, referral and guardianship, in time order; about one in ten
    shares its time with the event before (the event id breaks the tie)."""
    case = _Case(random.Random(seed), case_id)
    events: list[CloudEvent] = [case.report(start)]
    at = start
    while len(events) < n:
        if case.rng.random() > 0.1:
            at += timedelta(minutes=case.rng.randint(1, 600), microseconds=case.rng.randint(0, 999_999))
        events.append(case.next_event(at))
    return events


def as_row(event: CloudEvent) -> dict[str, Any]:
    """A CloudEvent as the timeline stores it."""
    return {
        "event_id": str(event.id), "time": event.time, "type": event.type,  # type: ignore[attr-defined]
        "source": event.source, "actor_agency": event.actoragency.value, "correlation_id": str(event.correlationid),
        "causation_id": str(event.causationid) if event.causationid else None,
        "data": event.data.model_dump(mode="json"),  # type: ignore[attr-defined]
    }


def until(events: list[CloudEvent], moment: datetime) -> list[dict[str, Any]]:
    return [history_event(as_row(e)) for e in events if e.time <= moment]


# --- the pure fold ---------------------------------------------------------------------------------------------


def test_the_fold_says_how_the_case_stood_at_each_moment() -> None:
    events = synthetic_case_events(40, seed=3)
    report = events[0]
    assert isinstance(report, ReportFiled)
    requested = next(e for e in events if isinstance(e, ReferralRequested))
    case, entries = reconstruct(str(report.subject), until(events, report.time))
    assert case["event_count"] == 1
    assert case["referrals"] == {}
    assert case["child_id"] == str(report.data.child_id)
    assert case["concern_category"] == report.data.concern_category.value
    assert [e["type"] for e in entries] == [ReportFiled.event_type]
    assert entries[0]["service"] == "intake"
    assert entries[0]["actor_agency"] == "education"

    case, entries = reconstruct(str(report.subject), until(events, requested.time))
    referral = case["referrals"][str(requested.data.referral_id)]
    assert referral["owner_agency"] == requested.data.owner_agency.value
    assert referral["rules_version"] == requested.data.rules_version
    entry = next(e for e in entries if e["event_id"] == str(requested.id))
    assert entry["rule_version"] == requested.data.rules_version
    assert entry["rule_id"] == "neglect-to-police"
    assert entry["correlation_id"] == str(report.id)
    assert entry["service"] == "referral"


def test_the_latest_status_of_each_referral_is_the_last_event_in_order() -> None:
    events = synthetic_case_events(300, seed=11)
    case, _ = reconstruct(str(events[0].subject), until(events, events[-1].time))
    for referral_id, owner in {e.data.referral_id: e for e in events if isinstance(e, ReferralRequested)}.items():
        last = [e for e in events if isinstance(e, ReferralStatusChanged) and e.data.referral_id == referral_id]
        expected = last[-1].data.status.value if last else "requested"
        # Events with the same time are ordered by id, not by the order they were made in.
        if last and sum(e.time == last[-1].time for e in events) > 1:
            continue
        assert case["referrals"][str(referral_id)]["status"] == expected, owner
    shown = case_file(case)
    assert sum(sum(s.values()) for s in shown["referrals_by_agency"].values()) == len(shown["referrals"])


def test_the_fold_is_the_same_whatever_the_arrival_order_and_leaves_its_input_alone() -> None:
    events = [history_event(as_row(e)) for e in synthetic_case_events(120, seed=5)]
    shuffled = events[:]
    random.Random(1).shuffle(shuffled)
    assert reconstruct("c", shuffled) == reconstruct("c", events)
    start = empty_case("c")
    half = fold(start, sorted(events, key=order_key)[:60])
    assert start == empty_case("c")
    assert fold(half, sorted(events, key=order_key)[60:]) == reconstruct("c", events)[0]


def test_an_unknown_event_type_is_listed_and_counted_but_changes_nothing_else() -> None:
    events = [history_event(as_row(e)) for e in synthetic_case_events(3, seed=2)]
    odd = dict(events[-1], event_id=str(uuid.uuid4()), type="cn.huhang.something-new.v1",
               data={"case_id": events[0]["data"]["case_id"], "reason_code": "x", "by": "officer-7"})
    before, _ = reconstruct("c", events)
    after, entries = reconstruct("c", [*events, odd])
    assert after["other_events"] == 1
    assert after["event_count"] == before["event_count"] + 1
    assert {k: v for k, v in after.items() if k not in ("other_events", "event_count")} == {
        k: v for k, v in before.items() if k not in ("other_events", "event_count")}
    last = next(e for e in entries if e["event_id"] == odd["event_id"])
    assert (last["actor"], last["reason"]) == ("officer-7", "x")


# --- snapshots -------------------------------------------------------------------------------------------------


@pytest.fixture
def intake() -> Iterator[IntakeService]:
    built = build(Settings(storage="memory"))
    yield built
    built.application.close()
    built.positions.engine.dispose()


def feed(service: IntakeService, events: list[CloudEvent], batch: int = 37) -> None:
    """Through the real timeline handler, in batches (as a consumer delivers them)."""
    for i in range(0, len(events), batch):
        service.timeline.handle(events[i:i + batch])


def test_snapshots_are_made_every_hundred_events_and_reconstruct_exactly_what_folding_everything_gives(
    intake: IntakeService,
) -> None:
    events = synthetic_case_events(450, seed=13)
    feed(intake, events)
    history: CaseHistoryStore = intake.timeline.history
    case_id = str(events[0].subject)
    with intake.timeline.engine.connect() as conn:
        from sqlalchemy import text

        counts = conn.execute(text("SELECT event_count FROM case_history_snapshots WHERE case_id = :c "
                                   "ORDER BY event_count"), {"c": case_id}).scalars().all()
    assert counts == [100, 200, 300, 400]
    rng = random.Random(4)
    moments = [events[0].time, events[99].time, events[100].time, events[-1].time + timedelta(days=1)]
    moments += [events[0].time + (events[-1].time - events[0].time) * rng.random() for _ in range(60)]
    for moment in moments:
        fast = history.history(case_id, moment)
        slow = history.history(case_id, moment, use_snapshots=False)
        assert fast is not None
        assert slow is not None
        assert fast == slow
        assert (fast.case, fast.events) == reconstruct(case_id, until(events, moment))


def test_a_late_event_before_a_snapshot_is_folded_in_its_place(intake: IntakeService) -> None:
    events = synthetic_case_events(260, seed=17)
    late = events.pop(50)  # arrives after everything, though it happened early
    feed(intake, events)
    feed(intake, [late])
    case_id = str(events[0].subject)
    history: CaseHistoryStore = intake.timeline.history
    everything = [*events, late]
    for moment in (late.time, events[150].time, events[-1].time):
        fast = history.history(case_id, moment)
        assert fast is not None
        assert (fast.case, fast.events) == reconstruct(case_id, until(everything, moment))
        assert fast == history.history(case_id, moment, use_snapshots=False)


def test_a_redelivered_batch_changes_nothing(intake: IntakeService) -> None:
    events = synthetic_case_events(230, seed=19)
    feed(intake, events)
    case_id = str(events[0].subject)
    before = intake.timeline.history.history(case_id, events[-1].time)
    feed(intake, events[80:200], batch=50)
    assert intake.timeline.history.history(case_id, events[-1].time) == before


# --- the endpoint ----------------------------------------------------------------------------------------------


@pytest.fixture
def client(intake: IntakeService) -> TestClient:
    return client_for(service_api(intake.settings, intake))


def test_history_endpoint_answers_the_case_as_of_a_moment_the_same_every_time(
    intake: IntakeService, client: TestClient,
) -> None:
    events = synthetic_case_events(150, seed=23)
    feed(intake, events)
    case_id = events[0].subject
    moment = events[120].time
    url = f"/v1/cases/{case_id}/history"
    first = client.get(url, params={"as_of": moment.astimezone(UTC).isoformat()})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["case"]["event_count"] == len(until(events, moment))
    assert [e["event_id"] for e in body["events"]] == [e["event_id"] for e in sorted(until(events, moment),
                                                                                        key=order_key)]
    assert {"actor", "reason", "rule_version", "correlation_id", "causation_id", "service"} <= set(body["events"][0])
    beijing = moment.astimezone(timezone(timedelta(hours=8))).isoformat()  # the same moment, another offset
    again = client.get(url, params={"as_of": beijing})
    assert again.json() == body
    now = client.get(url).json()
    assert now["case"]["event_count"] == len(events)


def test_history_before_the_first_event_is_404_and_a_malformed_as_of_is_422_naming_it(
    intake: IntakeService, client: TestClient,
) -> None:
    events = synthetic_case_events(5, seed=29)
    feed(intake, events)
    url = f"/v1/cases/{events[0].subject}/history"
    early = client.get(url, params={"as_of": iso_time(events[0].time - timedelta(microseconds=1))})
    assert early.status_code == 404
    assert early.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"/v1/cases/{uuid.uuid4()}/history").status_code == 404
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "2026-03-02T10:00:00"):
        answer = client.get(url, params={"as_of": bad})
        assert answer.status_code == 422, bad
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in answer.json()["errors"]] == ["as_of"]
    plus = client.get(f"{url}?as_of=2026-03-02T10:00:00+08:00")  # '+' unescaped: a space once decoded
    assert plus.status_code == 422
    assert "%2B" in plus.json()["errors"][0]["reason"]

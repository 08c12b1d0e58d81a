"""Referral's workflow in memory, without Prefect: a rejected or failed referral returns to the router, which opens
it at the next agency; transfers and reassignment; escalation of overdue referrals and the overdue sweep; the
inbox filters and the workflow's HTTP endpoints; routing rules reloaded without a restart."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from contracts.commands import OpenReferral
from contracts.envelope import CloudEvent
from contracts.events import (
    ReferralEscalated,
    ReferralOwnerChanged,
    ReferralReturned,
    ReferralStatusChanged,
    ReportFiled,
)
from contracts.routing import load_rules
from contracts.vocabulary import EscalationKind, Outcome, Priority, ReferralStatus
from huhang.bootstrap import service_api
from huhang.problems import Unprocessable
from huhang.settings import Settings
from services.referral.application import SUPERVISION_TYPE, ReferralApplication
from services.referral.domain import IllegalTransition, NotPermitted, Referral
from services.referral.integration import to_integration_events
from services.referral.main import ReferralService
from services.referral.sweep import sweep_overdue
from tests.support.auth import client_for
from tests.support.referrals import inbox_refresher, referral_service
from tests.unit.test_referral import opened
from workflows.routing import plan_referrals
from workflows.rules_provider import RulesProvider

S = ReferralStatus
RULES = load_rules()
OWNER, REQUESTER, BYSTANDER = Agency.police, Agency.education, Agency.health
PACKAGED_RULES = Path(__file__).parents[2] / "contracts" / "routing_rules.yaml"


@pytest.fixture
def service(memory_settings: Settings) -> Iterator[ReferralService]:
    with referral_service(memory_settings) as built:
        yield built


@pytest.fixture
def referrals(service: ReferralService) -> ReferralApplication:
    return service.application


@pytest.fixture
def client(memory_settings: Settings, service: ReferralService) -> TestClient:
    return client_for(service_api(memory_settings, service))


@pytest.fixture
def refresh_inbox(memory_settings: Settings, service: ReferralService) -> Callable[[], None]:
    return inbox_refresher(memory_settings, service)


def contract_events(referrals: ReferralApplication) -> list[CloudEvent]:
    """The integration events of everything stored, read from the notification log (the outbox)."""
    notifications = referrals.recorder.select_notifications(start=None, limit=10_000)
    return [ce for n in notifications for ce in to_integration_events(referrals.mapper.to_domain_event(n))]


def returned_events(referrals: ReferralApplication) -> list[ReferralReturned]:
    return [e for e in contract_events(referrals) if isinstance(e, ReferralReturned)]


def a_neglect_report() -> ReportFiled:
    event_id, case_id = uuid.uuid4(), uuid.uuid4()
    return ReportFiled.model_validate(
        {
            "id": event_id,
            "source": "/huhang/test",
            "subject": str(case_id),
            "time": datetime.now(UTC),
            "dataschema": ReportFiled.schema_uri(),
            "correlationid": event_id,
            "actoragency": "education",
            "data": {
                "report_id": uuid.uuid4(),
                "case_id": case_id,
                "child_id": uuid.uuid4(),
                "reporter_agency": "education",
                "reporter_role": "teacher",
                "concern_category": "guardian_neglect",
                "urgency": "urgent",
                "child_categories": (),
                "township": "虹桥镇",
                "village": "溪西村",
                "observed_on": date(2026, 11, 27),
            },
        }
    )


def routed_referral(referrals: ReferralApplication, agency: Agency) -> OpenReferral:
    """The referral the packaged rules open at ``agency`` for a neglect report, opened."""
    (command,) = [c for c in plan_referrals(RULES, [a_neglect_report()]) if c.owner_agency == agency]
    referrals.open_referrals([command])
    return command


def reject(referrals: ReferralApplication, command: OpenReferral) -> None:
    referrals.change_status(command.referral_id, S.rejected, command.owner_agency.value, reason_code="out_of_area")


def open_due_in(referrals: ReferralApplication, due_in: timedelta, **changes: Any) -> Referral:
    return referrals.get(opened(referrals, due_at=datetime.now(UTC) + due_in, **changes))


def window(referral: Referral) -> timedelta:
    return max(referral.due_at - referral.created_on, timedelta(hours=1))


# --- returned referrals go to the next agency ---------------------------------------------------------------------


def test_a_rejected_referral_is_returned_with_its_reason_and_the_agencies_left(referrals):
    command = routed_referral(referrals, Agency.police)

    reject(referrals, command)

    (returned,) = returned_events(referrals)
    d = returned.data
    assert (d.referral_id, d.status, d.reason_code, d.returned_by) == (
        command.referral_id,
        S.rejected,
        "out_of_area",
        Agency.police,
    )
    assert d.next_agencies == (Agency.civil_affairs, Agency.wcwc)
    assert d.requester_agency == command.requester_agency


def test_a_rejected_referral_is_opened_once_at_the_lead_agency_with_the_same_type(referrals):
    command = routed_referral(referrals, Agency.police)
    reject(referrals, command)

    (rerouted,) = plan_referrals(RULES, returned_events(referrals))

    assert (rerouted.owner_agency, rerouted.referral_type, rerouted.case_id, rerouted.fallback_agencies) == (
        Agency.civil_affairs,
        command.referral_type,
        command.case_id,
        (Agency.wcwc,),
    )
    assert rerouted.requester_agency == command.requester_agency  # the original requester still asks


def test_rerouting_the_same_returned_referral_twice_opens_it_once(referrals):
    command = routed_referral(referrals, Agency.police)
    reject(referrals, command)
    events = returned_events(referrals)

    first, again = plan_referrals(RULES, events), plan_referrals(RULES, events)
    opened_results = referrals.open_referrals(first) + referrals.open_referrals(again)

    assert [c.referral_id for c in first] == [c.referral_id for c in again] != [command.referral_id]
    assert [o.created for o in opened_results] == [True, False]


def test_a_referral_the_lead_agency_rejects_goes_to_the_working_committee_office(referrals):
    command = routed_referral(referrals, Agency.civil_affairs)
    reject(referrals, command)

    (rerouted,) = plan_referrals(RULES, returned_events(referrals))

    assert (rerouted.owner_agency, rerouted.referral_type, rerouted.fallback_agencies) == (
        Agency.wcwc,
        command.referral_type,
        (),
    )


def test_a_returned_referral_with_no_agency_left_opens_nothing(referrals):
    reject(referrals, routed_referral(referrals, Agency.police))
    (to_lead,) = plan_referrals(RULES, returned_events(referrals))
    referrals.open_referrals([to_lead])
    reject(referrals, to_lead)
    (to_office,) = plan_referrals(RULES, returned_events(referrals)[-1:])
    assert to_office.owner_agency == Agency.wcwc
    referrals.open_referrals([to_office])
    reject(referrals, to_office)

    last_returned = returned_events(referrals)[-1]

    assert last_returned.data.next_agencies == ()
    assert plan_referrals(RULES, [last_returned]) == []


def test_a_failed_referral_is_opened_at_the_lead_agency(referrals):
    command = routed_referral(referrals, Agency.police)
    for status in (S.accepted, S.in_progress):
        referrals.change_status(command.referral_id, status, "police")
    referrals.change_status(command.referral_id, S.failed, "police", reason_code="family_unreachable")

    (rerouted,) = plan_referrals(RULES, returned_events(referrals))

    assert returned_events(referrals)[0].data.reason_code == "family_unreachable"
    assert (rerouted.owner_agency, rerouted.referral_type) == (Agency.civil_affairs, command.referral_type)


def test_free_text_given_as_a_reason_code_never_reaches_an_integration_event(referrals):
    referral_id = opened(referrals)

    with contextlib.suppress(Unprocessable):
        referrals.change_status(referral_id, S.accepted, OWNER.value, reason_code="测试甲住溪西村3组")

    published = [e.data.reason_code for e in contract_events(referrals) if isinstance(e, ReferralStatusChanged)]
    assert "测试甲住溪西村3组" not in published


# --- transfer and reassignment ------------------------------------------------------------------------------------


def propose_to_education(referrals: ReferralApplication) -> uuid.UUID:
    referral_id = opened(referrals)
    referrals.propose_transfer(referral_id, Agency.education.value, OWNER.value, "学籍问题", None)
    return referral_id


def test_accepting_a_transfer_makes_the_new_agency_owner_of_an_accepted_referral(referrals):
    referral_id = propose_to_education(referrals)

    referral = referrals.answer_transfer(referral_id, Agency.education.value, True, None, None)

    assert (referral.owner_agency, referral.status, referral.pending_owner) == ("education", "accepted", None)


def test_accepting_a_transfer_publishes_the_change_of_owner(referrals):
    referral_id = propose_to_education(referrals)

    referrals.answer_transfer(referral_id, Agency.education.value, True, None, None)

    (changed,) = [e for e in contract_events(referrals) if isinstance(e, ReferralOwnerChanged)]
    assert (changed.data.referral_id, changed.data.from_agency, changed.data.to_agency) == (
        referral_id,
        Agency.police,
        Agency.education,
    )


def test_declining_a_transfer_keeps_the_owner(referrals):
    referral_id = propose_to_education(referrals)

    referral = referrals.answer_transfer(referral_id, Agency.education.value, False, "非本单位职责", None)

    assert (referral.owner_agency, referral.status, referral.pending_owner) == ("police", "requested", None)


def test_only_the_agency_proposed_may_answer_a_transfer(referrals):
    referral_id = propose_to_education(referrals)

    with pytest.raises(NotPermitted) as refused:
        referrals.answer_transfer(referral_id, BYSTANDER.value, True, None, None)

    assert refused.value.status == 403
    assert referrals.get(referral_id).owner_agency == "police"


def test_a_transfer_pending_when_the_referral_closed_can_no_longer_be_accepted(referrals):
    referral_id = propose_to_education(referrals)
    referrals.change_status(referral_id, S.rejected, OWNER.value, reason_code="out_of_area")

    with pytest.raises(IllegalTransition):
        referrals.answer_transfer(referral_id, Agency.education.value, True, None, None)


@pytest.mark.parametrize("actor", [OWNER, Agency.civil_affairs, Agency.wcwc])
def test_the_owner_or_a_supervising_agency_assigns_an_officer(referrals, actor):
    referral_id = opened(referrals)

    referral = referrals.reassign(referral_id, "PS-0371", actor.value, None)

    assert referral.assignee == "PS-0371"


def test_a_bystander_cannot_assign_an_officer(referrals):
    referral_id = opened(referrals)

    with pytest.raises(NotPermitted):
        referrals.reassign(referral_id, "WJ-0001", BYSTANDER.value, None)

    assert referrals.get(referral_id).assignee is None


# --- escalation ---------------------------------------------------------------------------------------------------


def test_a_referral_not_yet_due_is_not_escalated(referrals):
    referral = open_due_in(referrals, timedelta(hours=2))

    assert referrals.escalate_if_due(referral.id, referral.due_at - timedelta(minutes=1)) is None


def test_a_referral_not_accepted_by_its_due_time_is_escalated_to_level_1(referrals):
    referral = open_due_in(referrals, timedelta(hours=2))

    escalation = referrals.escalate_if_due(referral.id, referral.due_at + timedelta(minutes=1))

    assert escalation is not None
    assert (escalation.level, escalation.kind, escalation.supervision_referral_id) == (
        1,
        EscalationKind.overdue_acceptance,
        None,
    )
    assert referrals.get(referral.id).escalation_level == 1


def test_level_2_follows_once_overdue_by_the_same_window_again(referrals):
    referral = open_due_in(referrals, timedelta(hours=2))
    referrals.escalate_if_due(referral.id, referral.due_at + timedelta(minutes=1))

    escalation = referrals.escalate_if_due(referral.id, referral.due_at + window(referral) + timedelta(minutes=1))

    assert escalation is not None
    assert escalation.level == 2


def test_level_2_waits_at_least_an_hour_after_the_due_time(referrals):
    referral = open_due_in(referrals, timedelta(minutes=10))

    escalation = referrals.escalate_if_due(referral.id, referral.due_at + timedelta(minutes=59))

    assert escalation is not None
    assert escalation.level == 1


def escalate_to_level_2(referrals: ReferralApplication, referral: Referral) -> Referral:
    escalation = referrals.escalate_if_due(referral.id, referral.due_at + window(referral) + timedelta(minutes=1))
    assert escalation is not None
    assert escalation.supervision_referral_id is not None
    return referrals.get(escalation.supervision_referral_id)


def test_level_2_opens_an_asap_supervision_referral_at_the_lead_agency(referrals):
    referral = open_due_in(referrals, timedelta(hours=2))

    supervision = escalate_to_level_2(referrals, referral)

    assert (supervision.owner_agency, supervision.priority, supervision.referral_type, supervision.case_id) == (
        "civil_affairs",
        Priority.asap.value,
        SUPERVISION_TYPE,
        referral.case_id,
    )


def test_level_2_of_a_lead_agency_referral_opens_the_supervision_referral_at_the_committee_office(referrals):
    referral = open_due_in(referrals, timedelta(hours=2), owner_agency=Agency.civil_affairs)

    supervision = escalate_to_level_2(referrals, referral)

    assert (supervision.owner_agency, supervision.priority) == ("wcwc", Priority.asap.value)


def test_the_supervision_referral_is_not_overdue_when_it_is_opened(referrals):
    referral = open_due_in(referrals, timedelta(days=3))
    escalated_at = referral.due_at + window(referral) + timedelta(minutes=1)

    supervision = escalate_to_level_2(referrals, referral)

    assert supervision.overdue(escalated_at) is None


def test_escalating_again_at_the_same_time_escalates_nothing(referrals):
    referral = open_due_in(referrals, timedelta(hours=2))
    at = referral.due_at + window(referral) + timedelta(minutes=1)
    referrals.escalate_if_due(referral.id, at)
    version = referrals.get(referral.id).version

    assert referrals.escalate_if_due(referral.id, at) is None
    assert referrals.get(referral.id).version == version


def test_an_accepted_referral_past_its_completion_time_is_escalated_as_overdue_completion(referrals):
    now = datetime.now(UTC)
    referral_id = opened(referrals, due_at=now + timedelta(hours=1), complete_by=now + timedelta(hours=3))
    referrals.change_status(referral_id, S.accepted, OWNER.value)

    escalation = referrals.escalate_if_due(referral_id, now + timedelta(hours=3, minutes=1))

    assert escalation is not None
    assert (escalation.level, escalation.kind) == (1, EscalationKind.overdue_completion)


def test_a_referral_escalated_for_late_acceptance_is_escalated_again_when_its_completion_is_overdue(referrals):
    now = datetime.now(UTC)
    referral_id = opened(referrals, due_at=now + timedelta(hours=2), complete_by=now + timedelta(days=2))
    referrals.escalate_if_due(referral_id, now + timedelta(hours=5))  # level 2: accepted far too late
    referrals.change_status(referral_id, S.accepted, OWNER.value)

    escalation = referrals.escalate_if_due(referral_id, now + timedelta(days=2, minutes=1))

    assert escalation is not None
    assert escalation.kind == EscalationKind.overdue_completion


def test_a_completed_referral_is_never_escalated(referrals):
    referral = open_due_in(referrals, timedelta(hours=2))
    for status in (S.accepted, S.in_progress):
        referrals.change_status(referral.id, status, OWNER.value)
    referrals.change_status(referral.id, S.completed, OWNER.value, outcome=Outcome.resolved)

    assert referrals.escalate_if_due(referral.id, referral.due_at + timedelta(days=365)) is None


# --- the overdue sweep --------------------------------------------------------------------------------------------


def test_the_sweep_escalates_the_referrals_overdue_at_its_time(referrals, service, refresh_inbox):
    overdue = open_due_in(referrals, timedelta(hours=2))
    open_due_in(referrals, timedelta(days=3))
    refresh_inbox()

    result = sweep_overdue(referrals, service.inbox, datetime.now(UTC) + timedelta(hours=3))

    assert [(e.referral_id, e.level) for e in result.escalations] == [(overdue.id, 1)]


def test_a_second_sweep_at_the_same_time_escalates_nothing(referrals, service, refresh_inbox):
    open_due_in(referrals, timedelta(hours=2))
    refresh_inbox()
    at = datetime.now(UTC) + timedelta(hours=3)
    sweep_overdue(referrals, service.inbox, at)

    assert sweep_overdue(referrals, service.inbox, at).escalations == []


def test_an_escalation_by_the_sweep_is_published_as_referral_escalated(referrals, service, refresh_inbox):
    overdue = open_due_in(referrals, timedelta(hours=2))
    refresh_inbox()
    sweep_overdue(referrals, service.inbox, datetime.now(UTC) + timedelta(hours=3))

    escalated = [e for e in contract_events(referrals) if isinstance(e, ReferralEscalated)]

    assert [(e.data.referral_id, e.data.level) for e in escalated] == [(overdue.id, 1)]


# --- the inbox filters over HTTP ----------------------------------------------------------------------------------


def inbox_ids(client: TestClient, **params: Any) -> set[str]:
    answer = client.get(f"/v1/agencies/{OWNER.value}/referrals", params=params)
    assert answer.status_code == 200, answer.text
    return {item["referral_id"] for item in answer.json()["items"]}


def test_the_inbox_filters_by_several_statuses(client, referrals, refresh_inbox):
    accepted, rejected, _requested = opened(referrals), opened(referrals), opened(referrals)
    referrals.change_status(accepted, S.accepted, OWNER.value)
    referrals.change_status(rejected, S.rejected, OWNER.value, reason_code="duplicate")
    refresh_inbox()

    assert inbox_ids(client, status=["accepted", "rejected"]) == {str(accepted), str(rejected)}


def test_the_inbox_filters_by_priority(client, referrals, refresh_inbox):
    stat = opened(referrals, priority=Priority.stat)
    opened(referrals, priority=Priority.routine)
    refresh_inbox()

    assert inbox_ids(client, priority="stat") == {str(stat)}


def test_the_inbox_lists_only_the_overdue_referrals_when_asked(client, referrals, refresh_inbox):
    late = opened(referrals, due_at=datetime.now(UTC) - timedelta(hours=1))
    opened(referrals, due_at=datetime.now(UTC) + timedelta(days=1))
    refresh_inbox()

    assert inbox_ids(client, overdue="true") == {str(late)}


def test_the_inbox_filters_by_township(client, referrals, refresh_inbox):
    elsewhere = opened(referrals, township="莘塍街道")
    opened(referrals, township="虹桥镇")
    refresh_inbox()

    assert inbox_ids(client, township="莘塍街道") == {str(elsewhere)}


def opened_before_and_after(referrals: ReferralApplication) -> tuple[uuid.UUID, datetime, uuid.UUID]:
    before = opened(referrals)
    between = datetime.now(UTC)
    after = opened(referrals)
    return before, between, after


def test_the_inbox_lists_the_referrals_requested_from_a_time(client, referrals, refresh_inbox):
    _before, between, after = opened_before_and_after(referrals)
    refresh_inbox()

    assert inbox_ids(client, requested_from=between.isoformat()) == {str(after)}


def test_the_inbox_lists_the_referrals_requested_before_a_time(client, referrals, refresh_inbox):
    before, between, _after = opened_before_and_after(referrals)
    refresh_inbox()

    assert inbox_ids(client, requested_to=between.isoformat()) == {str(before)}


def test_the_inbox_filters_by_a_request_time_given_in_beijing_time(client, referrals, refresh_inbox):
    _before, between, after = opened_before_and_after(referrals)
    refresh_inbox()

    beijing = between.astimezone(timezone(timedelta(hours=8)))
    assert inbox_ids(client, requested_from=beijing.isoformat()) == {str(after)}


# --- the workflow's HTTP endpoints --------------------------------------------------------------------------------


def post(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, json=body)


def test_http_the_owner_proposes_a_transfer(client, referrals):
    referral_id = opened(referrals)

    answer = post(client, f"/v1/referrals/{referral_id}/transfer", {"agency": "police", "to_agency": "education"})

    assert answer.status_code == 200, answer.text
    assert (answer.json()["pending_owner"], answer.json()["owner_agency"]) == ("education", "police")


def test_http_the_agency_proposed_accepts_the_transfer_and_owns_the_referral(client, referrals):
    referral_id = propose_to_education(referrals)

    answer = post(client, f"/v1/referrals/{referral_id}/transfer/answer", {"agency": "education", "accept": True})

    assert answer.status_code == 200, answer.text
    assert (answer.json()["owner_agency"], answer.json()["status"]) == ("education", "accepted")


def test_http_another_agency_answering_a_transfer_answers_403_problem(client, referrals):
    referral_id = propose_to_education(referrals)

    answer = post(client, f"/v1/referrals/{referral_id}/transfer/answer", {"agency": "health", "accept": True})

    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"


def test_http_the_owner_assigns_an_officer(client, referrals):
    referral_id = opened(referrals)

    answer = post(client, f"/v1/referrals/{referral_id}/assignee", {"agency": "police", "officer_id": "PS-0371"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["assignee"] == "PS-0371"


def test_http_a_supervising_agency_escalates_a_referral_with_201(client, referrals):
    referral_id = opened(referrals)

    answer = post(client, f"/v1/referrals/{referral_id}/escalations", {"agency": "civil_affairs"})

    assert answer.status_code == 201, answer.text
    assert (answer.json()["level"], answer.json()["kind"]) == (1, "supervisor")


def test_http_an_agency_that_does_not_supervise_cannot_escalate(client, referrals):
    referral_id = opened(referrals)

    answer = post(client, f"/v1/referrals/{referral_id}/escalations", {"agency": "police"})

    assert answer.status_code == 403
    assert referrals.get(referral_id).escalation_level == 0


def test_http_a_sweep_as_of_a_later_time_escalates_the_referrals_overdue_then(client, referrals, refresh_inbox):
    overdue = open_due_in(referrals, timedelta(hours=2))
    refresh_inbox()

    answer = post(client, "/v1/referral-sweeps", {"now": (datetime.now(UTC) + timedelta(hours=3)).isoformat()})

    assert answer.status_code == 200, answer.text
    assert [(e["referral_id"], e["level"]) for e in answer.json()["escalations"]] == [(str(overdue.id), 1)]


def test_http_rejecting_without_a_reason_code_answers_422_naming_reason_code(client, referrals):
    referral_id = opened(referrals)

    answer = post(client, f"/v1/referrals/{referral_id}/status", {"status": "rejected", "agency": "police"})

    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["reason_code"]


def test_http_completing_without_an_outcome_answers_422_naming_outcome(client, referrals):
    referral_id = opened(referrals)
    for status in (S.accepted, S.in_progress):
        referrals.change_status(referral_id, status, OWNER.value)

    answer = post(client, f"/v1/referrals/{referral_id}/status", {"status": "completed", "agency": "police"})

    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["outcome"]


# --- routing rules reloaded without a restart ---------------------------------------------------------------------


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "routing_rules.yaml"
    shutil.copyfile(PACKAGED_RULES, path)
    return path


def rewrite(path: Path, text: str) -> None:
    """Write the file and move its modification time on, as an edit a second later would."""
    mtime_ns = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns + 1_000_000_000, mtime_ns + 1_000_000_000))


def police_made_stat(text: str) -> str:
    police = "{agency: police, referral_type: guardianship_investigation, priority: "
    changed = re.sub(r'^version: ".*"$', 'version: "2026-12-01.1"', text, count=1, flags=re.MULTILINE).replace(
        police + "urgent", police + "stat"
    )
    assert changed.count("2026-12-01.1") == 1
    assert police + "stat" in changed
    return changed


def test_a_changed_rules_file_is_in_force_without_a_restart(rules_file):
    provider = RulesProvider(rules_file)
    provider.current()

    rewrite(rules_file, police_made_stat(rules_file.read_text(encoding="utf-8")))

    (police,) = [c for c in plan_referrals(provider.current(), [a_neglect_report()]) if c.owner_agency == OWNER]
    assert (provider.current().version, police.priority) == ("2026-12-01.1", Priority.stat)


def test_a_referral_routed_after_the_change_records_the_new_rules_version(rules_file, referrals):
    provider = RulesProvider(rules_file)
    rewrite(rules_file, police_made_stat(rules_file.read_text(encoding="utf-8")))

    (police,) = [c for c in plan_referrals(provider.current(), [a_neglect_report()]) if c.owner_agency == OWNER]
    referrals.open_referrals([police])

    assert referrals.get(police.referral_id).rules_version == "2026-12-01.1"


def test_an_invalid_rules_file_is_refused_and_the_rules_in_force_stay(rules_file):
    provider = RulesProvider(rules_file)
    in_force = provider.current().version
    text = police_made_stat(rules_file.read_text(encoding="utf-8"))

    rewrite(rules_file, text.replace("agency: police,", "agency: fire_brigade,"))

    assert provider.current().version == in_force


def test_a_rules_file_that_is_not_yaml_is_refused_and_the_rules_in_force_stay(rules_file):
    provider = RulesProvider(rules_file)
    in_force = provider.current().version

    rewrite(rules_file, 'version: "2026-12-01.1"\nrules: [{id: broken\n')

    assert provider.current().version == in_force

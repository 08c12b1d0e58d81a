"""Referral on every store: idempotent opening, the lifecycle and who may move it, optimistic concurrency, the
HTTP problems it answers, and the agency inbox read model with its cursor."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from contracts.commands import OpenReferral
from contracts.vocabulary import Outcome, Priority, ReferralStatus
from huhang.bootstrap import service_api
from huhang.problems import NotFound
from huhang.settings import Settings
from services.referral.application import ReferralApplication, StaleVersion
from services.referral.domain import IllegalTransition, NotPermitted
from services.referral.main import ReferralService
from tests.support.auth import client_for, officer
from tests.support.referrals import inbox_refresher, referral_service

S = ReferralStatus
OWNER, REQUESTER, BYSTANDER = Agency.police, Agency.education, Agency.health
LEGAL_PATH = (S.received, S.accepted, S.in_progress, S.completed)


@pytest.fixture
def service(any_storage_settings: Settings) -> Iterator[ReferralService]:
    with referral_service(any_storage_settings) as built:
        yield built


@pytest.fixture
def referrals(service: ReferralService) -> ReferralApplication:
    return service.application


@pytest.fixture
def client(any_storage_settings: Settings, service: ReferralService) -> TestClient:
    return client_for(service_api(any_storage_settings, service))


@pytest.fixture
def refresh_inbox(any_storage_settings: Settings, service: ReferralService) -> Callable[[], None]:
    return inbox_refresher(any_storage_settings, service)


def an_open_referral(**changes: Any) -> OpenReferral:
    fields: dict[str, Any] = {
        "referral_id": uuid.uuid4(), "case_id": uuid.uuid4(), "child_id": uuid.uuid4(), "owner_agency": OWNER,
        "requester_agency": REQUESTER, "referral_type": "guardianship_investigation", "priority": Priority.urgent,
        "due_at": datetime.now(UTC) + timedelta(days=1), "plan_tasks": (4, 6),
        "rule_ids": ("guardian-neglect-or-abuse",), "rules_version": "2026-11-29.1", "source_event_id": uuid.uuid4(),
        "correlation_id": uuid.uuid4(), "township": "虹桥镇", "village": "溪西村",
    }
    fields.update(changes)
    return OpenReferral(**fields)


def opened(referrals: ReferralApplication, **changes: Any) -> uuid.UUID:
    command = an_open_referral(**changes)
    referrals.open_referrals([command])
    return command.referral_id


def stored(referrals: ReferralApplication) -> int:
    return referrals.recorder.max_notification_id() or 0


# --- opening ------------------------------------------------------------------------------------------------------


def test_opening_a_referral_creates_it_as_requested_at_the_owner(referrals):
    command = an_open_referral()

    (result,) = referrals.open_referrals([command])

    assert result.created is True
    referral = referrals.get(command.referral_id)
    assert (referral.status, referral.owner_agency, referral.case_id) == ("requested", "police", command.case_id)


def test_opening_the_same_referral_twice_creates_one(referrals):
    command = an_open_referral()
    referrals.open_referrals([command])
    before = stored(referrals)

    (again,) = referrals.open_referrals([command])

    assert again.created is False
    assert stored(referrals) == before


def test_a_batch_repeating_one_command_opens_it_once(referrals):
    command = an_open_referral()

    results = referrals.open_referrals([command, command])

    assert [(r.referral_id, r.created) for r in results] == [(command.referral_id, True)]


def test_a_batch_opens_the_new_referrals_and_skips_the_known_ones(referrals):
    known, new = an_open_referral(), an_open_referral()
    referrals.open_referrals([known])

    results = {r.referral_id: r.created for r in referrals.open_referrals([known, new])}

    assert results == {known.referral_id: False, new.referral_id: True}


def test_reading_an_unknown_referral_is_not_found(referrals):
    with pytest.raises(NotFound):
        referrals.get(uuid.uuid4())


# --- lifecycle ----------------------------------------------------------------------------------------------------


def walk_legal_path(referrals, referral_id):
    for status in LEGAL_PATH:
        outcome = Outcome.resolved if status is S.completed else None
        referrals.change_status(referral_id, status, OWNER.value, None, outcome=outcome)


def test_the_owner_moves_a_referral_along_the_legal_path_to_completed(referrals):
    referral_id = opened(referrals)

    walk_legal_path(referrals, referral_id)

    assert referrals.get(referral_id).status == "completed"
    assert [h["status"] for h in referrals.history(referral_id)] == ["requested", *(s.value for s in LEGAL_PATH)]


def test_each_status_change_records_the_acting_agency_and_reason(referrals):
    referral_id = opened(referrals)

    referrals.change_status(referral_id, S.accepted, OWNER.value, "已受理，派出所跟进")

    last = referrals.history(referral_id)[-1]
    assert (last["status"], last["actor_agency"], last["note"]) == ("accepted", "police", "已受理，派出所跟进")


def test_an_illegal_transition_is_refused_naming_the_current_status(referrals):
    referral_id = opened(referrals)

    with pytest.raises(IllegalTransition, match="'requested'") as refused:
        referrals.change_status(referral_id, S.completed, OWNER.value, None)

    assert refused.value.status == 409
    assert [e.field for e in refused.value.errors] == ["status"]


def test_a_completed_referral_cannot_change_again(referrals):
    referral_id = opened(referrals)
    walk_legal_path(referrals, referral_id)

    with pytest.raises(IllegalTransition, match="'completed'"):
        referrals.change_status(referral_id, S.in_progress, OWNER.value, None)


def test_a_refused_transition_stores_nothing(referrals):
    referral_id = opened(referrals)
    before = stored(referrals)

    with pytest.raises(IllegalTransition):
        referrals.change_status(referral_id, S.completed, OWNER.value, None)

    assert stored(referrals) == before
    assert referrals.get(referral_id).status == "requested"


def test_an_agency_that_does_not_own_the_referral_cannot_accept_it(referrals):
    referral_id = opened(referrals)

    with pytest.raises(NotPermitted) as refused:
        referrals.change_status(referral_id, S.accepted, BYSTANDER.value, None)

    assert refused.value.status == 403


def test_the_requester_cannot_accept_in_the_owners_place(referrals):
    referral_id = opened(referrals)

    with pytest.raises(NotPermitted):
        referrals.change_status(referral_id, S.accepted, REQUESTER.value, None)


def test_the_requester_may_cancel(referrals):
    referral_id = opened(referrals)

    referrals.change_status(referral_id, S.cancelled, REQUESTER.value, "家长已接回")

    assert referrals.get(referral_id).status == "cancelled"


def test_the_owner_may_not_cancel_but_rejects_instead(referrals):
    referral_id = opened(referrals)

    with pytest.raises(NotPermitted):
        referrals.change_status(referral_id, S.cancelled, OWNER.value, None)


def test_a_stale_expected_version_is_refused(referrals):
    referral_id = opened(referrals)
    version = referrals.get(referral_id).version
    referrals.change_status(referral_id, S.received, OWNER.value, None, expected_version=version)

    with pytest.raises(StaleVersion) as refused:
        referrals.change_status(referral_id, S.accepted, OWNER.value, None, expected_version=version)

    assert refused.value.status == 412
    assert referrals.get(referral_id).status == "received"


def test_the_current_expected_version_is_accepted(referrals):
    referral_id = opened(referrals)

    changed = referrals.change_status(referral_id, S.received, OWNER.value, None,
                                      expected_version=referrals.get(referral_id).version)

    assert changed.status == "received"


def test_an_action_on_a_referral_read_a_moment_before_goes_on_from_that_read_and_its_history(referrals):
    referral_id = opened(referrals)
    read = referrals.read(referral_id)  # as the access check reads it

    referrals.change_status(referral_id, S.received, OWNER.value, None, loaded=read)

    assert read.referral.status == "received"
    assert [h["status"] for h in read.history()] == ["requested", "received"]
    assert read.history() == referrals.history(referral_id)  # the history the store now holds


def test_a_change_between_the_read_and_the_action_is_read_again_when_no_version_was_named(referrals):
    referral_id = opened(referrals)
    read = referrals.read(referral_id)
    referrals.change_status(referral_id, S.received, OWNER.value, None)  # another request, in between

    referrals.change_status(referral_id, S.accepted, OWNER.value, None, loaded=read)

    assert [h["status"] for h in read.history()] == ["requested", "received", "accepted"]
    assert referrals.get(referral_id).status == "accepted"


def test_a_change_between_the_read_and_the_action_is_refused_when_the_version_was_named(referrals):
    referral_id = opened(referrals)
    read = referrals.read(referral_id)
    referrals.change_status(referral_id, S.received, OWNER.value, None)

    with pytest.raises(StaleVersion):
        referrals.change_status(referral_id, S.received, OWNER.value, None, expected_version=read.referral.version,
                                loaded=read)


def test_http_a_status_change_reads_the_referrals_events_once(client, referrals):
    referral_id = opened(referrals)
    etag = client.get(f"/v1/referrals/{referral_id}").headers["ETag"]
    reads: list[uuid.UUID] = []
    recorder = referrals.recorder
    select_events = recorder.select_events

    def counted(originator_id: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(originator_id)
        return select_events(originator_id, *args, **kwargs)

    recorder.select_events = counted
    try:
        answer = post_status(client, referral_id, S.received, OWNER, etag)
    finally:
        recorder.select_events = select_events

    assert answer.status_code == 200
    assert [h["status"] for h in answer.json()["history"]] == ["requested", "received"]
    assert reads == [referral_id]


# --- HTTP ---------------------------------------------------------------------------------------------------------


def post_status(client: TestClient, referral_id: uuid.UUID, status: S, agency: Agency, etag: str | None = None) -> Any:
    headers = {"If-Match": etag} if etag is not None else {}
    return client.post(f"/v1/referrals/{referral_id}/status", json={"status": status.value, "agency": agency.value},
                       headers=headers)


def test_http_a_status_change_with_the_current_etag_answers_the_new_etag(client, referrals):
    referral_id = opened(referrals)
    etag = client.get(f"/v1/referrals/{referral_id}").headers["ETag"]

    answer = post_status(client, referral_id, S.accepted, OWNER, etag)

    assert answer.status_code == 200
    assert answer.json()["status"] == "accepted"
    assert answer.headers["ETag"] != etag
    assert answer.headers["ETag"] == f'"{answer.json()["version"]}"'


def test_http_a_wrong_if_match_answers_412_problem(client, referrals):
    referral_id = opened(referrals)
    etag = client.get(f"/v1/referrals/{referral_id}").headers["ETag"]
    post_status(client, referral_id, S.received, OWNER, etag)

    answer = post_status(client, referral_id, S.accepted, OWNER, etag)

    assert answer.status_code == 412
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 412
    assert referrals.get(referral_id).status == "received"


def test_http_an_if_match_that_is_no_etag_answers_422_naming_the_header(client, referrals):
    referral_id = opened(referrals)

    answer = post_status(client, referral_id, S.accepted, OWNER, "yesterday")

    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["If-Match"]


def test_http_an_illegal_transition_answers_409_problem_naming_the_current_status(client, referrals):
    referral_id = opened(referrals)

    answer = post_status(client, referral_id, S.completed, OWNER)

    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert "'requested'" in answer.json()["detail"]
    assert answer.json()["errors"] == [{"field": "status", "reason": "current status is 'requested'"}]


def test_http_a_non_owner_answers_403_problem(client, referrals):
    referral_id = opened(referrals)

    answer = post_status(client, referral_id, S.accepted, BYSTANDER)

    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["agency"]


def test_http_an_unknown_referral_answers_404_problem(client):
    answer = post_status(client, uuid.uuid4(), S.accepted, OWNER)

    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


def test_http_opening_referrals_twice_reports_created_then_not_created(client):
    body = {"referrals": [an_open_referral().model_dump(mode="json")]}

    first, second = client.post("/v1/referrals", json=body), client.post("/v1/referrals", json=body)

    assert [r["created"] for r in first.json()["referrals"]] == [True]
    assert [r["created"] for r in second.json()["referrals"]] == [False]


# --- the inbox read model -----------------------------------------------------------------------------------------


def inbox(client: TestClient, agency: Agency, **params: Any) -> dict[str, Any]:
    answer = client.get(f"/v1/agencies/{agency.value}/referrals", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_opened_referral_is_listed_in_its_owners_inbox(client, referrals, refresh_inbox):
    referral_id = opened(referrals)
    refresh_inbox()

    items = inbox(client, OWNER)["items"]

    assert [(i["referral_id"], i["status"]) for i in items] == [(str(referral_id), "requested")]


def test_a_referral_is_not_listed_in_another_agencys_inbox(client, referrals, refresh_inbox):
    opened(referrals)
    refresh_inbox()

    assert inbox(client, REQUESTER)["items"] == []


def test_the_inbox_follows_status_changes(client, referrals, refresh_inbox):
    referral_id = opened(referrals)
    referrals.change_status(referral_id, S.accepted, OWNER.value, None)
    refresh_inbox()

    (item,) = inbox(client, OWNER)["items"]

    assert item["status"] == "accepted"


def test_the_inbox_counts_referrals_by_status(client, referrals, refresh_inbox):
    ids = [opened(referrals) for _ in range(3)]
    referrals.change_status(ids[0], S.accepted, OWNER.value, None)
    opened(referrals, owner_agency=Agency.civil_affairs)
    refresh_inbox()

    assert inbox(client, OWNER)["counts_by_status"] == {"requested": 2, "accepted": 1}


def test_the_inbox_filters_by_status(client, referrals, refresh_inbox):
    accepted = opened(referrals)
    opened(referrals)
    referrals.change_status(accepted, S.accepted, OWNER.value, None)
    refresh_inbox()

    items = inbox(client, OWNER, status="accepted")["items"]

    assert [i["referral_id"] for i in items] == [str(accepted)]


def test_refreshing_the_inbox_twice_changes_nothing(client, referrals, refresh_inbox):
    opened(referrals)
    refresh_inbox()
    first = inbox(client, OWNER)

    refresh_inbox()

    assert inbox(client, OWNER) == first


def test_the_inbox_pages_with_the_cursor_without_repeats_or_gaps(client, referrals, refresh_inbox):
    ids = {str(opened(referrals)) for _ in range(5)}
    refresh_inbox()

    seen: list[str] = []
    page = inbox(client, OWNER, limit=2)
    pages = 1
    while True:
        seen.extend(i["referral_id"] for i in page["items"])
        if page["next_cursor"] is None:
            break
        page = inbox(client, OWNER, limit=2, cursor=page["next_cursor"])
        pages += 1

    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == ids
    assert pages == 3


def test_the_inbox_lists_the_newest_referral_first(client, referrals, refresh_inbox):
    first = opened(referrals)
    last = opened(referrals)
    refresh_inbox()

    items = inbox(client, OWNER)["items"]

    assert [i["referral_id"] for i in items] == [str(last), str(first)]


def test_a_full_last_page_is_followed_by_an_empty_page_without_cursor(client, referrals, refresh_inbox):
    for _ in range(2):
        opened(referrals)
    refresh_inbox()

    first = inbox(client, OWNER, limit=2)
    after = inbox(client, OWNER, limit=2, cursor=first["next_cursor"])

    assert (len(first["items"]), after["items"], after["next_cursor"]) == (2, [], None)


@pytest.mark.parametrize("cursor", ["not-a-cursor", "bm90IGEgY3Vyc29y", "MjAyNi0xMS0yOXxub3QtYS11dWlk"])
def test_a_bad_cursor_answers_422_naming_the_cursor(client, cursor):
    answer = client.get(f"/v1/agencies/{OWNER.value}/referrals", params={"cursor": cursor})

    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["cursor"]


def test_a_cases_referrals_are_listed_for_the_case(client, referrals, refresh_inbox):
    case_id = uuid.uuid4()
    ids = {str(opened(referrals, case_id=case_id)), str(opened(referrals, case_id=case_id, owner_agency=Agency.hrss))}
    opened(referrals)
    refresh_inbox()

    items = client.get(f"/v1/cases/{case_id}/referrals").json()["items"]

    assert {i["referral_id"] for i in items} == ids


# --- need-to-know on a referral that has only just arrived --------------------------------------------------------


def test_the_owner_may_act_before_the_case_access_read_model_has_heard_of_the_referral(any_storage_settings,
                                                                                        service, referrals):
    # The inbox and the case-access read model follow the referral's events a moment later; the referral itself
    # already names its owner, so the owner's first action must not be refused in between.
    referral_id = opened(referrals)
    owner = client_for(service_api(any_storage_settings, service), officer(OWNER))

    read = owner.get(f"/v1/referrals/{referral_id}")
    answer = post_status(owner, referral_id, S.received, OWNER, read.headers.get("ETag"))

    assert read.status_code == 200
    assert answer.status_code == 200, answer.text
    assert referrals.get(referral_id).status == "received"


def test_another_agency_is_still_refused_before_the_read_model_has_heard_of_the_referral(any_storage_settings,
                                                                                         service, referrals):
    referral_id = opened(referrals)
    bystander = client_for(service_api(any_storage_settings, service), officer(BYSTANDER))

    assert bystander.get(f"/v1/referrals/{referral_id}").status_code == 403
    assert post_status(bystander, referral_id, S.received, BYSTANDER).status_code == 403
    assert referrals.get(referral_id).status == "requested"


def test_a_rejected_referral_no_longer_opens_its_case_to_the_agency_that_rejected_it(any_storage_settings,
                                                                                     service, referrals):
    referral_id = opened(referrals)
    referrals.change_status(referral_id, S.rejected, OWNER.value, reason_code="not_responsible")
    owner = client_for(service_api(any_storage_settings, service), officer(OWNER))

    assert owner.get(f"/v1/referrals/{referral_id}").status_code == 403

"""What both end-to-end tests (embedded and distributed) check, against base URLs per service, authenticated with
``auth`` (a minted system token, or an agency client's token from the token endpoint)."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from services.intake.schemas import REPORT_EXAMPLE
from tests.support.processes import eventually


def report(concern: str, *, name: str, urgency: str = "urgent", reporter: str = "education") -> dict[str, Any]:
    body = copy.deepcopy(REPORT_EXAMPLE)
    body["concern_category"] = concern
    body["urgency"] = urgency
    body["reporter"]["agency"] = reporter
    body["child"]["name"] = name
    return body


def owners_of_case(referral_url: str, case_id: str, auth: httpx.Auth) -> set[str]:
    items = httpx.get(f"{referral_url}/v1/cases/{case_id}/referrals", timeout=5, auth=auth).json()["items"]
    return {item["owner_agency"] for item in items}


def in_inbox(referral_url: str, agency: str, case_id: str, auth: httpx.Auth) -> bool:
    answer = httpx.get(f"{referral_url}/v1/agencies/{agency}/referrals", params={"limit": 200}, timeout=5, auth=auth)
    items = answer.json()["items"]
    return any(item["case_id"] == case_id for item in items)


def check_report_is_routed(intake_url: str, referral_url: str, auth: httpx.Auth) -> None:
    """A guardian-neglect report reaches police and civil affairs; a dropout reaches education, police, civil
    affairs; the timeline shows the report and the referrals, in order, with the acting agencies."""
    reports = f"{intake_url}/v1/reports"
    neglect = httpx.post(reports, json=report("guardian_neglect", name="测试甲"), timeout=10, auth=auth)
    assert neglect.status_code == 201, neglect.text
    dropout = httpx.post(reports, json=report("school_dropout", name="测试乙"), timeout=10, auth=auth)
    assert dropout.status_code == 201, dropout.text
    neglect_case, dropout_case = neglect.json()["case_id"], dropout.json()["case_id"]

    owners = eventually(
        lambda: (o := owners_of_case(referral_url, neglect_case, auth)) >= {"police", "civil_affairs"} and o
    )
    assert {"police", "civil_affairs", "womens_federation"} <= owners
    eventually(lambda: owners_of_case(referral_url, dropout_case, auth) >= {"education", "police", "civil_affairs"})
    for agency in ("police", "civil_affairs"):
        assert eventually(lambda a=agency: in_inbox(referral_url, a, neglect_case, auth))  # type: ignore[misc]

    def timeline() -> list[dict[str, Any]]:
        events = httpx.get(f"{intake_url}/v1/cases/{neglect_case}/timeline", timeout=5, auth=auth).json()["events"]
        referrals = [e for e in events if e["type"] == "cn.huhang.referral.requested.v1"]
        return events if len(referrals) >= len(owners) else []

    events = eventually(timeline)
    assert events[0]["type"] == "cn.huhang.report.filed.v1"
    assert events[0]["actor_agency"] == "education"
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    report_id = events[0]["event_id"]
    assert all(e["causation_id"] == report_id for e in events[1:])


def check_idempotent_retry(intake_url: str, referral_url: str, auth: httpx.Auth) -> None:
    body = report("online_harm", name="测试丙")
    headers = {"Idempotency-Key": "e2e-retry-1"}
    first = httpx.post(f"{intake_url}/v1/reports", json=body, headers=headers, timeout=10, auth=auth)
    again = httpx.post(f"{intake_url}/v1/reports", json=body, headers=headers, timeout=10, auth=auth)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    case_id = first.json()["case_id"]
    # online harm: cac and police; a left-behind child: civil affairs for the file and director visits
    eventually(lambda: owners_of_case(referral_url, case_id, auth) == {"cac", "police", "civil_affairs"})
    items = httpx.get(f"{referral_url}/v1/cases/{case_id}/referrals", timeout=5, auth=auth).json()["items"]
    assert len(items) == 3
    case = httpx.get(f"{intake_url}/v1/cases/{case_id}", timeout=5, auth=auth).json()
    assert len(case["reports"]) == 1

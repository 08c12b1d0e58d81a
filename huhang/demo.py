"""A small synthetic demo: children, reports, an assessment and a referral acted on, filed over HTTP.

Everything is invented (Faker, zh_CN); nothing here is about a real child.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import date, timedelta
from typing import Any

import httpx
from faker import Faker

logger = logging.getLogger(__name__)

TOWNSHIPS = {"虹桥镇": ["溪西村", "南阳村", "幸福村"], "柳市镇": ["长虹村", "湖头村"], "大荆镇": ["下山头村", "石门村"]}
SCENARIOS: list[tuple[str, str, str, str, list[str]]] = [
    ("education", "teacher", "guardian_neglect", "urgent", ["left_behind"]),
    ("education", "school_principal", "school_dropout", "urgent", ["left_behind", "single_parent"]),
    ("health", "doctor", "injury_or_acute_illness", "immediate_danger", ["difficulty_medical"]),
    ("youth_league", "hotline_operator", "psychological_crisis", "urgent", ["left_behind"]),
    ("village", "child_director", "caregiver_unable", "routine", ["left_behind"]),
    ("village", "child_director", "basic_living_hardship", "routine", ["difficulty_basic_living"]),
    ("police", "police_officer", "online_harm", "urgent", []),
    ("village", "child_director", "parents_need_local_work", "routine", ["left_behind"]),
]
OBSERVATIONS = "（演示数据）{}，需要相关部门跟进。"


def demo_reports(seed: int = 2024) -> list[dict[str, Any]]:
    fake = Faker("zh_CN")
    Faker.seed(seed)
    rnd = random.Random(seed)  # noqa: S311 - synthetic demo data, not security
    today = date.today()
    reports = []
    for agency, role, concern, urgency, categories in SCENARIOS:
        township = rnd.choice(sorted(TOWNSHIPS))
        reports.append({
            "reporter": {"agency": agency, "role": role, "reference": f"D-{rnd.randint(1000, 9999)}"},
            "child": {
                "name": fake.name(),
                "sex": rnd.choice(["female", "male"]),
                "birth_date": (today - timedelta(days=rnd.randint(6 * 365, 15 * 365))).isoformat(),
                "township": township,
                "village": rnd.choice(TOWNSHIPS[township]),
                "categories": categories,
            },
            "concern_category": concern,
            "urgency": urgency,
            "observed_on": (today - timedelta(days=rnd.randint(0, 3))).isoformat(),
            "observations": OBSERVATIONS.format(fake.sentence(nb_words=8)),
        })
    return reports


def load_demo(base_url: str, timeout_s: float = 60.0) -> list[str]:
    """File the demo reports (idempotently: loading twice files nothing twice); returns the case ids."""
    case_ids = []
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        for i, report in enumerate(demo_reports()):
            r = client.post("/v1/reports", json=report, headers={"Idempotency-Key": f"demo-report-{i}"})
            r.raise_for_status()
            case_ids.append(r.json()["case_id"])
        _demo_assessment(client, case_ids[0], timeout_s)
        _demo_acceptance(client, timeout_s)
    return case_ids


def _demo_assessment(client: httpx.Client, case_id: str, timeout_s: float) -> None:
    child_id = client.get(f"/v1/cases/{case_id}").json()["child_id"]
    body = {"child_id": child_id, "assessor_agency": "civil_affairs",
            "factors": ["guardian_absent_no_caregiver", "caregiver_elderly_or_frail", "previous_neglect_report"]}
    _retry_until_known(lambda: client.post(f"/v1/cases/{case_id}/guardianship-assessments", json=body), timeout_s)


def _demo_acceptance(client: httpx.Client, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = client.get("/v1/agencies/police/referrals", params={"status": "requested"}).json()["items"]
        if items:
            rid = items[-1]["referral_id"]
            for step in ({"status": "received", "agency": "police"},
                         {"status": "accepted", "agency": "police", "note": "演示：派出所已受理"}):
                client.post(f"/v1/referrals/{rid}/status", json=step).raise_for_status()
            return
        time.sleep(0.5)


def _retry_until_known(call: Any, timeout_s: float) -> None:
    """The case reaches guardianship through the event stream a moment after it is filed."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = call()
        if response.status_code != 404 or time.monotonic() > deadline:
            response.raise_for_status()
            return
        time.sleep(0.3)


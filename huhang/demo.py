"""A small synthetic demo: children, reports, an assessment and a referral acted on, filed over HTTP.

Everything is invented (Faker, zh_CN); nothing here is about a real child.

Demo credentials (``huhang run`` only; outside the demo no account exists until one is made with ``huhang auth``):
a client ``demo-<agency>`` for every agency and a few people (a child director, a police officer, a civil-affairs
supervisor, an auditor, an administrator), with random secrets made anew at each start and written to
``<data_dir>/demo-credentials.json`` (mode 0600). The demo files each report as the reporting agency's client.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from faker import Faker

from contracts.agencies import Agency
from huhang.auth.accounts import AccountStore
from huhang.auth.client import ClientCredentialsAuth
from huhang.auth.dependency import TOKEN_PATH
from huhang.auth.principal import Role

logger = logging.getLogger(__name__)

CREDENTIALS_FILE = "demo-credentials.json"
DEMO_TOWNSHIP, DEMO_VILLAGE = "虹桥镇", "溪西村"
# login name, agency, roles, township, village
DEMO_PEOPLE: list[tuple[str, Agency, tuple[Role, ...], str | None, str | None]] = [
    ("demo-director", Agency.village, (Role.child_director,), DEMO_TOWNSHIP, DEMO_VILLAGE),
    ("demo-police-officer", Agency.police, (Role.agency_officer,), None, None),
    ("demo-civil-supervisor", Agency.civil_affairs, (Role.supervisor,), None, None),
    ("demo-auditor", Agency.civil_affairs, (Role.auditor,), None, None),
    ("demo-admin", Agency.civil_affairs, (Role.administrator,), None, None),
]


@dataclass
class DemoCredentials:
    clients: dict[str, str] = field(default_factory=dict)  # agency code -> client secret (client id demo-<agency>)
    people: dict[str, str] = field(default_factory=dict)  # login name -> password

    def client_auth(self, base_url: str, agency: str) -> ClientCredentialsAuth:
        return ClientCredentialsAuth(f"{base_url}{TOKEN_PATH}", demo_client_id(agency), self.clients[agency])

    def curl(self, base_url: str, agency: str = "police") -> str:
        return (f"curl -s -X POST {base_url}{TOKEN_PATH} -d grant_type=client_credentials "
                f"-d client_id={demo_client_id(agency)} -d client_secret={self.clients[agency]}")


def demo_client_id(agency: str) -> str:
    return f"demo-{agency}"


def create_demo_accounts(store: AccountStore, data_dir: Path) -> tuple[DemoCredentials, Path]:
    """Every demo client and person, with new random secrets (made again at each start: a demo left running
    elsewhere keeps no valid old secret); written to ``data_dir/demo-credentials.json`` with mode 0600."""
    credentials = DemoCredentials()
    for agency in Agency:
        township, village = _demo_area(agency)
        client_id = demo_client_id(agency.value)
        if store.find(client_id) is None:
            created = store.create_client(agency, [Role.agency_officer], client_id=client_id, township=township,
                                          village=village)
        else:
            created = store.rotate_secret(client_id)
            store.set_enabled(client_id, True)
        credentials.clients[agency.value] = created.secret
    for login, agency, roles, township, village in DEMO_PEOPLE:
        if store.find(login) is None:
            created = store.create_person(login, agency, roles, township=township, village=village)
        else:
            created = store.rotate_secret(login)
            store.set_enabled(login, True)
        credentials.people[login] = created.secret
    path = data_dir / CREDENTIALS_FILE
    _write_private(path, {
        "token_endpoint": TOKEN_PATH,
        "clients": {demo_client_id(a): {"agency": a, "client_secret": s} for a, s in credentials.clients.items()},
        "people": {login: {"password": pw} for login, pw in credentials.people.items()},
    })
    return credentials, path


def _demo_area(agency: Agency) -> tuple[str | None, str | None]:
    if agency == Agency.village:
        return DEMO_TOWNSHIP, DEMO_VILLAGE
    if agency == Agency.township:
        return DEMO_TOWNSHIP, None
    return None, None


def _write_private(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(content, f, ensure_ascii=False, indent=2)
    os.replace(tmp, path)

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


def load_demo(base_url: str, credentials: DemoCredentials, timeout_s: float = 60.0) -> list[str]:
    """File the demo reports, each as its reporting agency's client (idempotently: loading twice files nothing
    twice); returns the case ids."""
    case_ids = []
    clients: dict[str, httpx.Client] = {}

    def as_agency(agency: str) -> httpx.Client:
        if agency not in clients:
            clients[agency] = httpx.Client(
                base_url=base_url, timeout=10.0, auth=credentials.client_auth(base_url, agency)
            )
        return clients[agency]

    try:
        for i, report in enumerate(demo_reports()):
            client = as_agency(report["reporter"]["agency"])
            r = client.post("/v1/reports", json=report, headers={"Idempotency-Key": f"demo-report-{i}"})
            r.raise_for_status()
            case_ids.append(r.json()["case_id"])
        _demo_assessment(as_agency("civil_affairs"), case_ids[0], timeout_s)
        _demo_acceptance(as_agency("police"), timeout_s)
    finally:
        for client in clients.values():
            client.close()
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
                _retry_until_known(lambda step=step, rid=rid: client.post(f"/v1/referrals/{rid}/status", json=step),
                                   max(deadline - time.monotonic(), 1.0))
            return
        time.sleep(0.5)


def _retry_until_known(call: Any, timeout_s: float) -> None:
    """The case reaches guardianship, and a referral its owner's access, through the event stream a moment after
    they are made: 404 and 403 are tried again until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = call()
        if response.status_code not in (403, 404) or time.monotonic() > deadline:
            response.raise_for_status()
            return
        time.sleep(0.3)


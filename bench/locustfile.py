"""The county's mixed workload for locust, started by ``bench/mixed_workload.py`` (not meant to be run by hand).

Each locust user is one desk of a county: an officer of one agency (a client of its own: the per-client rate
limit applies to it as it would to a real agency system), the child director of one village (a person), and a
civil-affairs assessor. Tokens are minted here with the run's signing key, one subject per desk and persona, never
shared. What a desk does, by weight (``MIX``): reads its agency's inbox, reads case timelines and histories and
children's files of cases its agency holds referrals on, moves its own referrals along the lifecycle with
``If-Match``, files reports, records visits and assessments, polls its agency's notification feed.

Environment (set by the driver):

- ``HUHANG_BENCH_SEED``: the seed file (JSON: service URLs, the referrals each agency holds, the seeded children by
  village; ids and places only, no names);
- ``HUHANG_BENCH_SAMPLES``: where every request is written at the end (JSON lines: time, name, ms, ok, status);
- ``HUHANG_BENCH_SIGNING_KEY``: the run's token signing key (synthetic, made for the run);
- ``HUHANG_BENCH_USERS``, ``HUHANG_BENCH_USER_RATE``: the number of desks and tasks/s per desk, so that the
  offered rate is their product.

Each desk's tasks start as a Poisson process (``poisson_throughput``): desks of a county do not click in step.
Locust's ``constant_throughput`` phase-locks them: measured on this platform at 75 desks, 80 % of all requests
started in the same 200 ms of every second, a burst of 60-80 requests that the latencies then measured instead of
the rate (p50 220 ms for a read that takes 3 ms alone).

``CountyUser`` is the workload; ``HealthzUser`` the baseline (``GET /healthz`` of the same servers at the same
rate), which shows what the load tool and HTTP cost on this machine by themselves.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

from locust import FastHttpUser, events, task

from bench._load.county import (
    CONCERNS,
    FACTORS,
    NEXT_STATUS,
    OBSERVATIONS,
    OFFICER_AGENCIES,
    REPORTER_ROLES,
)
from bench._load.county import bearer as _bearer

_samples: list[tuple[float, str, float, bool, int]] = []
_user_numbers = itertools.count()
_arrival_seeds = itertools.count(1)


@events.request.add_listener
def _record(request_type: str, name: str, response_time: float, response_length: int, exception: Any = None,
            response: Any = None, **_: Any) -> None:
    status = int(getattr(response, "status_code", 0) or 0)
    _samples.append((time.time(), name, response_time, exception is None, status))


@events.quitting.add_listener
def _write_samples(**_: Any) -> None:
    path = os.environ.get("HUHANG_BENCH_SAMPLES")
    if not path:
        return
    with Path(path).open("w") as out:
        for t, name, ms, ok, status in _samples:
            out.write(json.dumps([round(t, 4), name, round(ms, 2), ok, status]) + "\n")


@events.spawning_complete.add_listener
def _mark_spawned(**_: Any) -> None:
    """Tells the driver that every desk is at work: its warm-up and measured window start from here."""
    path = os.environ.get("HUHANG_BENCH_SAMPLES")
    if path:
        Path(f"{path}.spawned").touch()


@cache
def seed() -> dict[str, Any]:
    return dict(json.loads(Path(os.environ["HUHANG_BENCH_SEED"]).read_text()))


def bearer(subject: str, kind: Literal["client", "person"], agency: str, role: str, township: str | None = None,
           village: str | None = None) -> dict[str, str]:
    return _bearer(os.environ["HUHANG_BENCH_SIGNING_KEY"], subject, kind, agency, role, township, village)


def _rate() -> float:
    return float(os.environ.get("HUHANG_BENCH_USER_RATE", "1"))


def poisson_throughput(rate: float) -> Any:
    """A locust ``wait_time``: the desk's task starts are ``rate``/s on average, the gaps between them exponential
    (a Poisson process per desk, so the desks together are one at desks x rate). As ``constant_throughput``, a task
    that took longer than its gap starts the next at once, and no missed start is caught up later."""

    def wait_time(user: Any) -> float:
        arrivals = user.__dict__.get("_arrivals")
        if arrivals is None:  # one generator per desk, seeded once (the desk's arrivals repeat run after run)
            arrivals = user._arrivals = random.Random(next(_arrival_seeds))
        now = time.perf_counter()
        started = user.__dict__.get("_task_started", now)
        wait = max(0.0, arrivals.expovariate(rate) - (now - started))
        user._task_started = now + wait
        return wait

    return wait_time


class CountyUser(FastHttpUser):
    """One desk of the county: an agency officer, a village's child director and a civil-affairs assessor."""

    wait_time = poisson_throughput(_rate())
    network_timeout = 60.0
    connection_timeout = 60.0

    def on_start(self) -> None:
        data = seed()
        self.urls: dict[str, str] = data["urls"]
        self.number = next(_user_numbers)
        users = int(os.environ.get("HUHANG_BENCH_USERS", "1"))
        n = len(OFFICER_AGENCIES)
        self.agency = OFFICER_AGENCIES[self.number % n]
        self.index_in_agency = self.number // n
        self.agency_users = max(1, (users - self.number % n + n - 1) // n)
        self.rng = random.Random(self.number)
        self.officer = bearer(f"bench-{self.agency}-desk-{self.number}", "client", self.agency, "agency_officer")
        self.place = data["places"][self.number % len(data["places"])]
        self.director = bearer(f"bench-director-{self.number}", "person", "village", "child_director",
                               self.place["township"], self.place["village"])
        self.assessor = bearer(f"bench-civil-assessor-{self.number}", "client", "civil_affairs", "agency_officer")
        self.cases: list[dict[str, str]] = list(data["referrals"].get(self.agency, []))
        self.known = {r["referral_id"] for r in self.cases}
        # This desk's own referrals (a share of its agency's, by id): referral id -> [status, ETag or None]
        self.mine: dict[str, list[Any]] = {
            r["referral_id"]: [r["status"], None] for r in self.cases if self._is_mine(r["referral_id"])
        }
        area = f"{self.place['township']}/{self.place['village']}"
        self.children: list[dict[str, str]] = data["children"].get(area, [])
        self.all_cases: list[dict[str, str]] = data["all_cases"]
        self.feed_after = 0

    def _is_mine(self, referral_id: str) -> bool:
        return uuid.UUID(referral_id).int % self.agency_users == self.index_in_agency

    def _url(self, service: str, path: str) -> str:
        return f"{self.urls[service]}{path}"

    # ---------------------------------------------------------------------------------------------- reads

    @task(30)
    def inbox(self) -> None:
        params = "?limit=50" if self.rng.random() < 0.7 else "?limit=50&status=requested&status=received"
        with self.client.get(self._url("referral", f"/v1/agencies/{self.agency}/referrals{params}"),
                             headers=self.officer, name="inbox", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            for item in (response.json() or {}).get("items", []):
                rid = item["referral_id"]
                if rid not in self.known:
                    self.known.add(rid)
                    self.cases.append({"referral_id": rid, "case_id": item["case_id"], "child_id": item["child_id"]})
                    if self._is_mine(rid) and item["status"] in NEXT_STATUS:
                        self.mine[rid] = [item["status"], None]

    @task(10)
    def timeline(self) -> None:
        if case := self._a_case():
            self.client.get(self._url("intake", f"/v1/cases/{case['case_id']}/timeline"), headers=self.officer,
                            name="timeline")

    @task(5)
    def history(self) -> None:
        if case := self._a_case():
            self.client.get(self._url("intake", f"/v1/cases/{case['case_id']}/history"), headers=self.officer,
                            name="history")

    @task(10)
    def child_file(self) -> None:
        if case := self._a_case():
            self.client.get(self._url("intake", f"/v1/children/{case['child_id']}"), headers=self.officer,
                            name="child file")

    @task(5)
    def feed(self) -> None:
        with self.client.get(self._url("notifications", f"/v1/agencies/{self.agency}/notifications"
                                       f"?after={self.feed_after}&limit=50"),
                             headers=self.officer, name="feed", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            self.feed_after = int((response.json() or {}).get("next_cursor") or self.feed_after)

    def _a_case(self) -> dict[str, str] | None:
        return self.rng.choice(self.cases) if self.cases else None

    # --------------------------------------------------------------------------------------------- writes

    @task(15)
    def referral_action(self) -> None:
        open_ones = [rid for rid, (status, _) in self.mine.items() if status in NEXT_STATUS]
        if not open_ones:
            self.inbox()  # nothing of its own left to move: the desk looks at its inbox instead
            return
        rid = self.rng.choice(open_ones)
        state = self.mine[rid]
        if state[1] is None:
            with self.client.get(self._url("referral", f"/v1/referrals/{rid}"), headers=self.officer,
                                 name="referral read", catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")
                    return
                state[0], state[1] = response.json()["status"], response.headers.get("ETag")
            if state[0] not in NEXT_STATUS:
                return
        nxt = NEXT_STATUS[state[0]]
        body: dict[str, Any] = {"status": nxt, "agency": self.agency}
        if nxt == "completed":
            body["outcome"] = "resolved"
        with self.client.post(self._url("referral", f"/v1/referrals/{rid}/status"), json=body,
                              headers={**self.officer, "If-Match": state[1] or "*"}, name="referral action",
                              catch_response=True) as response:
            if response.status_code == 200:
                state[0], state[1] = nxt, response.headers.get("ETag")
            else:
                state[1] = None  # read it again next time
                response.failure(f"HTTP {response.status_code}")

    @task(10)
    def report(self) -> None:
        if self.agency in REPORTER_ROLES:
            headers, agency, role = self.officer, self.agency, REPORTER_ROLES[self.agency]
        else:
            headers, agency, role = self.director, "village", "child_director"
        self.client.post(self._url("intake", "/v1/reports"), json=self._report_body(agency, role), headers=headers,
                         name="report")

    @task(10)
    def visit(self) -> None:
        if not self.children:
            return
        child = self.rng.choice(self.children)
        findings = ["all_well"] if self.rng.random() < 0.8 else ["child_unwell"]
        body = {"kind": self.rng.choice(("contact", "home_visit")), "agency": "village", "findings": findings,
                "visited_on": (date.today() - timedelta(days=self.rng.randint(0, 3))).isoformat()}
        self.client.post(self._url("guardianship", f"/v1/children/{child['child_id']}/visits"), json=body,
                         headers=self.director, name="visit")

    @task(5)
    def assessment(self) -> None:
        if not self.all_cases:
            return
        case = self.rng.choice(self.all_cases)
        body = {"child_id": case["child_id"], "assessor_agency": "civil_affairs",
                "factors": self.rng.sample(FACTORS, self.rng.randint(0, len(FACTORS)))}
        self.client.post(self._url("guardianship", f"/v1/cases/{case['case_id']}/guardianship-assessments"),
                         json=body, headers=self.assessor, name="assessment")

    def _report_body(self, agency: str, role: str) -> dict[str, Any]:
        fake = _faker()
        today = date.today()
        return {
            "reporter": {"agency": agency, "role": role, "reference": f"BENCH-{uuid.uuid4().hex[:10]}"},
            "child": {
                "name": fake.name(), "sex": self.rng.choice(("female", "male")),
                "birth_date": (today - timedelta(days=self.rng.randint(3 * 365, 16 * 365))).isoformat(),
                "township": self.place["township"], "village": self.place["village"], "categories": ["left_behind"],
            },
            "concern_category": self.rng.choice(CONCERNS), "urgency": "urgent",
            "observed_on": (today - timedelta(days=1)).isoformat(), "observations": OBSERVATIONS,
        }


class HealthzUser(FastHttpUser):
    """The baseline: the same harness, rate and servers, a trivial endpoint."""

    wait_time = poisson_throughput(_rate())
    network_timeout = 60.0
    connection_timeout = 60.0

    def on_start(self) -> None:
        urls = sorted(set(seed()["urls"].values()))
        self.url = urls[next(_user_numbers) % len(urls)]

    @task
    def healthz(self) -> None:
        self.client.get(f"{self.url}/healthz", name="healthz")


@cache
def _faker() -> Any:
    from faker import Faker

    return Faker("zh_CN")

"""What one request of each kind of the mixed workload costs in CPU, on the distributed platform, one at a time.

    .venv/bin/python -m bench.request_cost [--seed-reports 300] [--requests 300]

The mixed workload (``bench/mixed_workload.py``) finds the highest rate that holds; this finds why, without the
noise of concurrency: the platform of the mixed workload (every service's API and worker, the router, Tansu, on
PostgreSQL) is started and seeded the same way, then each kind of request of the mix is sent ``--requests`` times,
one after the other on one keep-alive connection, and the CPU the platform's processes used meanwhile is divided
by the requests. Per kind:

- ``api``: the CPU of the API process that answered (ms per request); ``x healthz``: that against ``GET /healthz``
  of the same API in the same run (the HTTP stack and the load tool's floor; the machine's speed cancels out);
- ``postgres``: every PostgreSQL backend;
- ``followers``: the workers, the router and the other APIs (what a write sets off downstream: read models,
  routing, the referrals the router opens), counted until they are idle again, less what they use when idle
  (measured before the kinds). Sequential writes come to the followers one at a time, so this is their cost
  unbatched: under load they take events in batches and spend less per event;
- ``total``: the three together; ``wall p50``: the request's own latency.

Then the mix: the kinds weighted as the locustfile weights them (``MIX``), the CPU of one request of the mix, and
what 2 cores could serve at that cost (an upper bound: the load tool, the kernel and queueing take their share).
Writes ``bench/results/request_cost.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench._load.county import CONCERNS, FACTORS, NEXT_STATUS, OBSERVATIONS, bearer
from bench._pg import drop_schemas
from bench._results import write_results
from bench.intake_and_routing import pids_named, signing_key
from bench.mixed_workload import RESULTS_DIR, Plan, Platform, distributed, process_tree, progress, seed_county

# The locustfile's task weights (bench/locustfile.py); "referral read" stands for the read a referral action
# makes first when it has no ETag yet (measured: about 0.8 of the actions).
MIX = {"inbox": 30, "timeline": 10, "history": 5, "child file": 10, "feed": 5, "referral action": 15,
       "referral read": 12, "report": 10, "visit": 10, "assessment": 5}
IDLE_WINDOW_S = 3.0
QUIET_CORES = 0.05  # the followers count as idle again below this (over their idle use)


def _cpu(pids: Iterable[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += t.user + t.system
    return total


@dataclass
class Meter:
    """The CPU seconds of the platform's processes in three groups: one API, PostgreSQL, the followers."""

    platform: Platform
    idle_followers_cores: float = 0.0

    def followers(self, service: str | None = None) -> list[int]:
        """Every platform process but ``service``'s API (the router's calls to the referral API count as routing)."""
        return [pid for name, p in self.platform.processes.items() if name != f"api-{service}"
                for pid in process_tree(p.pid)] + pids_named("tansu")

    def read(self, service: str) -> tuple[float, float, float]:
        api = self.platform.processes[f"api-{service}"].pid
        return _cpu(process_tree(api)), _cpu(pids_named("postgres")), _cpu(self.followers(service))

    def calibrate(self) -> None:
        before, t0 = _cpu(self.followers()), time.perf_counter()
        time.sleep(IDLE_WINDOW_S)
        self.idle_followers_cores = (_cpu(self.followers()) - before) / (time.perf_counter() - t0)

    def settle(self, timeout_s: float = 60.0) -> None:
        """Until the followers are back to their idle use (whatever a write set off has been done)."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            before, t0 = _cpu(self.followers()), time.perf_counter()
            time.sleep(0.5)
            if (_cpu(self.followers()) - before) / (time.perf_counter() - t0) < self.idle_followers_cores + QUIET_CORES:
                return


@dataclass
class Kind:
    name: str
    service: str
    request: Callable[[int], httpx.Response]
    expect: tuple[int, ...] = (200,)
    writes: bool = False
    prepare: Callable[[int], None] | None = None


@dataclass
class County:
    """The requests of the mix, over the seeded county (one desk per agency, one director, one assessor)."""

    platform: Platform
    seed: dict[str, Any]
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def __post_init__(self) -> None:
        key = signing_key()
        self.officer = bearer(key, "bench-cost-police", "client", "police", "agency_officer")
        self.civil = bearer(key, "bench-cost-civil", "client", "civil_affairs", "agency_officer")
        place = self.seed["places"][0]
        self.place = place
        self.director = bearer(key, "bench-cost-director", "person", "village", "child_director", place["township"],
                               place["village"])
        self.clients = {name: httpx.Client(base_url=url, timeout=60) for name, url in self.platform.urls.items()}
        self.police_cases = self.seed["referrals"]["police"]
        self.children = [c for v in self.seed["children"].values() for c in v]
        self.village_children = self.seed["children"].get(f"{place['township']}/{place['village']}", self.children)
        # referrals the police desk moves along: one per action, each as far as it goes
        self.open_referrals = [r for r in self.police_cases if r["status"] in NEXT_STATUS]
        self.etags: dict[str, tuple[str, str]] = {}

    def get(self, service: str, path: str, headers: dict[str, str]) -> httpx.Response:
        return self.clients[service].get(path, headers=headers)

    def kinds(self) -> list[Kind]:
        def case(i: int) -> dict[str, str]:
            return self.police_cases[i % len(self.police_cases)]

        return [
            *(Kind(f"healthz {name}", name, functools.partial(self.healthz, name))
              for name in ("intake", "referral", "guardianship", "notifications")),
            Kind("inbox", "referral",
                 lambda i: self.get("referral", "/v1/agencies/police/referrals?limit=50", self.officer)),
            Kind("inbox filtered", "referral", lambda i: self.get(
                "referral", "/v1/agencies/police/referrals?limit=50&status=requested&status=received", self.officer)),
            Kind("referral read", "referral",
                 lambda i: self.get("referral", f"/v1/referrals/{case(i)['referral_id']}", self.officer)),
            Kind("timeline", "intake",
                 lambda i: self.get("intake", f"/v1/cases/{case(i)['case_id']}/timeline", self.officer)),
            Kind("history", "intake",
                 lambda i: self.get("intake", f"/v1/cases/{case(i)['case_id']}/history", self.officer)),
            Kind("child file", "intake",
                 lambda i: self.get("intake", f"/v1/children/{case(i)['child_id']}", self.officer)),
            Kind("feed", "notifications",
                 lambda i: self.get("notifications", "/v1/agencies/police/notifications?after=0&limit=50",
                                    self.officer)),
            Kind("referral action", "referral", self.referral_action, writes=True, prepare=self.read_etag),
            Kind("report", "intake", self.report, expect=(201,), writes=True),
            Kind("visit", "guardianship", self.visit, expect=(201,), writes=True),
            Kind("assessment", "guardianship", self.assessment, expect=(201,), writes=True),
        ]

    def healthz(self, service: str, i: int) -> httpx.Response:
        return self.get(service, "/healthz", {})

    def _open(self, i: int) -> dict[str, str]:
        return self.open_referrals[i % len(self.open_referrals)]

    def read_etag(self, i: int) -> None:
        rid = self._open(i)["referral_id"]
        response = self.get("referral", f"/v1/referrals/{rid}", self.officer)
        self.etags[rid] = (response.json()["status"], response.headers["ETag"])

    def referral_action(self, i: int) -> httpx.Response:
        rid = self._open(i)["referral_id"]
        status, etag = self.etags[rid]
        nxt = NEXT_STATUS.get(status, "received")
        body: dict[str, Any] = {"status": nxt, "agency": "police", **({"outcome": "resolved"}
                                                                       if nxt == "completed" else {})}
        return self.clients["referral"].post(f"/v1/referrals/{rid}/status", json=body,
                                             headers={**self.officer, "If-Match": etag})

    def report(self, i: int) -> httpx.Response:
        from faker import Faker

        fake = Faker("zh_CN")
        fake.seed_instance(i)
        today = date.today()
        body = {
            "reporter": {"agency": "police", "role": "police_officer", "reference": f"COST-{uuid.uuid4().hex[:10]}"},
            "child": {"name": fake.name(), "sex": "female",
                      "birth_date": (today - timedelta(days=3000 + i)).isoformat(),
                      "township": self.place["township"], "village": self.place["village"],
                      "categories": ["left_behind"]},
            "concern_category": CONCERNS[i % len(CONCERNS)], "urgency": "urgent",
            "observed_on": (today - timedelta(days=1)).isoformat(), "observations": OBSERVATIONS,
        }
        return self.clients["intake"].post("/v1/reports", json=body, headers=self.officer)

    def visit(self, i: int) -> httpx.Response:
        child = self.village_children[i % len(self.village_children)]
        body = {"kind": "home_visit", "agency": "village", "findings": ["all_well"],
                "visited_on": date.today().isoformat()}
        return self.clients["guardianship"].post(f"/v1/children/{child['child_id']}/visits", json=body,
                                                 headers=self.director)

    def assessment(self, i: int) -> httpx.Response:
        case = self.seed["all_cases"][i % len(self.seed["all_cases"])]
        body = {"child_id": case["child_id"], "assessor_agency": "civil_affairs", "factors": list(FACTORS[: i % 4])}
        return self.clients["guardianship"].post(f"/v1/cases/{case['case_id']}/guardianship-assessments",
                                                 json=body, headers=self.civil)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@contextmanager
def profiled(meter: Meter, kind: Kind, out: Path | None) -> Iterator[None]:
    """``py-spy record --gil`` on the kind's API while its requests run (``--profile``): collapsed stacks of where
    the API's Python CPU goes, a file per kind."""
    spy = shutil.which("py-spy") if out else None
    if out is None or spy is None:
        yield
        return
    pid = meter.platform.processes[f"api-{kind.service}"].pid
    command = [spy, "record", "-p", str(pid), "--gil", "--nonblocking", "--subprocesses", "--format", "raw", "-r",
               "500", "-o", str(out)]  # --subprocesses: an API's worker processes (--workers) too
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def measure(meter: Meter, kind: Kind, requests: int, warmup: int, profile: Path | None = None) -> dict[str, Any]:
    for i in range(warmup):
        if kind.prepare:
            kind.prepare(i)
        kind.request(i)
    meter.settle()
    with profiled(meter, kind, profile):
        return _measure(meter, kind, requests, warmup)


def _measure(meter: Meter, kind: Kind, requests: int, warmup: int) -> dict[str, Any]:
    walls: list[float] = []
    failures = 0
    api0, pg0, fol0 = meter.read(kind.service)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + requests):
        if kind.prepare:  # the read before the write, taken out of the write's figures
            a, p, _ = meter.read(kind.service)
            kind.prepare(i)
            a2, p2, _ = meter.read(kind.service)
            api0, pg0 = api0 + (a2 - a), pg0 + (p2 - p)
        started = time.perf_counter()
        response = kind.request(i)
        walls.append((time.perf_counter() - started) * 1000)
        failures += response.status_code not in kind.expect
    if kind.writes:
        meter.settle()
    elapsed = time.perf_counter() - t0
    api1, pg1, fol1 = meter.read(kind.service)
    followers = max(0.0, (fol1 - fol0) - meter.idle_followers_cores * elapsed) if kind.writes else 0.0
    per = {"api": (api1 - api0) / requests * 1000, "postgres": (pg1 - pg0) / requests * 1000,
           "followers": followers / requests * 1000}
    return {"kind": kind.name, "service": kind.service, "requests": requests, "failures": failures,
            **{k: round(v, 3) for k, v in per.items()}, "total": round(sum(per.values()), 3),
            "wall_p50_ms": round(statistics.median(walls), 2)}


def run(seed_reports: int, requests: int, warmup: int, profile: bool = False) -> dict[str, Any]:
    prefix = f"bench_cost_{uuid.uuid4().hex[:8]}_"
    logs = RESULTS_DIR / "logs" / "request_cost"
    logs.mkdir(parents=True, exist_ok=True)
    plan = Plan(quick=False, rates=(), step_s=0, warmup_s=0, baseline_step_s=0, seed_reports=seed_reports)
    try:
        with tempfile.TemporaryDirectory() as tmp, distributed(prefix, logs) as platform:
            seed_path = Path(tmp) / "seed.json"
            seed_county(platform, plan, seed_path)
            county = County(platform, json.loads(seed_path.read_text()))
            meter = Meter(platform)
            meter.calibrate()
            rows = []
            try:
                for kind in county.kinds():
                    out = logs / f"{kind.name.replace(' ', '-')}.profile.txt" if profile else None
                    row = measure(meter, kind, requests, warmup, out)
                    rows.append(row)
                    progress(f"{row['kind']}: api {row['api']:.2f} ms, postgres {row['postgres']:.2f}, followers "
                             f"{row['followers']:.2f}, wall p50 {row['wall_p50_ms']:.1f} ms, "
                             f"failures {row['failures']}")
            finally:
                county.close()
    finally:
        progress(f"dropped {drop_schemas(prefix)} PostgreSQL schema(s) {prefix}*")
    healthz = {r["service"]: r["api"] for r in rows if r["kind"].startswith("healthz")}
    for r in rows:
        r["x_healthz"] = round(r["api"] / healthz[r["service"]], 2) if healthz.get(r["service"]) else None
    by_kind = {r["kind"]: r for r in rows}
    weight = sum(MIX.values())
    mix = {part: round(sum(by_kind[k][part] * w for k, w in MIX.items()) / weight, 3)
           for part in ("api", "postgres", "followers", "total")}
    return {"rows": rows, "mix_ms_per_request": mix,
            "two_cores_bound_per_s": round(2000 / mix["total"], 1) if mix["total"] else None,
            "idle_followers_cores": round(meter.idle_followers_cores, 3), "requests_per_kind": requests}


def table(result: dict[str, Any]) -> str:
    lines = [f"{'kind':<18}{'api ms':>8}{'x healthz':>10}{'postgres':>9}{'followers':>10}{'total':>8}"
             f"{'wall p50':>9}{'fail':>6}"]
    for r in result["rows"]:
        x = f"{r['x_healthz']:.1f}" if r["x_healthz"] is not None else "-"
        lines.append(f"{r['kind']:<18}{r['api']:>8.2f}{x:>10}{r['postgres']:>9.2f}{r['followers']:>10.2f}"
                     f"{r['total']:>8.2f}{r['wall_p50_ms']:>9.1f}{r['failures']:>6}")
    mix = result["mix_ms_per_request"]
    lines.append(f"mix (locustfile weights): api {mix['api']:.2f} + postgres {mix['postgres']:.2f} + followers "
                 f"{mix['followers']:.2f} = {mix['total']:.2f} ms of CPU per request; 2 cores at most "
                 f"{result['two_cores_bound_per_s']:.0f} requests/s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed-reports", type=int, default=300)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--profile", action="store_true",
                        help="py-spy (on PATH) on the API of each kind: logs/request_cost/<kind>.profile.txt")
    args = parser.parse_args(argv)
    result = run(args.seed_reports, args.requests, args.warmup, args.profile)
    print(table(result))
    path = RESULTS_DIR / "request_cost.json"
    write_results(path, "request_cost", "sequential requests per kind; CPU of the platform's processes per request",
                  result, ("fastapi", "starlette", "pydantic", "sqlalchemy", "psycopg", "eventsourcing", "uvicorn"))
    print(f"JSON: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

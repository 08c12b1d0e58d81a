"""The county's mixed workload under locust, at rising rates until latency breaks, embedded and distributed.

    .venv/bin/python -m bench.mixed_workload [--mode embedded|distributed|both] [--quick]
                                             [--rates 50,100,200,300,400,600] [--step-s 45] [--warmup-s 10]
                                             [--seed-reports 3000] [--baseline-step-s 20] [--profile]

1. Start the platform as ``bench/intake_and_routing.py`` does: ``huhang run --no-demo`` (embedded, SQLite), or
   every service's API and worker + the router on PostgreSQL (a schema prefix of the run's own, dropped at the
   end), Tansu and Prefect (distributed); the workers and the router at a lower CPU priority
   (``HUHANG_BACKGROUND_NICE``, default here 10: the APIs first, the followers catch up in the gaps). One
   synthetic token signing key for the run; every desk of the workload mints tokens of its own subjects with it
   (``bench/locustfile.py``), as agency systems and people would hold their own.
2. Seed the county over HTTP: ``--seed-reports`` reports (Faker zh_CN names, 32 villages in 4 townships, five
   concerns routed to 2–5 agencies each; the workload itself files eight) and wait until routing has settled (the
   inboxes stop growing and guardianship knows the last child); then read every officer agency's inbox for the
   referrals it holds.
3. For each rate (offered = desks × 1 task/s each, the starts of each desk's tasks a Poisson process: see
   ``poisson_throughput``): locust, headless, as a subprocess, with ``bench/locustfile.py``: first the baseline
   (``HealthzUser``: ``GET /healthz`` of the same servers, same desks, same rate;
   the load tool's own cost), then the mix (``CountyUser``, weights in the locustfile: inbox 30,
   timeline 10 + history 5, child file 10, referral actions 15, reports 10, visits 10, assessments 5, feed 5).
   A referral action whose ETag the desk does not know yet is two requests (read, then act with ``If-Match``), so
   the requests achieved can exceed the tasks offered. The warm-up (``--warmup-s``) starts when locust reports
   every desk spawned; its requests are left out. A step holds when p99 < 500 ms, errors
   <= 1 % and at least 95 % of the offered rate was achieved (below that the tool waited on the server and the
   latencies hide the queue). The rates stop at the first step that does not hold.
4. CPU per process (each platform process with its children, PostgreSQL, Tansu, locust, everything else) over
   every step, from psutil and /proc/stat: on a 2-core machine shared with other work, the bottleneck is read
   there. The machine's CPU per request achieved, and before every step the machine's Python speed
   (``machine_speed_ms``: one fixed loop, best of 3), since a virtual machine's CPU varies between runs.
   ``--profile`` also runs ``py-spy record`` (if on PATH) on the busiest platform process at each step, or on each
   process ``HUHANG_BENCH_PROFILE_PROCESS`` names (comma-separated, e.g. ``api-referral,worker-intake``).
   ``HUHANG_BENCH_API_THREADS``, ``HUHANG_BENCH_POOL_SIZE`` and ``HUHANG_BENCH_MAX_OVERFLOW`` set the platform's
   thread pool and connection pools (defaults 4, 12, 0); ``HUHANG_BENCH_API_WORKERS`` the processes serving each
   API (default ``referral=2,intake=2``, the others one); ``HUHANG_BENCH_SETTINGS`` (``name=value,...``) any
   other setting of every platform process.

Prints a table per mode and writes ``bench/results/mixed_workload_<mode>.json``; logs (platform and locust) go to
``bench/results/logs/mixed_workload_<mode>/``. Target: the mix holds >= 300 requests/s at p99 < 500 ms in
distributed mode: the requests achieved by a step that holds (a step offers desk tasks; a referral action whose
ETag the desk does not know is two requests, so a step achieves about 1.1 requests per task offered).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench._load.county import CONCERNS, OFFICER_AGENCIES, bearer
from bench._pg import DATABASE_URL, analyze_schemas, drop_schemas, sessions_started
from bench._results import write_results
from bench.intake_and_routing import SyntheticReports, latency_ms, pids_named, signing_key
from huhang.bootstrap import SERVICE_NAMES
from tests.support.processes import free_port, huhang_env, huhang_process, stop_process, wait_http

RESULTS_DIR = Path(__file__).parent / "results"
LOCUSTFILE = Path(__file__).parent / "locustfile.py"
REPO = Path(__file__).resolve().parent.parent
API_SERVICES = SERVICE_NAMES  # every service of the platform, as the composition root lists them
P99_LIMIT_MS = 500.0
ERROR_LIMIT = 0.01
ACHIEVED_MIN = 0.95
TARGET_RATE_DISTRIBUTED = 300.0
USER_RATE = 1.0  # requests/s per desk
STARTUP_TIMEOUT_S = 90.0  # locust's own start (imports, gevent) on a busy machine
_T0 = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    quick: bool
    rates: tuple[float, ...]
    step_s: float
    warmup_s: float
    baseline_step_s: float
    seed_reports: int
    settle_timeout_s: float = 300.0
    profile: bool = False


FULL = Plan(quick=False, rates=(50, 100, 200, 300, 400, 600), step_s=45, warmup_s=10, baseline_step_s=20,
            seed_reports=3000)
QUICK = Plan(quick=True, rates=(20, 50), step_s=8, warmup_s=3, baseline_step_s=6, seed_reports=120)


# ---------------------------------------------------------------------------------------------------- platform


@dataclass
class Platform:
    mode: str
    urls: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]
    storage: str
    schema_prefix: str | None = None  # PostgreSQL: the schemas of this platform's services


@contextmanager
def embedded(tmp: Path, logs: Path) -> Iterator[Platform]:
    port = free_port()
    env = huhang_env(data_dir=str(tmp / "embedded-data"), auth_signing_key=signing_key())
    env.update({"PORT": str(port), "HOST": "127.0.0.1"})
    url = f"http://127.0.0.1:{port}"
    progress("embedded: starting huhang run --no-demo")
    with huhang_process(["run", "--no-demo"], env, logs / "huhang-run.log") as process:
        wait_http(f"{url}/healthz", 180, process)
        yield Platform("embedded", dict.fromkeys(API_SERVICES, url), {"huhang-run": process}, "sqlite")


@contextmanager
def distributed(schema_prefix: str, logs: Path) -> Iterator[Platform]:
    from tests.support.broker import running_broker

    progress("distributed: starting the Kafka-protocol broker (Tansu)")
    with running_broker() as bootstrap, ExitStack() as stack:
        ports = {name: free_port() for name in API_SERVICES}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        env = huhang_env(
            storage="postgres", database_url=DATABASE_URL, schema_prefix=schema_prefix, transport="kafka",
            kafka_bootstrap_servers=bootstrap, kafka_max_poll_interval_ms="60000", kafka_session_timeout_ms="5000",
            referral_url=urls["referral"], intake_url=urls["intake"], guardianship_url=urls["guardianship"],
            auth_signing_key=signing_key(),
            # connections kept open, none opened per burst: 11 processes x 2 pools x 12 fit in the 400 connections
            # ./dev test sets. With 6 + 6 overflow, 150/s started 552 backends in 30 s (a fifth of the machine's
            # CPU, and 150/s missed at p99 946 ms); with 12 + 0, 1 backend, and 150/s held at p99 366 ms.
            postgres_pool_size=os.environ.get("HUHANG_BENCH_POOL_SIZE", "12"),
            postgres_max_overflow=os.environ.get("HUHANG_BENCH_MAX_OVERFLOW", "0"),
            # Two processes for each of the two busiest APIs, four threads each: one process's GIL held their tail
            # latency (250/s: p99 512 ms with one process of 8 threads, 200 ms with two; 4 threads each held 270/s
            # where 8 missed). HUHANG_BENCH_API_WORKERS="" and HUHANG_BENCH_API_THREADS=8: one process each.
            api_threads=os.environ.get("HUHANG_BENCH_API_THREADS", "4"),
        )
        # HUHANG_BENCH_SETTINGS="follow_window_s=0.5,...": any other setting for every process of the platform
        env.update({f"HUHANG_{name.strip().upper()}": value.strip() for name, value in
                    (item.split("=", 1) for item in os.environ.get("HUHANG_BENCH_SETTINGS", "").split(",")
                     if "=" in item)})
        progress(f"distributed: starting {len(API_SERVICES)} APIs, as many workers and the router")
        processes: dict[str, subprocess.Popen[bytes]] = {}
        # HUHANG_BENCH_API_WORKERS="referral=2,intake=2": processes serving a service's API on its port
        workers = dict(item.split("=", 1) for item in
                       os.environ.get("HUHANG_BENCH_API_WORKERS", "referral=2,intake=2").split(",") if "=" in item)
        for name in API_SERVICES:
            args = ["api", name, "--host", "127.0.0.1", "--port", str(ports[name]), "--workers", workers.get(name, "1")]
            processes[f"api-{name}"] = stack.enter_context(huhang_process(args, env, logs / f"api-{name}.log"))
        # the followers and the router behind the APIs on the CPU (HUHANG_BACKGROUND_NICE, as in compose.yaml)
        background = {**env, "HUHANG_BACKGROUND_NICE": os.environ.get("HUHANG_BACKGROUND_NICE", "10")}
        for name in API_SERVICES:
            processes[f"worker-{name}"] = stack.enter_context(
                huhang_process(["worker", name], background, logs / f"worker-{name}.log"))
        processes["router"] = stack.enter_context(huhang_process(["router"], background, logs / "router.log"))
        for name in API_SERVICES:
            wait_http(f"{urls[name]}/healthz", 180, processes[f"api-{name}"])
        yield Platform("distributed", urls, processes, "postgres", schema_prefix)


# -------------------------------------------------------------------------------------------------------- seed


def places() -> list[dict[str, str]]:
    from bench.intake_and_routing import TOWNSHIPS, VILLAGES

    return [{"township": t, "village": v} for t in TOWNSHIPS for v in VILLAGES]


def seed_county(platform: Platform, plan: Plan, path: Path) -> dict[str, Any]:
    """File the seed reports, wait for routing to settle, collect what each agency holds; write the seed file."""
    reports = SyntheticReports(seed=random.randrange(1 << 30))
    rng = random.Random(7)
    reporter = bearer(signing_key(), "bench-seed-education", "client", "education", "agency_officer")
    intake = httpx.Client(base_url=platform.urls["intake"], timeout=60, headers=reporter)
    children: dict[str, list[dict[str, str]]] = defaultdict(list)
    all_cases: list[dict[str, str]] = []

    def file(i: int) -> None:
        body = reports.body(i, rng.choice(CONCERNS[:5]))
        response = intake.post("/v1/reports", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"seed report: HTTP {response.status_code}")
        answer = response.json()
        ids = {"case_id": answer["case_id"], "child_id": answer["child_id"]}
        children[f"{body['child']['township']}/{body['child']['village']}"].append(ids)
        all_cases.append(ids)

    started = time.perf_counter()
    progress(f"{platform.mode}: seeding {plan.seed_reports} reports")
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(file, range(plan.seed_reports)))
    finally:
        intake.close()
    progress(f"{platform.mode}: filed in {time.perf_counter() - started:.0f}s; waiting for routing to settle")
    referrals = wait_settled(platform, plan, all_cases[-1])
    seed = {"urls": platform.urls, "places": places(), "children": dict(children), "all_cases": all_cases,
            "referrals": referrals}
    path.write_text(json.dumps(seed))
    if platform.schema_prefix is not None:  # the statistics autovacuum keeps in production (off on these machines)
        analyze_schemas(platform.schema_prefix)
    counts = {agency: len(items) for agency, items in referrals.items()}
    progress(f"{platform.mode}: seeded in {time.perf_counter() - started:.0f}s; referrals held: {counts}")
    return {"reports": plan.seed_reports, "seconds": round(time.perf_counter() - started, 1),
            "referrals_by_agency": counts}


def wait_settled(platform: Platform, plan: Plan, last: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    deadline = time.perf_counter() + plan.settle_timeout_s
    clients = {a: httpx.Client(base_url=platform.urls["referral"], timeout=60,
                               headers=bearer(signing_key(), f"bench-seed-{a}", "client", a, "agency_officer"))
               for a in OFFICER_AGENCIES}
    civil = httpx.Client(base_url=platform.urls["guardianship"], timeout=60,
                         headers=bearer(signing_key(), "bench-seed-civil", "client", "civil_affairs", "agency_officer"))
    try:
        previous, stable = -1, 0
        while time.perf_counter() < deadline:
            total = sum(sum(c.get(f"/v1/agencies/{a}/referrals", params={"limit": 1}).json()["counts_by_status"]
                            .values()) for a, c in clients.items())
            known = civil.get(f"/v1/children/{last['child_id']}/care").status_code == 200
            stable = stable + 1 if total == previous and total > 0 and known else 0
            if stable >= 3:
                break
            previous = total
            time.sleep(2)
        else:
            raise TimeoutError(f"routing did not settle within {plan.settle_timeout_s:g}s")
        held: dict[str, list[dict[str, str]]] = {}
        for agency, client in clients.items():
            items, cursor = [], None
            while True:
                params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
                page = client.get(f"/v1/agencies/{agency}/referrals", params=params).json()
                items += [{"referral_id": r["referral_id"], "case_id": r["case_id"], "child_id": r["child_id"],
                           "status": r["status"]} for r in page["items"]]
                cursor = page.get("next_cursor")
                if not cursor or not page["items"]:
                    break
            held[agency] = items
        return held
    finally:
        for c in (*clients.values(), civil):
            c.close()


# ---------------------------------------------------------------------------------------------------- CPU split


class CpuSplit:
    """CPU in cores (1.0 = one core all the time) over a step: each platform process with its children (the
    router's Prefect server), PostgreSQL, Tansu, locust, this driver, and the rest of the machine."""

    def __init__(self, processes: Mapping[str, subprocess.Popen[bytes]], locust: subprocess.Popen[bytes]) -> None:
        self.groups: dict[str, Callable[[], list[int]]] = {
            name: functools.partial(process_tree, p.pid) for name, p in processes.items()
        }
        self.groups["locust"] = lambda: process_tree(locust.pid)
        self.groups["postgres"] = lambda: pids_named("postgres")
        self.groups["tansu"] = lambda: pids_named("tansu")
        self.groups["bench driver"] = lambda: [os.getpid()]
        self.result: dict[str, float] = {}

    def _times(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for label, pids in self.groups.items():
            out[label] = {}
            for pid in pids():
                try:
                    t = psutil.Process(pid).cpu_times()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                out[label][pid] = t.user + t.system
        return out

    def start(self) -> None:
        self._start, self._t = self._times(), time.perf_counter()
        self._machine = psutil.cpu_times()

    def stop(self) -> dict[str, float]:
        elapsed = max(1e-6, time.perf_counter() - self._t)
        end, machine = self._times(), psutil.cpu_times()
        for label, times in end.items():
            used = sum(t - self._start[label].get(pid, 0.0) for pid, t in times.items())
            self.result[label] = round(used / elapsed, 2)
        busy = _busy(machine) - _busy(self._machine)
        total = sum(machine) - sum(self._machine)
        cores = busy / max(1e-6, total) * (os.cpu_count() or 1)
        self.result["others"] = round(max(0.0, cores - sum(self.result.values())), 2)
        self.result["machine"] = round(cores, 2)
        return self.result


def _busy(t: Any) -> float:
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def process_tree(pid: int) -> list[int]:
    try:
        process = psutil.Process(pid)
        return [pid, *(c.pid for c in process.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


# --------------------------------------------------------------------------------------------------------- steps


def machine_speed_ms() -> float:
    """How fast this machine runs Python right now: the best of 3 timings of one fixed loop (ms). The CPU a
    virtual machine gets varies from hour to hour (measured here: the same step used 1.3x the CPU an hour later);
    a step's CPU per request divided by this figure compares across runs where the raw milliseconds do not."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def run_step(platform: Platform, plan: Plan, seed_path: Path, logs: Path, user_class: str, rate: float,
             seconds: float) -> dict[str, Any]:
    users = max(1, round(rate / USER_RATE))
    speed_ms = machine_speed_ms()  # the platform idle between steps
    label = f"{user_class}-{rate:g}"
    samples = logs / f"{label}.samples.jsonl"
    spawned = Path(f"{samples}.spawned")
    for stale in (samples, spawned):
        stale.unlink(missing_ok=True)
    spawn_s = 5.0
    env = {**os.environ, "PYTHONPATH": str(REPO), "HUHANG_BENCH_SEED": str(seed_path),
           "HUHANG_BENCH_SAMPLES": str(samples), "HUHANG_BENCH_SIGNING_KEY": signing_key(),
           "HUHANG_BENCH_USERS": str(users), "HUHANG_BENCH_USER_RATE": str(USER_RATE)}
    # The run time is a ceiling: the driver stops locust (SIGTERM, a clean quit that writes the samples) once the
    # measured window is over; the window starts from locust's own "every desk spawned", not from its start-up.
    ceiling_s = STARTUP_TIMEOUT_S + spawn_s + plan.warmup_s + seconds + 30
    args = [str(Path(sys.executable).parent / "locust"), "-f", str(LOCUSTFILE), user_class, "--headless",
            "--host", platform.urls["intake"], "--users", str(users), "--spawn-rate", f"{users / spawn_s:.1f}",
            "--run-time", f"{ceiling_s:g}s", "--stop-timeout", "10", "--csv", str(logs / label),
            "--only-summary", "--loglevel", "WARNING"]
    progress(f"{platform.mode}: {user_class} at {rate:g}/s ({users} desks), {plan.warmup_s:g}s warm-up + {seconds:g}s")
    with (logs / f"{label}.locust.log").open("wb") as out:
        locust = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                  start_new_session=True)
        cpu = CpuSplit(platform.processes, locust)
        profiled: dict[str, Any] = {}
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S + spawn_s * 4
            while not spawned.exists():
                if locust.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"locust did not get every desk going (log: {out.name})")
                time.sleep(0.1)
            time.sleep(plan.warmup_s)
            measured_from = time.time()
            sessions_before = sessions_started() if platform.storage == "postgres" else None
            cpu.start()
            if plan.profile and user_class == "CountyUser":
                profiled = profile(platform, logs / f"{label}.profile.svg", seconds * 0.8)
            else:
                time.sleep(seconds)
            cores = cpu.stop()
            measured_to = time.time()
            sessions = None if sessions_before is None else sessions_started() - sessions_before
            locust.send_signal(signal.SIGTERM)
            locust.wait(60)
        finally:
            stop_process(locust)
    row = summarise(samples, measured_from, measured_to, rate, users, user_class)
    if user_class == "CountyUser" and platform.mode == "distributed":
        row["followers"] = backlog_drained(platform)
    row["cpu_cores"] = cores
    row["machine_speed_ms"] = speed_ms
    row["postgres_sessions_started"] = sessions  # backends opened during the step (pool overflow: a process each)
    busy = cores.get("machine", 0.0)
    row["cpu_ms_per_request"] = round(busy * 1000 / row["achieved_per_s"], 2) if row["achieved_per_s"] else None
    row["processes_exited"] = {n: p.returncode for n, p in platform.processes.items() if p.poll() is not None}
    if profiled:
        row["profile"] = profiled
    return row


def backlog_drained(platform: Platform, timeout_s: float = 120.0) -> dict[str, Any]:
    """The followers' backlog when the step's load stops (events not yet handled by the relays, read models and the
    router, from every service's ``GET /v1/ops/streams``), and how long they take to handle it: a step that holds its
    latency by leaving the read models and routing ever further behind does not hold."""
    headers = bearer(signing_key(), "bench-ops", "client", "civil_affairs", "auditor")
    urls = sorted(set(platform.urls.values()))

    def total() -> int | None:
        lag = 0
        for url in urls:
            try:
                answer = httpx.get(f"{url}/v1/ops/streams", headers=headers, timeout=30)
            except httpx.HTTPError:
                return None
            if answer.status_code != 200:
                return None
            lag += int(answer.json()["total_lag"])
        return lag

    started = time.monotonic()
    at_end = remaining = total()
    while remaining and time.monotonic() - started < timeout_s:
        time.sleep(1.0)
        remaining = total()
    return {"backlog_at_end": at_end, "drained_s": round(time.monotonic() - started, 1) if remaining == 0 else None}


def summarise(samples: Path, t0: float, t1: float, rate: float, users: int, user_class: str) -> dict[str, Any]:
    by_name: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    every: list[float] = []
    n = 0
    if samples.exists():
        for line in samples.read_text().splitlines():
            t, name, ms, ok, status = json.loads(line)
            if not t0 <= t <= t1:
                continue
            n += 1
            by_name[name].append(ms / 1000)
            every.append(ms / 1000)
            if not ok:
                errors[name] += 1
                statuses[f"{name} {status or 'no answer'}"] += 1
    seconds = max(1e-6, t1 - t0)
    error_rate = sum(errors.values()) / n if n else 1.0
    overall = latency_ms(every, (50, 95, 99))
    achieved = n / seconds
    holds = (overall["p99"] is not None and overall["p99"] < P99_LIMIT_MS and error_rate <= ERROR_LIMIT
             and achieved >= ACHIEVED_MIN * rate)
    return {
        "workload": "mixed" if user_class == "CountyUser" else "healthz baseline",
        "offered_per_s": rate, "desks": users, "achieved_per_s": round(achieved, 1), "requests": n,
        "seconds": round(seconds, 1), "errors": sum(errors.values()), "error_rate": round(error_rate, 4),
        "errors_by_status": dict(statuses), "latency_ms": overall,
        "by_kind": {name: {"requests": len(v), "share": round(len(v) / max(1, n), 3), "errors": errors[name],
                           **latency_ms(v, (50, 95, 99))} for name, v in sorted(by_name.items())},
        "holds": holds,
    }


def profile(platform: Platform, svg: Path, seconds: float) -> dict[str, Any]:
    """``py-spy record`` on the platform process using the most CPU right now (if py-spy is installed), or on
    each process ``HUHANG_BENCH_PROFILE_PROCESS`` names (comma-separated), all at once, a file each."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not spy:
        time.sleep(seconds / 0.8)
        return {"note": "py-spy not found on PATH: no profile (the CPU split still says where the time goes)"}
    named = [n for n in os.environ.get("HUHANG_BENCH_PROFILE_PROCESS", "").split(",") if n]
    chosen = named or [_busiest(platform)]
    # HUHANG_BENCH_PROFILE_IDLE=1: idle threads too (where requests wait, not only where the CPU goes), raw stacks
    # HUHANG_BENCH_PROFILE_RAW=1: collapsed stacks (text, for reading and summing) instead of the flame graph
    idle = os.environ.get("HUHANG_BENCH_PROFILE_IDLE") == "1"
    raw = idle or os.environ.get("HUHANG_BENCH_PROFILE_RAW") == "1"
    # HUHANG_BENCH_PROFILE_GIL=1: only the thread holding the GIL (where the process's Python CPU goes)
    gil = os.environ.get("HUHANG_BENCH_PROFILE_GIL") == "1"
    options = (["--idle"] if idle else []) + (["--format", "raw"] if raw else []) + (["--gil"] if gil else [])
    outs = {name: (svg.with_suffix(".txt") if raw else svg) for name in chosen}
    if len(chosen) > 1:
        outs = {name: out.with_name(out.name.replace(".profile", f".{name}.profile")) for name, out in outs.items()}
    spies = [
        subprocess.Popen([spy, "record", "-p", str(platform.processes[name].pid), "-d", str(int(seconds)), "-o",
                          str(out), "--nonblocking", "--subprocesses", *options],  # an API's --workers too
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, out in outs.items()
    ]
    for process in spies:
        process.wait()
    return {"process": ",".join(chosen), "flamegraph": ",".join(str(out) for out in outs.values())}


def _busiest(platform: Platform) -> str:
    usage = {}
    for name, process in platform.processes.items():
        try:
            usage[name] = psutil.Process(process.pid).cpu_percent(0.5)
        except psutil.NoSuchProcess:
            continue
    return max(usage, key=lambda k: usage[k])


def run_mode(mode: str, plan: Plan, tmp: Path, prefix: str) -> dict[str, Any]:
    logs = RESULTS_DIR / "logs" / f"mixed_workload_{mode}"
    logs.mkdir(parents=True, exist_ok=True)
    context = embedded(tmp, logs) if mode == "embedded" else distributed(f"{prefix}d_", logs)
    result: dict[str, Any] = {"mode": mode, "plan": asdict(plan), "steps": [], "baseline": []}
    with context as platform:
        result["storage"] = platform.storage
        seed_path = tmp / f"seed-{mode}.json"
        result["seed"] = seed_county(platform, plan, seed_path)
        for rate in plan.rates:
            base = run_step(platform, plan, seed_path, logs, "HealthzUser", rate, plan.baseline_step_s)
            result["baseline"].append(base)
            row = run_step(platform, plan, seed_path, logs, "CountyUser", rate, plan.step_s)
            result["steps"].append(row)
            followers = row.get("followers", {})
            backlog = (f"; followers' backlog {followers['backlog_at_end']} events, handled in "
                       f"{followers['drained_s']} s" if followers else "")
            progress(f"{mode} {rate:g}/s: achieved {row['achieved_per_s']}/s, p99 {row['latency_ms']['p99']} ms, "
                     f"errors {row['error_rate']:.2%} (baseline p99 {base['latency_ms']['p99']} ms); "
                     f"{'holds' if row['holds'] else 'does NOT hold'}{backlog}")
            if not row["holds"] or row["processes_exited"]:
                break
    held = [r for r in result["steps"] if r["holds"]]
    result["highest_rate_holding"] = max(r["offered_per_s"] for r in held) if held else None
    # The target is in requests/s: the requests achieved by a step that holds (a desk's referral action can be two
    # requests, so a step achieves more requests than the tasks it offers).
    result["highest_requests_per_s_holding"] = max(r["achieved_per_s"] for r in held) if held else None
    result["top_step_cpu_cores"] = result["steps"][-1]["cpu_cores"] if result["steps"] else {}
    if mode == "distributed":
        result["target"] = {"requests_per_s": TARGET_RATE_DISTRIBUTED, "p99_ms": P99_LIMIT_MS,
                            "met": (result["highest_requests_per_s_holding"] or 0) >= TARGET_RATE_DISTRIBUTED}
    return result


# --------------------------------------------------------------------------------------------------------- table


def _f(value: Any, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def table(result: dict[str, Any]) -> str:
    lines = [f"\nMixed county workload, {result['mode']} ({result['storage']}); seed: {result.get('seed', {})}"]
    head = f"{'offered':>7} {'achieved':>8} {'p50':>6} {'p95':>6} {'p99':>6} {'errors':>7} {'holds':>5}"
    lines.append(f"{head} {'cpu ms/req':>10} {'speed ms':>8}   baseline /healthz: {'achieved':>8} {'p50':>6} "
                 f"{'p99':>6}")
    for row, base in zip(result["steps"], result["baseline"], strict=False):
        lat, blat = row["latency_ms"], base["latency_ms"]
        lines.append(f"{row['offered_per_s']:>7g} {row['achieved_per_s']:>8.1f} {_f(lat['p50']):>6} "
                     f"{_f(lat['p95']):>6} {_f(lat['p99']):>6} {row['error_rate']:>7.2%} "
                     f"{'yes' if row['holds'] else 'NO':>5} {_f(row.get('cpu_ms_per_request'), '.1f'):>10} "
                     f"{_f(row.get('machine_speed_ms'), '.0f'):>8}   {'':>18} {base['achieved_per_s']:>8.1f} "
                     f"{_f(blat['p50']):>6} {_f(blat['p99']):>6}")
    for row in result["steps"]:
        lines.append(f"  at {row['offered_per_s']:g}/s, by kind (requests, p50/p95/p99 ms, errors):")
        for name, k in row["by_kind"].items():
            lines.append(f"    {name:<16} {k['requests']:>6} {k['share']:>6.1%} {_f(k['p50']):>6} {_f(k['p95']):>6} "
                         f"{_f(k['p99']):>6} {k['errors']:>5}")
        if row["errors_by_status"]:
            lines.append(f"    errors: {row['errors_by_status']}")
    if result["steps"]:
        cpu = result["top_step_cpu_cores"]
        top = ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= 0.01)
        lines.append(f"  CPU in cores at the top step ({os.cpu_count()} cores): {top}")
        opened = [f"{row['offered_per_s']:g}/s: {row['postgres_sessions_started']}" for row in result["steps"]
                  if row.get("postgres_sessions_started") is not None]
        if opened:
            lines.append(f"  PostgreSQL sessions started during each step: {', '.join(opened)}")
    lines.append(f"  highest rate holding p99 < {P99_LIMIT_MS:g} ms (errors <= {ERROR_LIMIT:.0%}, achieved >= "
                 f"{ACHIEVED_MIN:.0%} of offered): {result['highest_rate_holding']} tasks/s offered, "
                 f"{result['highest_requests_per_s_holding']} requests/s achieved")
    if "target" in result:
        lines.append(f"  target >= {TARGET_RATE_DISTRIBUTED:g} requests/s: "
                     f"{'met' if result['target']['met'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.mixed_workload", description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=("embedded", "distributed", "both"), default="both")
    p.add_argument("--quick", action="store_true", help="a short smoke run (2 low rates, short steps, small seed)")
    p.add_argument("--rates", help="comma-separated offered rates (requests/s), lowest first")
    p.add_argument("--step-s", type=float)
    p.add_argument("--warmup-s", type=float)
    p.add_argument("--baseline-step-s", type=float)
    p.add_argument("--seed-reports", type=int)
    p.add_argument("--profile", action="store_true", help="py-spy the busiest platform process at each step")
    args = p.parse_args(argv)
    plan = QUICK if args.quick else FULL
    overrides: dict[str, Any] = {"profile": args.profile}
    if args.rates:
        overrides["rates"] = tuple(float(r) for r in args.rates.split(","))
    for name in ("step_s", "warmup_s", "baseline_step_s", "seed_reports"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    from dataclasses import replace

    plan = replace(plan, **overrides)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    modes = ("embedded", "distributed") if args.mode == "both" else (args.mode,)
    prefix = f"bench_mixed_{uuid.uuid4().hex[:8]}_"
    failed = False
    for mode in modes:
        result: dict[str, Any]
        try:
            with tempfile.TemporaryDirectory(prefix="huhang-bench-mixed-") as tmp:
                result = run_mode(mode, plan, Path(tmp), prefix)
        except Exception as exc:  # the other mode still runs; the failure is in the results
            progress(f"{mode} FAILED: {type(exc).__name__}: {exc}")
            result = {"mode": mode, "plan": asdict(plan), "failed": f"{type(exc).__name__}: {exc}"}
            failed = True
        finally:
            if mode == "distributed":
                dropped = drop_schemas(prefix)
                progress(f"dropped {len(dropped)} PostgreSQL schema(s) {prefix}*")
        path = RESULTS_DIR / f"mixed_workload_{mode}.json"
        write_results(
            path, "mixed_workload",
            "locust (FastHttpUser, Poisson task starts at 1/s per desk, headless subprocess per step) at "
            "rising offered rates; per step a /healthz baseline with the same harness; requests of the warm-up "
            "left out; percentiles exact from every request",
            result, ("locust", "fastapi", "uvicorn", "eventsourcing", "sqlalchemy", "psycopg", "kafka-python",
                     "prefect"),
        )
        if "steps" in result:
            print(table(result))
        print(f"JSON: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

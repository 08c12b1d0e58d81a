"""Intake and routing benchmark: raw eventsourcing saves, intake over HTTP, and report-to-inbox latency.

    .venv/bin/python -m bench.intake_and_routing [--quick] [--parts baseline,http,embedded,distributed]
                                                 [--batch-size N] [--json PATH]

1. baseline: ``IntakeApplication.file_report`` called directly (no HTTP) from 1, 8 and 32 threads, on SQLite (a
   temporary data folder) and on PostgreSQL (a unique schema prefix, dropped at the end): reports/s. In memory
   too, for the pure CPU cost of the domain code.
2. http: ``huhang api intake`` as its own process, ``POST /v1/reports`` from 1, 8 and 32 keep-alive clients
   (one thread and one ``httpx.Client`` each): reports/s, p50/p99 latency, ratio to the baseline at the same
   concurrency. Target: PostgreSQL at 32 clients >= 50% of the raw baseline. For calibration, the same load on
   intake's HTTP shell without storage (``bench/_http_shell.py``) shows what HTTP alone costs on this machine.
3. embedded (``huhang run --no-demo``) / distributed (4 APIs, 4 workers, router; PostgreSQL, Tansu, Prefect):
   guardian-neglect reports (routed to police) filed open-loop at 10/s, then 50/s, for 20 s each, while a
   separate thread polls the police inbox; latency from the scheduled send of the POST to the referral being
   visible in the inbox. Target: p95 < 2 s at 50/s in both modes. ``--batch-size`` sets ``HUHANG_BATCH_SIZE``
   for these processes (default: the platform's own).

CPU use of each process group (the API, PostgreSQL, Tansu, this benchmark, everything else) is read from /proc
for every phase: on a shared 2-core machine the figures mean little without it.

Every child is synthetic: a name made by index from Faker's zh_CN name parts (surname + two given-name
characters), a generated birth date; nothing personal is printed or logged. Prints the figures table to stdout,
progress to stderr, and writes ``bench/results/intake_and_routing.json``; process logs go to
``bench/results/logs/<results file name>/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import itertools
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench._pg import DATABASE_URL, drop_schemas
from huhang.settings import Settings
from huhang.storage import eventsourcing_env
from services.intake.application import ChildFacts, FileReport, IntakeApplication
from tests.support.auth import minted_auth, new_signing_key
from tests.support.processes import free_port, huhang_env, huhang_process, stop_process, wait_http

RESULTS_DIR = Path(__file__).parent / "results"
DEFAULT_JSON = RESULTS_DIR / "intake_and_routing.json"
PARTS = ("baseline", "http", "embedded", "distributed")
API_SERVICES = ("intake", "referral", "guardianship", "notifications")
REQUIRED_APIS = ("intake", "referral")  # what a report needs to reach the police inbox
SHELL = "no store"  # the HTTP shell: intake's app shell, models and endpoint shape, nothing saved
CONCERN = "guardian_neglect"  # routes to police (contracts/routing_rules.yaml)
INBOX_AGENCY = "police"
HTTP_TARGET_RATIO = 0.5
E2E_TARGET_P95_MS = 2000.0
E2E_TARGET_RATE = 50.0
_T0 = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Plan:
    quick: bool
    concurrencies: tuple[int, ...]
    baseline_s: float
    baseline_warmup_s: float
    http_s: float
    http_warmup_s: float
    http_shell_s: float
    e2e_rates: tuple[float, ...]  # lowest first; the target applies at E2E_TARGET_RATE
    e2e_s: float
    e2e_warmup_s: float
    e2e_tail_s: float
    ready_timeout_s: float
    # How often the watcher looks at the inbox, as an agency's system would poll it. Latency is measured to the
    # poll that first sees the referral, so this errs high by up to one interval, never low.
    inbox_poll_s: float = 0.1
    inbox_page_limit: int = 20
    batch_size: int | None = None  # HUHANG_BATCH_SIZE for the e2e processes; None: the platform's default


FULL = Plan(
    quick=False, concurrencies=(1, 8, 32), baseline_s=8, baseline_warmup_s=1, http_s=10, http_warmup_s=2,
    http_shell_s=5, e2e_rates=(10, 50), e2e_s=20, e2e_warmup_s=3, e2e_tail_s=30, ready_timeout_s=180,
)
QUICK = Plan(
    quick=True, concurrencies=(1, 8, 32), baseline_s=3, baseline_warmup_s=0.5, http_s=3, http_warmup_s=1,
    http_shell_s=2, e2e_rates=(10, 50), e2e_s=5, e2e_warmup_s=1, e2e_tail_s=15, ready_timeout_s=180,
)


# ------------------------------------------------------------------------------------------------ synthetic data

OBSERVATIONS = "基准测试合成数据：连续三天未到校，家访发现孩子独自在家，无人照看。"  # synthetic, no real person
TOWNSHIPS = ("虹桥镇", "白云镇", "清河乡", "石门镇")
VILLAGES = ("溪西村", "东岭村", "南塘村", "北坡村", "石桥村", "柳湾村", "枫林村", "青山村")


class SyntheticReports:
    """Report bodies for distinct synthetic children: never a real person, never the same child twice in a run.

    The name is surname + two given-name characters picked by index from Faker's zh_CN lists (shuffled per run),
    so names are distinct for the first ~6.8 million reports; the birth date varies with the index too.
    """

    def __init__(self, seed: int) -> None:
        from faker.providers.person.zh_CN import Provider

        rng = random.Random(seed)
        self._surnames = list(dict.fromkeys(Provider.last_names))
        self._given = list(dict.fromkeys(Provider.first_names))
        rng.shuffle(self._surnames)
        rng.shuffle(self._given)
        self._counter = itertools.count()
        self._today = datetime.now(UTC).date()
        self._span_days = 16 * 365  # born 1 to 17 years ago

    def next_body(self, concern: str = CONCERN) -> dict[str, Any]:
        return self.body(next(self._counter), concern)

    def body(self, i: int, concern: str = CONCERN) -> dict[str, Any]:
        s, g = len(self._surnames), len(self._given)
        n, k = i % (s * g * g), i // (s * g * g)
        name = self._surnames[n % s] + self._given[(n // s) % g] + self._given[(n // (s * g)) % g]
        birth = self._today - timedelta(days=366 + (n * 7 + k) % self._span_days)
        return {
            "reporter": {"agency": "education", "role": "teacher", "reference": f"BENCH-{i}"},
            "child": {
                "name": name,
                "sex": "female" if i % 2 else "male",
                "birth_date": birth.isoformat(),
                "township": TOWNSHIPS[i % len(TOWNSHIPS)],
                "village": VILLAGES[(i // len(TOWNSHIPS)) % len(VILLAGES)],
                "categories": ["left_behind"],
            },
            "concern_category": concern,
            "urgency": "urgent",
            "observed_on": (self._today - timedelta(days=1)).isoformat(),
            "observations": OBSERVATIONS,
        }


def command(body: Mapping[str, Any]) -> FileReport:
    """The command the intake API would make of this body (services/intake/api.py)."""
    child = body["child"]
    return FileReport(
        reporter_agency=body["reporter"]["agency"],
        reporter_role=body["reporter"]["role"],
        reporter_reference=body["reporter"].get("reference"),
        child=ChildFacts(
            name=child["name"], sex=child["sex"], birth_date=date.fromisoformat(child["birth_date"]),
            id_card_number=None, township=child["township"], village=child["village"],
            categories=tuple(child["categories"]),
        ),
        concern_category=body["concern_category"],
        urgency=body["urgency"],
        observations=body["observations"],
        observed_on=date.fromisoformat(body["observed_on"]),
        fingerprint=hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(),
    )


# ------------------------------------------------------------------------------------------------------ measuring


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank; ``sorted_values`` ascending and non-empty."""
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def latency_ms(values: Iterable[float], qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float | None]:
    """Percentiles (and max) in ms; an infinite value (never seen) makes the percentiles it reaches ``None``."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for q in (*qs, 100.0):
        key = "max" if q == 100.0 else f"p{q:g}"
        if not ordered:
            out[key] = None
            continue
        v = percentile(ordered, q)
        out[key] = None if v == float("inf") else round(v * 1000, 1)
    return out


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _pid_ticks(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def pids_named(*names: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in names:
            pids.append(int(entry.name))
    return pids


def _machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    total = sum(values)
    return total - values[3] - values[4], total  # busy (not idle, not iowait), total


class CpuMeter:
    """CPU used by groups of processes over a phase, in cores (1.0 = one core busy all the time)."""

    def __init__(self, groups: Mapping[str, Callable[[], Iterable[int]]]) -> None:
        self.groups = groups
        self.result: dict[str, float] = {}

    def _snapshot(self) -> dict[str, dict[int, int]]:
        snap: dict[str, dict[int, int]] = {}
        for label, pids in self.groups.items():
            snap[label] = {pid: t for pid in pids() if (t := _pid_ticks(pid)) is not None}
        return snap

    def __enter__(self) -> CpuMeter:
        self._start = self._snapshot()
        self._machine = _machine_ticks()
        self._t = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        elapsed = time.perf_counter() - self._t
        end = self._snapshot()
        busy0, total0 = self._machine
        busy1, total1 = _machine_ticks()
        for label, ticks in end.items():
            used = sum(t - self._start[label].get(pid, 0) for pid, t in ticks.items())
            self.result[label] = round(used / CLOCK_TICKS / elapsed, 2) if elapsed > 0 else 0.0
        cpus = os.cpu_count() or 1
        machine = (busy1 - busy0) / max(1, total1 - total0) * cpus
        self.result["others"] = round(max(0.0, machine - sum(self.result.values())), 2)
        self.result["machine"] = round(machine, 2)
        self.result["load_avg_1m"] = round(os.getloadavg()[0], 2)


def cpu_groups(processes: Mapping[str, subprocess.Popen[bytes]] | None = None) -> dict[str, Callable[[], list[int]]]:
    groups: dict[str, Callable[[], list[int]]] = {"bench": lambda: [os.getpid()]}
    if processes:
        procs = dict(processes)
        groups["huhang"] = lambda: [p.pid for p in procs.values()]
    groups["postgres"] = lambda: pids_named("postgres")
    groups["tansu"] = lambda: pids_named("tansu")
    return groups


@dataclass
class LoadResult:
    ok: int
    errors: int
    seconds: float
    latencies: list[float]
    error_kinds: dict[str, int]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def closed_loop(clients: int, seconds: float, call: Callable[[int], None]) -> LoadResult:
    """``clients`` threads each calling ``call(thread_index)`` back to back for ``seconds``."""
    barrier = threading.Barrier(clients + 1)
    deadline = [0.0]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(idx: int) -> None:
        mine = latencies[idx]
        barrier.wait()
        while time.perf_counter() < deadline[0]:
            t = time.perf_counter()
            try:
                call(idx)
            except Exception as exc:
                with lock:
                    errors[str(exc) if isinstance(exc, StatusError) else type(exc).__name__] += 1
            else:
                mine.append(time.perf_counter() - t)

    threads = [threading.Thread(target=worker, args=(i,), name=f"load-{i}", daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    deadline[0] = start + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    flat = [v for lat in latencies for v in lat]
    return LoadResult(len(flat), sum(errors.values()), elapsed, flat, dict(errors))


class StatusError(Exception):
    """An unexpected HTTP status (the message is only the status: bodies may echo report data)."""


def _load_row(label: dict[str, Any], res: LoadResult, cpu: dict[str, float]) -> dict[str, Any]:
    lat = latency_ms(res.latencies, (50, 99))
    return {
        **label, "reports": res.ok, "errors": res.errors, "error_kinds": res.error_kinds,
        "seconds": round(res.seconds, 2), "reports_per_s": round(res.rate, 1),
        "p50_ms": lat["p50"], "p99_ms": lat["p99"], "max_ms": lat["max"], "cpu_cores": cpu,
    }


# --------------------------------------------------------------------------------------------------- 1. baseline


def bench_baseline(plan: Plan, reports: SyntheticReports, storage: str, settings: Settings) -> list[dict[str, Any]]:
    app = IntakeApplication(
        eventsourcing_env(settings, "intake"), identity_key=settings.identity_key.get_secret_value().encode()
    )
    rows = []
    try:

        def call(_: int) -> None:
            app.file_report(command(reports.next_body()))

        for n in plan.concurrencies:
            progress(f"baseline {storage}: {n} thread(s), warm-up {plan.baseline_warmup_s:g}s")
            closed_loop(n, plan.baseline_warmup_s, call)
            with CpuMeter(cpu_groups()) as meter:
                res = closed_loop(n, plan.baseline_s, call)
            rows.append(_load_row({"storage": storage, "clients": n}, res, meter.result))
            progress(f"baseline {storage}: {n} thread(s): {res.rate:.0f} reports/s ({res.errors} errors)")
    finally:
        app.close()
    return rows


# ------------------------------------------------------------------------------------------------------- 2. http


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until ``url`` answers 200; fail early if the process exits."""
    wait_http(url, timeout_s, process)


Starter = Callable[[int, Path], AbstractContextManager[subprocess.Popen[bytes]]]


def intake_api(env: dict[str, str]) -> Starter:
    def start(port: int, log: Path) -> AbstractContextManager[subprocess.Popen[bytes]]:
        return huhang_process(["api", "intake", "--host", "127.0.0.1", "--port", str(port)], env, log)

    return start


@contextmanager
def http_shell(port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``bench/_http_shell.py`` under uvicorn, as ``huhang api`` runs an API (one process, h11, asyncio)."""
    args = ["-m", "uvicorn", "bench._http_shell:app", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *args, "--log-level", "warning"], env=huhang_env(auth_signing_key=signing_key()),
            stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=Path(__file__).parent.parent,
        )
        try:
            yield process
        finally:
            stop_process(process)


def bench_http(
    plan: Plan, reports: SyntheticReports, storage: str, start: Starter, log: Path,
    baseline: list[dict[str, Any]], seconds: float | None = None,
) -> list[dict[str, Any]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rows = []
    base_rate = {r["clients"]: r["reports_per_s"] for r in baseline if r["storage"] == storage}
    with start(port, log) as process:
        wait_ready(f"{url}/healthz", process, 90)
        clients = [httpx.Client(base_url=url, timeout=30, verify=False, auth=api_auth())
                   for _ in range(max(plan.concurrencies))]
        try:

            def call(idx: int) -> None:
                response = clients[idx].post("/v1/reports", json=reports.next_body())
                if response.status_code != 201:
                    raise StatusError(f"HTTP {response.status_code}")

            for n in plan.concurrencies:
                progress(f"http {storage}: {n} client(s), warm-up {plan.http_warmup_s:g}s")
                closed_loop(n, plan.http_warmup_s, call)
                with CpuMeter(cpu_groups({"api": process})) as meter:
                    res = closed_loop(n, seconds or plan.http_s, call)
                row = _load_row({"storage": storage, "clients": n}, res, meter.result)
                base = base_rate.get(n)
                row["baseline_reports_per_s"] = base
                row["ratio_to_baseline"] = round(res.rate / base, 2) if base else None
                rows.append(row)
                progress(f"http {storage}: {n} client(s): {res.rate:.0f} reports/s, p99 {row['p99_ms']} ms")
        finally:
            for client in clients:
                client.close()
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode} during the run (log: {log})")
    return rows


# -------------------------------------------------------------------------------------------------- 3. end to end


class InboxWatcher:
    """Polls an agency's inbox (newest first) from its own thread; records when each case id first shows up.

    Pages back (cursor) while a whole page is new, so nothing is missed when many referrals arrive between polls.
    """

    def __init__(self, referral_url: str, agency: str, interval_s: float, page_limit: int) -> None:
        self.url = referral_url
        self.path = f"/v1/agencies/{agency}/referrals"
        self.interval_s = interval_s
        self.page_limit = page_limit
        self.first_seen: dict[str, float] = {}
        self.polls = 0
        self.requests = 0
        self.request_s = 0.0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10, verify=False, auth=api_auth()) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    self._poll(client)
                except (httpx.HTTPError, ValueError, KeyError):
                    self.errors += 1
                self.polls += 1
                self._stop.wait(max(0.0, self.interval_s - (time.perf_counter() - started)))

    def _poll(self, client: httpx.Client) -> None:
        cursor: str | None = None
        for _ in range(100):
            params: dict[str, str | int] = {"limit": self.page_limit}
            if cursor:
                params["cursor"] = cursor
            t = time.perf_counter()
            response = client.get(self.path, params=params)
            seen_at = time.perf_counter()
            self.requests += 1
            self.request_s += seen_at - t
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            page = response.json()
            items = page["items"]
            fresh = [item["case_id"] for item in items if item["case_id"] not in self.first_seen]
            for case_id in fresh:
                self.first_seen.setdefault(case_id, seen_at)
            cursor = page.get("next_cursor")
            if not cursor or len(fresh) < len(items):
                return


@dataclass
class Filed:
    scheduled: float
    sent: float
    answered: float
    status: int
    case_id: str | None
    error: str | None = None


OPEN_LOOP_THREADS = 200


@functools.cache
def signing_key() -> str:
    """One token signing key for every process of the run (HUHANG_AUTH_SIGNING_KEY)."""
    return new_signing_key()


@functools.cache
def api_auth() -> httpx.Auth:
    """The load generators' bearer token (a system token minted with the run's key), shared by every client."""
    return minted_auth(signing_key())


def file_open_loop(intake_url: str, reports: SyntheticReports, rate: float, seconds: float) -> list[Filed]:
    """POST ``rate`` reports a second for ``seconds``, each at its scheduled time whatever the earlier answers
    (open loop), from a pool of threads with one keep-alive ``httpx.Client`` each.

    No request waits on a shared connection pool. A send still late (all threads busy) shows in ``send_lag_ms``;
    latencies count from the scheduled time, so a late send is never hidden. Clients are made with
    ``verify=False`` (plain HTTP on loopback): the default loads the CA bundle, about 70 ms of CPU per client on
    this machine under load, enough to delay sends by seconds when 200 threads start.
    """
    bodies = [reports.next_body() for _ in range(max(1, round(rate * seconds)))]
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def client() -> httpx.Client:
        mine: httpx.Client | None = getattr(local, "client", None)
        if mine is None:
            mine = local.client = httpx.Client(base_url=intake_url, timeout=60, verify=False, auth=api_auth())
            with lock:
                clients.append(mine)
        return mine

    def one(body: dict[str, Any], scheduled: float) -> Filed:
        sent = time.perf_counter()
        try:
            response = client().post("/v1/reports", json=body)
        except httpx.HTTPError as exc:
            return Filed(scheduled, sent, time.perf_counter(), 0, None, type(exc).__name__)
        answered = time.perf_counter()
        case_id = response.json()["case_id"] if response.status_code == 201 else None
        return Filed(scheduled, sent, answered, response.status_code, case_id)

    try:
        with ThreadPoolExecutor(max_workers=OPEN_LOOP_THREADS, thread_name_prefix="filer") as pool:
            start = time.perf_counter() + 0.1
            futures = []
            for i, body in enumerate(bodies):
                scheduled = start + i / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(one, body, scheduled))
            return [f.result() for f in futures]
    finally:
        for c in clients:
            c.close()


def wait_routed(watcher: InboxWatcher, case_ids: Iterable[str], timeout_s: float) -> bool:
    wanted = set(case_ids)
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if wanted <= watcher.first_seen.keys():
            return True
        time.sleep(0.05)
    return wanted <= watcher.first_seen.keys()


def routing_failures(log: Path) -> dict[str, int]:
    """How often the routing flow run failed, by exception type (the log's own words, no event data)."""
    try:
        content = log.read_text(errors="replace")
    except OSError:
        return {}
    return dict(Counter(re.findall(r"routing flow run failed \((\w+)", content)))


def bench_e2e(
    plan: Plan, reports: SyntheticReports, mode: str, intake_url: str, referral_url: str,
    processes: Mapping[str, subprocess.Popen[bytes]], started_at: float, router_log: Path,
) -> list[dict[str, Any]]:
    """One row per rate in ``plan.e2e_rates``, lowest first; a rate is skipped once a phase left reports unrouted."""
    watcher = InboxWatcher(referral_url, INBOX_AGENCY, plan.inbox_poll_s, plan.inbox_page_limit)
    watcher.start()
    rows: list[dict[str, Any]] = []
    try:
        progress(f"{mode}: waiting for a first report to be routed (Prefect, consumer groups, ...)")
        probe = file_open_loop(intake_url, reports, 1, 1)
        if probe[0].status != 201 or probe[0].case_id is None:
            raise RuntimeError(f"the probe report was not filed (HTTP {probe[0].status})")
        if not wait_routed(watcher, [probe[0].case_id], plan.ready_timeout_s):
            raise TimeoutError(f"no referral in the {INBOX_AGENCY} inbox within {plan.ready_timeout_s:g}s")
        ready_after = time.perf_counter() - started_at
        rate0 = plan.e2e_rates[0]
        progress(f"{mode}: routing works ({ready_after:.1f}s after start); warm-up {rate0:g}/s {plan.e2e_warmup_s:g}s")
        warm = file_open_loop(intake_url, reports, rate0, plan.e2e_warmup_s)
        wait_routed(watcher, [f.case_id for f in warm if f.case_id], plan.e2e_tail_s)
        for rate in plan.e2e_rates:
            if rows and rows[-1]["missing"]:
                progress(f"{mode}: {rate:g}/s skipped: the previous phase left reports unrouted")
                rows[-1]["next_rates_skipped"] = [r for r in plan.e2e_rates if r > rows[-1]["rate_per_s"]]
                break
            row = _e2e_phase(plan, reports, mode, rate, intake_url, processes, watcher, router_log)
            row["ready_after_start_s"] = round(ready_after, 1)
            rows.append(row)
    finally:
        watcher.stop()
    return rows


def _e2e_phase(
    plan: Plan, reports: SyntheticReports, mode: str, rate: float, intake_url: str,
    processes: Mapping[str, subprocess.Popen[bytes]], watcher: InboxWatcher, router_log: Path,
) -> dict[str, Any]:
    failures_before = Counter(routing_failures(router_log))
    requests_before, request_s_before = watcher.requests, watcher.request_s
    progress(f"{mode}: filing {rate:g} reports/s for {plan.e2e_s:g}s (open loop)")
    per_process = {name: (lambda p=p: [p.pid]) for name, p in processes.items()}
    with CpuMeter(cpu_groups(processes)) as meter, CpuMeter(per_process) as detail:
        filed = file_open_loop(intake_url, reports, rate, plan.e2e_s)
        filing_done = time.perf_counter()
    ok = [f for f in filed if f.case_id is not None]
    progress(f"{mode}: filed {len(ok)}/{len(filed)}; waiting up to {plan.e2e_tail_s:g}s for the rest to route")
    wait_routed(watcher, [f.case_id for f in ok if f.case_id], plan.e2e_tail_s)
    drained_after = time.perf_counter() - filing_done
    seen = dict(watcher.first_seen)
    e2e = [seen[f.case_id] - f.scheduled if f.case_id in seen else float("inf") for f in ok if f.case_id]
    routed_times = [seen[f.case_id] for f in ok if f.case_id in seen]
    lat = latency_ms(e2e)
    statuses = Counter(f.error or f"HTTP {f.status}" for f in filed if f.status != 201)
    first_send = min(f.scheduled for f in filed)
    requests = watcher.requests - requests_before
    return {
        "mode": mode,
        "rate_per_s": rate,
        "duration_s": plan.e2e_s,
        "filed": len(ok),
        "post_errors": dict(statuses),
        "routed": len(routed_times),
        "missing": len(ok) - len(routed_times),
        "latency_ms": lat,
        "post_latency_ms": latency_ms([f.answered - f.scheduled for f in filed if f.status], (50, 99)),
        "send_lag_ms": latency_ms([max(0.0, f.sent - f.scheduled) for f in filed], (50, 99)),
        "routed_per_s": round(len(routed_times) / (max(routed_times) - first_send), 1) if routed_times else 0.0,
        "drain_after_last_post_s": round(drained_after, 2),
        "inbox_watcher": {
            "requests": requests, "errors": watcher.errors, "page_limit": plan.inbox_page_limit,
            "mean_request_ms": round((watcher.request_s - request_s_before) / max(1, requests) * 1000, 1),
        },
        "cpu_cores": meter.result,
        "cpu_cores_by_process": {k: v for k, v in detail.result.items() if k in processes},
        "processes_exited": {name: p.returncode for name, p in processes.items() if p.poll() is not None},
        "routing_flow_failures": dict(Counter(routing_failures(router_log)) - failures_before),
        "batch_size": plan.batch_size,
        "target_p95_ms": E2E_TARGET_P95_MS,
        "meets_target": lat["p95"] is not None and lat["p95"] < E2E_TARGET_P95_MS,
    }


def _batch(plan: Plan) -> dict[str, str]:
    return {} if plan.batch_size is None else {"batch_size": str(plan.batch_size)}


def run_embedded(plan: Plan, reports: SyntheticReports, tmp: Path, logs: Path) -> list[dict[str, Any]]:
    port = free_port()
    env = huhang_env(data_dir=str(tmp / "embedded-data"), auth_signing_key=signing_key(), **_batch(plan))
    env.update({"PORT": str(port), "HOST": "127.0.0.1"})
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    progress("embedded: starting huhang run --no-demo")
    log = logs / "embedded-huhang-run.log"
    with huhang_process(["run", "--no-demo"], env, log) as process:
        try:
            wait_ready(f"{url}/healthz", process, 120)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc} (log: {log})") from None
        rows = bench_e2e(plan, reports, "embedded", url, url, {"huhang-run": process}, started, log)
    for row in rows:
        row["storage"] = "sqlite"
    return rows


def run_distributed(plan: Plan, reports: SyntheticReports, schema_prefix: str, logs: Path) -> list[dict[str, Any]]:
    from tests.support.broker import running_broker

    progress("distributed: starting the Kafka-protocol broker (Tansu)")
    with running_broker() as bootstrap, ExitStack() as stack:
        ports = {name: free_port() for name in API_SERVICES}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        env = huhang_env(
            storage="postgres", database_url=DATABASE_URL, schema_prefix=schema_prefix, transport="kafka",
            kafka_bootstrap_servers=bootstrap, kafka_max_poll_interval_ms="60000", kafka_session_timeout_ms="5000",
            referral_url=urls["referral"], auth_signing_key=signing_key(), **_batch(plan),
        )
        started = time.perf_counter()
        progress("distributed: starting 4 APIs, 4 workers and the router")
        processes: dict[str, subprocess.Popen[bytes]] = {}
        for name in API_SERVICES:
            args = ["api", name, "--host", "127.0.0.1", "--port", str(ports[name])]
            processes[f"api-{name}"] = stack.enter_context(huhang_process(args, env, logs / f"dist-api-{name}.log"))
        for name in API_SERVICES:
            processes[f"worker-{name}"] = stack.enter_context(
                huhang_process(["worker", name], env, logs / f"dist-worker-{name}.log")
            )
        processes["router"] = stack.enter_context(huhang_process(["router"], env, logs / "dist-router.log"))
        unavailable = {}
        for name in API_SERVICES:
            try:
                wait_ready(f"{urls[name]}/healthz", processes[f"api-{name}"], 120)
            except (RuntimeError, TimeoutError) as exc:
                if name in REQUIRED_APIS:
                    raise RuntimeError(f"{name} API: {exc} (logs in {logs})") from None
                unavailable[name] = str(exc)
                progress(f"distributed: {name} API unavailable ({exc}); not needed for this benchmark")
        rows = bench_e2e(
            plan, reports, "distributed", urls["intake"], urls["referral"], processes, started, logs / "dist-router.log"
        )
    for row in rows:
        row["storage"] = "postgres"
        row["apis_unavailable"] = unavailable
    return rows


# ------------------------------------------------------------------------------------------------------- running


@dataclass
class Results:
    meta: dict[str, Any]
    baseline: list[dict[str, Any]] = field(default_factory=list)
    http: list[dict[str, Any]] = field(default_factory=list)
    e2e: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    targets: dict[str, Any] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        self.targets = evaluate_targets(self)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n")


def evaluate_targets(results: Results) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    pg32 = [r for r in results.http if r["storage"] == "postgres" and r["clients"] == 32]
    if pg32:
        ratio = pg32[0]["ratio_to_baseline"]
        targets["intake_http_postgres_32_clients_ratio"] = {
            "value": ratio, "target": f">= {HTTP_TARGET_RATIO}",
            "met": ratio is not None and ratio >= HTTP_TARGET_RATIO,
        }
    for mode in dict.fromkeys(row["mode"] for row in results.e2e):
        at_rate = [r for r in results.e2e if r["mode"] == mode and r["rate_per_s"] == E2E_TARGET_RATE]
        name = f"e2e_{mode}_p95_ms_at_{E2E_TARGET_RATE:g}_per_s"
        if at_rate:
            row = at_rate[0]
            targets[name] = {
                "value": row["latency_ms"]["p95"], "target": f"< {E2E_TARGET_P95_MS:g}", "met": row["meets_target"],
            }
        else:
            targets[name] = {"value": None, "target": f"< {E2E_TARGET_P95_MS:g}", "met": False, "note": "not run"}
    return targets


@contextmanager
def part(results: Results, name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        progress(f"{name} FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc(file=sys.stderr)
        results.failures.append({"part": name, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        progress(f"{name}: {time.perf_counter() - started:.0f}s")


def _fmt(value: Any, spec: str = ",.0f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def table(results: Results) -> str:
    lines: list[str] = []
    if results.baseline:
        lines += ["", "1. Baseline: IntakeApplication.file_report(), no HTTP (threads in one process)"]
        lines.append(f"{'storage':<9} {'clients':>7} {'reports/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for r in results.baseline:
            lines.append(
                f"{r['storage']:<9} {r['clients']:>7} {_fmt(r['reports_per_s']):>10} {_fmt(r['p50_ms'], '.1f'):>8} "
                f"{_fmt(r['p99_ms'], '.1f'):>8} {r['errors']:>7}"
            )
    if results.http:
        lines += ["", "2. Intake over HTTP: POST /v1/reports to `huhang api intake` (keep-alive clients)"]
        lines.append(
            f"{'storage':<9} {'clients':>7} {'reports/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
            f"{'HTTP/base':>9} {'api CPU':>8} {'pg CPU':>7} {'bench CPU':>9} {'others':>7}"
        )
        for r in results.http:
            cpu = r["cpu_cores"]
            lines.append(
                f"{r['storage']:<9} {r['clients']:>7} {_fmt(r['reports_per_s']):>10} {_fmt(r['p50_ms'], '.1f'):>8} "
                f"{_fmt(r['p99_ms'], '.1f'):>8} {r['errors']:>7} {_fmt(r['ratio_to_baseline'], '.2f'):>9} "
                f"{_fmt(cpu.get('huhang'), '.2f'):>8} {_fmt(cpu.get('postgres'), '.2f'):>7} "
                f"{_fmt(cpu.get('bench'), '.2f'):>9} {_fmt(cpu.get('others'), '.2f'):>7}"
            )
        lines.append(
            f"   (CPU in cores over the phase, the machine has {os.cpu_count() or 1}; others = processes not in this"
            f" benchmark; '{SHELL}' = intake's HTTP shell and models without storage, bench/_http_shell.py)"
        )
    if results.e2e:
        secs = results.e2e[0]["duration_s"]
        lines += ["", f"3. POST /v1/reports -> referral in the police inbox, open loop for {secs:g}s per rate"]
        lines.append(
            f"{'mode':<12} {'rate/s':>6} {'filed':>6} {'routed':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
            f"{'max ms':>8} {'POST p50/p99 ms':>16} {'routed/s':>8} {'app CPU':>7} {'p95<2s':>6}"
        )
        for r in results.e2e:
            lat, post = r["latency_ms"], r["post_latency_ms"]
            lines.append(
                f"{r['mode']:<12} {r['rate_per_s']:>6g} {r['filed']:>6} {r['routed']:>6} {_fmt(lat['p50']):>8} "
                f"{_fmt(lat['p95']):>8} {_fmt(lat['p99']):>8} {_fmt(lat['max']):>8} "
                f"{_fmt(post['p50']) + '/' + _fmt(post['p99']):>16} {_fmt(r['routed_per_s'], '.1f'):>8} "
                f"{_fmt(r['cpu_cores'].get('huhang'), '.2f'):>7} {'yes' if r['meets_target'] else 'NO':>6}"
            )
        lines.append(
            f"   (latency from the scheduled send; '-' = not routed within the tail wait; app CPU in cores;"
            f" target p95 < {E2E_TARGET_P95_MS / 1000:g}s at {E2E_TARGET_RATE:g}/s)"
        )
        for r in results.e2e:
            notes = []
            if r["missing"]:
                notes.append(f"{r['missing']} report(s) not in the inbox {plan_tail(results):g}s after the last POST")
            if r["post_errors"]:
                notes.append(f"POST errors: {r['post_errors']}")
            if r["routing_flow_failures"]:
                failures = ", ".join(f"{k} x{v}" for k, v in r["routing_flow_failures"].items())
                notes.append(f"routing flow runs failed: {failures}")
            if r["processes_exited"]:
                notes.append(f"processes exited: {r['processes_exited']}")
            if r.get("next_rates_skipped"):
                notes.append(f"not run at {', '.join(f'{x:g}/s' for x in r['next_rates_skipped'])} (backlog left)")
            if r.get("batch_size"):
                notes.append(f"HUHANG_BATCH_SIZE={r['batch_size']}")
            lines += [f"   {r['mode']} {r['rate_per_s']:g}/s: {note}" for note in notes]
    if results.targets:
        lines += ["", "Targets:"]
        for name, t in results.targets.items():
            verdict = "met" if t["met"] else "NOT met"
            lines.append(f"  {name}: {_fmt(t['value'], '.2f')} (target {t['target']}): {verdict}")
    if results.failures:
        lines += ["", "Failed parts:"]
        lines += [f"  {f['part']}: {f['error']}" for f in results.failures]
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("eventsourcing", "fastapi", "uvicorn", "pydantic", "sqlalchemy", "psycopg", "kafka-python", "prefect"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "?"
    return out


def plan_tail(results: Results) -> float:
    return float(results.meta["plan"]["e2e_tail_s"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.intake_and_routing", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a reduced run (short phases) as a smoke check")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results")
    p.add_argument(
        "--batch-size", type=int, default=None,
        help="HUHANG_BATCH_SIZE for the end-to-end processes (default: the platform's own default)",
    )
    args = p.parse_args(argv)
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    if unknown := set(parts) - set(PARTS):
        p.error(f"unknown parts: {', '.join(sorted(unknown))}")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")

    plan = dataclasses.replace(QUICK if args.quick else FULL, batch_size=args.batch_size)
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench_{run_id}_"
    logs = RESULTS_DIR / "logs" / args.json.stem  # one folder per results file: runs do not clobber each other
    logs.mkdir(parents=True, exist_ok=True)
    reports = SyntheticReports(seed=int(run_id, 16))
    results = Results(
        meta={
            "benchmark": "intake_and_routing", "run_id": run_id, "quick": plan.quick, "parts": parts,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "plan": asdict(plan),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "versions": _versions(), "postgres_schema_prefix": prefix,
            "load_generator": "threads, one keep-alive httpx.Client each (closed loop in 2, open loop in 3)",
        }
    )
    progress(f"run {run_id} ({'quick' if plan.quick else 'full'}): {', '.join(parts)}; logs in {logs}")
    try:
        with tempfile.TemporaryDirectory(prefix="huhang-bench-") as tmp_name:
            tmp = Path(tmp_name)
            if "baseline" in parts:
                for storage, settings in (
                    ("memory", Settings(storage="memory")),
                    ("sqlite", Settings(storage="sqlite", data_dir=tmp / "baseline-sqlite")),
                    ("postgres", Settings(storage="postgres", database_url=DATABASE_URL, schema_prefix=f"{prefix}b_")),
                ):
                    with part(results, f"baseline {storage}"):
                        results.baseline += bench_baseline(plan, reports, storage, settings)
                results.write(args.json)
            if "http" in parts:
                with part(results, "http shell"):
                    log = logs / "http-shell.log"
                    results.http += bench_http(plan, reports, SHELL, http_shell, log, [], plan.http_shell_s)
                pg_env = huhang_env(storage="postgres", database_url=DATABASE_URL, schema_prefix=f"{prefix}h_",
                                    auth_signing_key=signing_key())
                for storage, env in (
                    ("sqlite", huhang_env(storage="sqlite", data_dir=str(tmp / "http-sqlite"),
                                          auth_signing_key=signing_key())),
                    ("postgres", pg_env),
                ):
                    with part(results, f"http {storage}"):
                        log = logs / f"http-{storage}-api-intake.log"
                        results.http += bench_http(plan, reports, storage, intake_api(env), log, results.baseline)
                results.write(args.json)
            if "embedded" in parts:
                with part(results, "e2e embedded"):
                    results.e2e += run_embedded(plan, reports, tmp, logs)
                results.write(args.json)
            if "distributed" in parts:
                with part(results, "e2e distributed"):
                    results.e2e += run_distributed(plan, reports, f"{prefix}d_", logs)
    finally:
        try:
            dropped = drop_schemas(prefix)
            progress(f"dropped {len(dropped)} PostgreSQL schema(s) {prefix}*")
        except Exception as exc:
            progress(f"could not drop the schemas {prefix}*: {type(exc).__name__}: {exc}")
        results.meta["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        results.write(args.json)
    print(table(results))
    print(f"\nJSON: {args.json}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())

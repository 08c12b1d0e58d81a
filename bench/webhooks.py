"""Webhook delivery throughput and lag, with one endpoint of 50 dead, beside plain HTTP posts (the baseline).

    .venv/bin/python -m bench.webhooks [--endpoints 50] [--events 60] [--rate 150] [--rounds 3]
                                       [--storage postgres|sqlite] [--json PATH]

Receivers: one local threaded HTTP server (tests/support/webhook_receiver.py) with ``--endpoints`` paths, each a
subscription of its own; one of them is dead: it holds every request without answering (worse than refusing the
connection: each attempt costs a sender the whole timeout, ``--timeout`` s).

- **baseline**: the same number of requests to the live endpoints with plain ``httpx`` POSTs from one process, as
  many threads as the deliverer has senders, no queue and no signing;
- **throughput** (``--rounds`` times, alternately with the baseline; medians): ``--events`` integration events,
  each of its own case, committed at once (``WebhookStore.handle``) with the deliverer running (the platform's own,
  in a thread): live deliveries per second, first commit to last receipt; target >= 50 % of the baseline;
- **lag**: events committed at a steady ``--rate`` (deliveries per second over all endpoints), once with the dead
  endpoint and once without it; lag = the receiver's arrival time - the commit of the event's batch. Targets:
  p95 < 2 s, and the dead endpoint adding <= 10 % to the live endpoints' p95.

Events are synthetic (ids and codes only). Prints a table and writes ``bench/results/webhooks.json``.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench._pg import DATABASE_URL, drop_schemas, run_prefix
from bench._results import write_results
from contracts.agencies import Agency
from contracts.events import ReferralRequested, ReferralRequestedData
from contracts.vocabulary import Priority
from huhang.personal import new_data_key
from huhang.settings import Settings
from huhang.storage import read_model_engine
from services.notifications.webhooks_deliverer import Deliverer, DeliveryPolicy
from services.notifications.webhooks_model import Backoff
from services.notifications.webhooks_store import SecretBox, WebhookStore
from tests.support.webhook_receiver import Receiver, Reply, webhook_receiver

DEFAULT_JSON = Path(__file__).parent / "results" / "webhooks.json"
TARGET_RATIO, TARGET_P95_S, TARGET_DEAD_EXTRA = 0.50, 2.0, 0.10
DEAD = "/dead"


def event() -> ReferralRequested:
    event_id, case_id = uuid.uuid4(), uuid.uuid4()
    return ReferralRequested(
        id=event_id, source="/huhang/referral", subject=str(case_id), time=datetime.now(UTC),
        dataschema=ReferralRequested.schema_uri(), correlationid=event_id, actoragency=Agency.civil_affairs,
        data=ReferralRequestedData(
            referral_id=uuid.uuid4(), case_id=case_id, child_id=uuid.uuid4(), owner_agency=Agency.police,
            requester_agency=Agency.civil_affairs, referral_type="guardianship_intervention",
            priority=Priority.urgent, due_at=datetime.now(UTC), plan_tasks=(4,), rule_id="bench",
            rules_version="bench", source_event_id=uuid.uuid4(), township="虹桥镇", village="溪西村",
        ),
    )


@dataclass
class Arm:
    store: WebhookStore
    deliverer: Deliverer
    live_paths: list[str]


@contextmanager
def arm(args: argparse.Namespace, receiver: Receiver, prefix: str, name: str, dead: bool) -> Iterator[Arm]:
    """A fresh store with ``--endpoints`` subscriptions (one dead, when asked) and a running deliverer."""
    with tempfile.TemporaryDirectory() as folder:
        if args.storage == "postgres":
            settings = Settings(storage="postgres", database_url=DATABASE_URL, schema_prefix=f"{prefix}{name}_")
        else:
            settings = Settings(storage="sqlite", data_dir=Path(folder))
        engine = read_model_engine(settings, "notifications")
        store = WebhookStore(engine, SecretBox(base64.b64decode(new_data_key())))
        live = [f"/{name}/{i}" for i in range(args.endpoints - (1 if dead else 0))]
        for path in live + ([f"{DEAD}/{name}"] if dead else []):
            store.create(Agency.police, receiver.url(path), [], None, None, datetime.now(UTC))
        policy = DeliveryPolicy(backoff=Backoff(base_s=1.0, factor=2.0, cap_s=10.0, max_attempts=8),
                                timeout_s=args.timeout, senders=args.senders, poll_interval_s=0.05)
        deliverer = Deliverer(store, policy)
        stop = threading.Event()
        thread = threading.Thread(target=deliverer.run, args=(stop,), name=f"bench-{name}", daemon=True)
        thread.start()
        try:
            yield Arm(store, deliverer, live)
        finally:
            stop.set()
            store.wake.set()
            thread.join(args.timeout + 10)
            engine.dispose()


def baseline(args: argparse.Namespace, receiver: Receiver, requests: int) -> float:
    """Plain posts to the live endpoints from ``--senders`` threads: requests per second."""
    body = event().model_dump_json().encode()
    paths = [f"/baseline/{i % (args.endpoints - 1)}" for i in range(requests)]
    with httpx.Client(timeout=args.timeout, limits=httpx.Limits(max_connections=args.senders * 2)) as client, \
            ThreadPoolExecutor(args.senders) as pool:
        started = time.perf_counter()
        list(pool.map(lambda p: client.post(receiver.url(p), content=body,
                                            headers={"content-type": "application/json"}).status_code, paths))
        return requests / (time.perf_counter() - started)


def arrivals(receiver: Receiver, paths: list[str]) -> dict[str, float]:
    """webhook-id and path -> first arrival time, for the live endpoints."""
    wanted = set(paths)
    first: dict[str, float] = {}
    for r in list(receiver.received):
        if r.path in wanted:
            first.setdefault(f"{r.path}#{r.headers.get('webhook-id')}", r.at)
    return first


def throughput(args: argparse.Namespace, receiver: Receiver, prefix: str, name: str) -> float:
    with arm(args, receiver, prefix, name, dead=True) as a:
        events = [event() for _ in range(args.events)]
        expected = len(events) * len(a.live_paths)
        started = time.time()
        a.store.handle(events)
        deadline = time.monotonic() + 300
        while len(arrivals(receiver, a.live_paths)) < expected and time.monotonic() < deadline:
            time.sleep(0.25)  # arrival times are the receiver's: checking seldom spares the CPU, not the precision
        got = arrivals(receiver, a.live_paths)
        if len(got) < expected:
            raise RuntimeError(f"only {len(got)} of {expected} deliveries arrived")
        return expected / (max(got.values()) - started)


def lag(args: argparse.Namespace, receiver: Receiver, prefix: str, name: str, dead: bool) -> dict[str, float]:
    """Events committed in small batches at ``--rate`` deliveries/s; lag per live delivery."""
    with arm(args, receiver, prefix, name, dead) as a:
        per_batch = 2
        interval = per_batch * args.endpoints / args.rate
        committed: dict[str, float] = {}
        for _ in range(max(1, args.events // per_batch)):
            batch = [event() for _ in range(per_batch)]
            a.store.handle(batch)
            now = time.time()
            committed.update({str(e.id): now for e in batch})
            time.sleep(interval)
        expected = len(committed) * len(a.live_paths)
        deadline = time.monotonic() + 120
        while len(arrivals(receiver, a.live_paths)) < expected and time.monotonic() < deadline:
            time.sleep(0.25)
        lags = sorted(at - committed[key.split("#", 1)[1]] for key, at in arrivals(receiver, a.live_paths).items())
        if len(lags) < expected:
            raise RuntimeError(f"only {len(lags)} of {expected} deliveries arrived")
        return {"p50_s": statistics.median(lags), "p95_s": lags[int(0.95 * (len(lags) - 1))], "max_s": lags[-1],
                "deliveries": len(lags)}


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--events", type=int, default=60)
    parser.add_argument("--rate", type=float, default=150.0, help="deliveries per second in the lag runs")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="baseline and throughput runs, alternately")
    parser.add_argument("--timeout", type=float, default=2.0, help="the deliverer's request timeout (s)")
    parser.add_argument("--storage", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    prefix = run_prefix("webhooks")
    try:
        with webhook_receiver() as receiver:
            receiver.script(DEAD, default=Reply(204, delay_s=3600))
            names = [f"burst{i}" for i in range(args.rounds)] + ["with_dead", "without_dead"]
            for name in names:
                receiver.script(f"{DEAD}/{name}", default=Reply(204, delay_s=3600))
            bases, rates = [], []
            for i in range(args.rounds):  # alternately: this machine is noisy
                bases.append(baseline(args, receiver, args.events * (args.endpoints - 1)))
                rates.append(throughput(args, receiver, prefix, f"burst{i}"))
                progress(f"round {i + 1}: baseline {bases[-1]:,.0f}/s, webhooks {rates[-1]:,.0f}/s")
            base, rate = statistics.median(bases), statistics.median(rates)
            with_dead = lag(args, receiver, prefix, "with_dead", dead=True)
            without_dead = lag(args, receiver, prefix, "without_dead", dead=False)
    finally:
        if args.storage == "postgres":
            drop_schemas(prefix)
    extra = with_dead["p95_s"] / without_dead["p95_s"] - 1 if without_dead["p95_s"] else 0.0
    results: dict[str, Any] = {
        "endpoints": args.endpoints, "dead_endpoints": 1, "events": args.events, "storage": args.storage,
        "senders": args.senders, "timeout_s": args.timeout, "lag_rate_per_s": args.rate,
        "rounds": args.rounds, "baseline_rounds": [round(b, 1) for b in bases],
        "webhook_rounds": [round(r, 1) for r in rates], "baseline_posts_per_s": round(base, 1),
        "webhook_deliveries_per_s": round(rate, 1),
        "ratio": round(rate / base, 3),
        "lag_with_dead": {k: round(v, 4) for k, v in with_dead.items()},
        "lag_without_dead": {k: round(v, 4) for k, v in without_dead.items()},
        "dead_endpoint_extra_p95": round(extra, 3),
        "targets": {"ratio": TARGET_RATIO, "p95_s": TARGET_P95_S, "dead_extra": TARGET_DEAD_EXTRA},
    }
    met = {
        "ratio": rate / base >= TARGET_RATIO, "p95": with_dead["p95_s"] < TARGET_P95_S,
        "dead_extra": extra <= TARGET_DEAD_EXTRA,
    }
    results["met"] = met
    rows = [
        ("baseline: plain httpx posts/s", f"{base:,.0f}", ""),
        ("webhook deliveries/s (1 of 50 dead)", f"{rate:,.0f}", f"{rate / base:.0%} of baseline (>= 50%)"),
        ("lag p50 / p95 with the dead endpoint", f"{with_dead['p50_s']:.3f} / {with_dead['p95_s']:.3f} s",
         "p95 < 2 s"),
        ("lag p50 / p95 without it", f"{without_dead['p50_s']:.3f} / {without_dead['p95_s']:.3f} s", ""),
        ("the dead endpoint's effect on p95", f"{extra:+.1%}", "<= +10%"),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value, target in rows:
        print(f"{label:<{width}}  {value:>18}  {target}")
    print("targets met:", ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in met.items()))
    write_results(args.json, "webhooks", __doc__ or "", results, ["httpx", "sqlalchemy", "psycopg"])
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reconstruction benchmark: a case as of any moment, with and without snapshots, beside reading its rows raw.

    .venv/bin/python -m bench.reconstruction [--events 1000] [--moments 300] [--other-cases 20]
                                             [--stores sqlite,postgres] [--json PATH]

For each store, SQLite (a temporary data folder) and PostgreSQL (a unique schema prefix on
postgresql://postgres@127.0.0.1:5432/test, dropped at the end):

1. feed intake's case timeline, through its real handler (``CaseTimeline.handle``, batches of 50, snapshots made as
   events arrive; the same events again to a timeline without the snapshot hook: the cost of making them), one
   synthetic case of ``--events`` integration events from intake, referral and guardianship
   (``tests.unit.test_case_history.synthetic_case_events``: ids, codes and Faker zh_CN place names only), among
   ``--other-cases`` cases of 100 events each;
2. for ``--moments`` random moments between the case's first and last event, back to back in a rotating order:
   - the baseline: the case's timeline rows up to the moment, read raw (one SELECT, every column, rows fetched);
   - the reconstruction with snapshots (``CaseHistoryStore.history``): the case file and the list of events;
   - the reconstruction without snapshots (folding every event from the first);
   and checks that the two reconstructions are equal at every moment.

Latency p50/p95/p99 of each. Target: reconstruction p99 < 50 ms. Prints a table and writes
``bench/results/reconstruction.json``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench._pg import DATABASE_URL, drop_schemas
from bench._results import write_results
from huhang.settings import Settings
from services.intake.main import IntakeService, build
from services.intake.timeline import timeline_table
from tests.unit.test_case_history import synthetic_case_events

RESULTS_DIR = Path(__file__).parent / "results"
DEFAULT_JSON = RESULTS_DIR / "reconstruction.json"
TARGET_P99_MS = 50.0
FEED_BATCH = 50
_T0 = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


@contextmanager
def store(kind: str, tmp: Path, prefix: str) -> Iterator[IntakeService]:
    if kind == "sqlite":
        settings = Settings(storage="sqlite", data_dir=tmp / "sqlite")
    else:
        settings = Settings(storage="postgres", database_url=DATABASE_URL, schema_prefix=prefix,
                            data_dir=tmp / "postgres")
    service = build(settings)
    try:
        yield service
    finally:
        service.application.close()
        service.positions.engine.dispose()


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49], 2), "p95_ms": round(cuts[94], 2), "p99_ms": round(cuts[98], 2),
            "max_ms": round(ms[-1], 2)}


def bench_store(kind: str, events: int, moments: int, other_cases: int, tmp: Path, prefix: str) -> dict[str, Any]:
    with store(kind, tmp, prefix) as service:
        timeline = service.timeline
        start = datetime(2026, 1, 5, tzinfo=UTC)
        case = synthetic_case_events(events, seed=2026, start=start)
        others = [synthetic_case_events(100, seed=i, start=start + timedelta(hours=i)) for i in range(other_cases)]
        # Interleaved as a consumer would deliver them: the case's events among the others', in batches.
        stream = sorted([*case, *(e for o in others for e in o)], key=lambda e: e.time)
        progress(f"{kind}: feeding {len(stream)} events ({events} of the case) through the timeline handler")
        fed = time.perf_counter()
        for i in range(0, len(stream), FEED_BATCH):
            timeline.handle(stream[i:i + FEED_BATCH])
        feed_s = time.perf_counter() - fed

        case_id = str(case[0].subject)
        history = timeline.history
        first, last = case[0].time, case[-1].time
        rng = random.Random(7)
        points = [first + (last - first) * rng.random() for _ in range(moments)]
        t = timeline_table.c

        def raw(moment: datetime) -> int:
            with timeline.engine.connect() as conn:
                return len(conn.execute(
                    select(timeline_table).where(t.case_id == case_id, t.time <= moment).order_by(t.time, t.event_id)
                ).all())

        def with_snapshots(moment: datetime) -> Any:
            return history.history(case_id, moment)

        def without_snapshots(moment: datetime) -> Any:
            return history.history(case_id, moment, use_snapshots=False)

        runs: dict[str, Callable[[datetime], Any]] = {
            "raw_rows": raw, "with_snapshots": with_snapshots, "without_snapshots": without_snapshots,
        }
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for moment in points[:10]:  # warm the connection pools and caches
            for run in runs.values():
                run(moment)
        progress(f"{kind}: {moments} moments, three reads each")
        order = list(runs)
        for i, moment in enumerate(points):
            results: dict[str, Any] = {}
            for name in order[i % 3:] + order[:i % 3]:
                began = time.perf_counter()
                results[name] = runs[name](moment)
                samples[name].append(time.perf_counter() - began)
            assert results["with_snapshots"] == results["without_snapshots"], moment
            assert results["with_snapshots"].case["event_count"] == results["raw_rows"], moment
    progress(f"{kind}: feeding the same events to a timeline without its snapshot hook (the ingest baseline)")
    with store(kind, tmp / "plain", f"{prefix}plain_") as plain:
        setattr(plain.timeline.history, "after_insert", lambda case_ids: None)  # noqa: B010 - the baseline only
        fed = time.perf_counter()
        for i in range(0, len(stream), FEED_BATCH):
            plain.timeline.handle(stream[i:i + FEED_BATCH])
        plain_feed_s = time.perf_counter() - fed
    figures = {name: percentiles(s) for name, s in samples.items()}
    p99 = figures["with_snapshots"]["p99_ms"]
    return {
        "store": kind, "case_events": events, "other_cases": other_cases, "moments": moments,
        "feed_events_per_s": round(len(stream) / feed_s),
        "feed_events_per_s_without_snapshots": round(len(stream) / plain_feed_s), **figures,
        "target_p99_ms": TARGET_P99_MS, "meets_target": p99 < TARGET_P99_MS,
        "snapshots_equal_to_full_fold": True,
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'store':<9} {'read':<18} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}"]
    for r in results:
        for name in ("raw_rows", "without_snapshots", "with_snapshots"):
            f = r[name]
            mark = ""
            if name == "with_snapshots":
                mark = f"  target p99 < {r['target_p99_ms']:.0f} ms {'met' if r['meets_target'] else 'NOT met'}"
            lines.append(f"{r['store']:<9} {name:<18} {f['p50_ms']:>7.2f} {f['p95_ms']:>7.2f} {f['p99_ms']:>7.2f} "
                         f"{f['max_ms']:>7.2f}{mark}")
        lines.append(f"{r['store']:<9} timeline handler: {r['feed_events_per_s']} events/s with the snapshot hook, "
                     f"{r['feed_events_per_s_without_snapshots']} without")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reconstruction", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="events of the reconstructed case")
    parser.add_argument("--moments", type=int, default=300, help="random as_of moments")
    parser.add_argument("--other-cases", type=int, default=20, help="other cases of 100 events in the timeline")
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    prefix = f"bench_recon_{uuid.uuid4().hex[:8]}_"
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="huhang-bench-reconstruction-") as tmp:
            for kind in args.stores.split(","):
                results.append(bench_store(kind, args.events, args.moments, args.other_cases, Path(tmp), prefix))
    finally:
        if "postgres" in args.stores:
            dropped = drop_schemas(prefix)
            progress(f"dropped PostgreSQL schemas {', '.join(dropped) or '(none)'}")
    write_results(
        args.json, "reconstruction",
        "per random as_of, back to back in rotating order: raw timeline rows up to as_of (baseline), "
        "reconstruction without snapshots, reconstruction with snapshots; latency percentiles of each",
        results, ("sqlalchemy", "psycopg"),
    )
    print(table(results))
    progress(f"wrote {args.json}")
    return 0 if all(r["meets_target"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

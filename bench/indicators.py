"""Indicators at county scale: the inbox log read raw, the full rebuild of every read model from it, and queries.

    .venv/bin/python -m bench.indicators [--children 100000] [--events 5000000] [--storage postgres|sqlite]
                                         [--quick] [--json PATH] [--seed 8]

A synthetic county (20 townships x 15 villages, ids, codes and dates only) is written straight into the inbox log
in bulk (PostgreSQL ``COPY``, SQLite ``executemany``: about a minute per million events on a busy 2-core machine):
it is the log a rebuild reads. Then, in the same run and on the same store:

- **raw read**: the log read in the rebuild's order and decoded (JSON), nothing projected: events/s;
- **rebuild**: every read model emptied and rebuilt from the log (``IndicatorStore.rebuild``): events/s, and its
  ratio to the raw read (target >= 0.30);
- **queries** (after the rebuild, as of the log's last day: the present): one indicator per township, each
  indicator of the catalogue alone per township (the p99 of all of them, and the slowest), every indicator at once
  per township (``values(None, "township")``: a dashboard's one request), a 12-month trend of one township, and
  every indicator as of one year back (targets: p99 < 100 ms for the indicator queries, < 2 s as of one year back).

``--quick``: 2,000 children and 100,000 events. PostgreSQL is the main figure (the distributed form's store);
SQLite is the embedded one. Writes ``bench/results/indicators.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from bench._pg import DATABASE_URL, drop_schemas, run_prefix
from bench._results import write_results
from huhang.settings import Settings
from huhang.storage import read_model_engine
from services.indicators import tables as t
from services.indicators.migrate import migrate
from services.indicators.queries import SqlIndicatorQueries
from services.indicators.store import IndicatorStore

RESULTS = Path(__file__).parent / "results" / "indicators.json"
TOWNSHIPS = [f"镇{i:02d}" for i in range(20)]
VILLAGES = [f"村{i:02d}" for i in range(15)]
START = datetime(2024, 7, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)
COPY_CHUNK = 200_000
KINDS = (  # what the log is made of, by share of the events after registration
    ("contact", 0.33), ("home_visit", 0.12), ("parent", 0.30), ("risk", 0.05), ("requested", 0.04),
    ("status", 0.08), ("dropout", 0.01), ("return", 0.01), ("intervention", 0.02), ("file", 0.04),
)
STATUS_NEXT = {"requested": "received", "received": "accepted", "accepted": "in-progress",
               "in-progress": "completed"}


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def synthetic_log(children: int, events: int, seed: int) -> Iterator[dict[str, Any]]:
    """The county's integration events in time order, as the inbox keeps them (JSON envelopes)."""
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(children)]
    place = {c: (rng.choice(TOWNSHIPS), rng.choice(VILLAGES)) for c in ids}
    away = {c: rng.random() < 0.6 for c in ids}
    span = (END - START).total_seconds()
    open_referrals: list[list[str]] = []
    out_of_school: set[str] = set()
    kinds, weights = zip(*KINDS, strict=True)
    directors = [(f"d-{tw}-{v}-{n}", tw, v) for tw in TOWNSHIPS for v in VILLAGES for n in range(rng.choice((1, 2)))]

    def envelope(i: int, etype: str, data: dict[str, Any]) -> dict[str, Any]:
        when = START + timedelta(seconds=span * i / events)
        return {"id": str(uuid.UUID(int=rng.getrandbits(128))), "type": f"cn.huhang.{etype}",
                "time": when.isoformat(), "source": "/huhang/bench", "data": data}

    def file(i: int, c: str) -> dict[str, Any]:
        tw, v = place[c]
        cats = ["left_behind"] if away[c] else [rng.choice(("single_parent", "disabled", "difficulty_medical"))]
        return envelope(i, "child.file-updated.v1", {
            "child_id": c, "township": tw, "village": v, "categories": cats, "parents_away": away[c],
            "frequent_visit_reasons": ["child_disability"] if "disabled" in cats else []})

    i = 0
    for c in ids:
        yield file(i, c)
        i += 1
    for d, tw, v in directors:
        yield envelope(i, "guardianship.child-director-assigned.v1", {"director_id": d, "township": tw, "village": v})
        i += 1
    while i < events:
        kind = rng.choices(kinds, weights)[0]
        c = rng.choice(ids)
        tw, v = place[c]
        day = (START + timedelta(seconds=span * i / events)).date().isoformat()
        if kind in ("contact", "home_visit"):
            e = envelope(i, "guardianship.visit-recorded.v1", {
                "visit_id": str(uuid.uuid4()), "child_id": c, "kind": kind, "visited_on": day})
        elif kind == "parent":
            e = envelope(i, "guardianship.parent-contact-recorded.v1", {
                "contact_id": str(uuid.uuid4()), "child_id": c, "contacted_on": day})
        elif kind == "risk":
            e = envelope(i, "guardianship.risk-assessed.v1", {
                "child_id": c, "colour": rng.choices(("green", "yellow", "red"), (0.8, 0.15, 0.05))[0],
                "township": tw, "village": v})
        elif kind == "requested":
            r = str(uuid.uuid4())
            at = START + timedelta(seconds=span * i / events)
            open_referrals.append([r, "requested", rng.choice(("police", "education", "civil_affairs"))])
            e = envelope(i, "referral.requested.v1", {
                "referral_id": r, "owner_agency": open_referrals[-1][2],
                "referral_type": rng.choice(("guardianship_check", "dropout_return", "relief")),
                "priority": rng.choice(("routine", "urgent")), "township": tw, "village": v,
                "due_at": (at + timedelta(days=1)).isoformat(), "complete_by": (at + timedelta(days=30)).isoformat()})
        elif kind == "status" and open_referrals:
            slot = rng.randrange(len(open_referrals))
            ref = open_referrals[slot]
            ref[1] = STATUS_NEXT[ref[1]]
            e = envelope(i, "referral.status-changed.v1", {"referral_id": ref[0], "owner_agency": ref[2],
                                                          "status": ref[1]})
            if ref[1] == "completed":
                open_referrals[slot] = open_referrals[-1]
                open_referrals.pop()
        elif kind == "dropout" or (kind == "return" and c not in out_of_school):
            out_of_school.add(c)
            e = envelope(i, "education.school-dropout-reported.v1", {"child_id": c, "township": tw, "village": v})
        elif kind == "return":
            out_of_school.discard(c)
            e = envelope(i, "education.school-return-reported.v1", {"child_id": c, "township": tw, "village": v})
        elif kind == "intervention":
            e = envelope(i, "guardianship.intervention-recorded.v1", {
                "intervention_id": str(uuid.uuid4()), "child_id": c, "kind": "admonition", "agency": "village",
                "township": tw, "village": v})
        else:
            away[c] = not away[c] if rng.random() < 0.2 else away[c]
            e = file(i, c)
        yield e
        i += 1


def write_log(store: IndicatorStore, children: int, events: int, seed: int) -> float:
    """The synthetic log straight into the inbox, in chunks (no projection); answers the seconds taken.

    PostgreSQL: ``COPY ... FROM STDIN`` (one stream, a commit per chunk of 200,000); SQLite: the driver's
    ``executemany`` in chunks. Millions of events are then minutes of generation, not hours of statements.
    """
    began = time.perf_counter()
    raw = store.engine.raw_connection()
    try:
        postgres = store.engine.dialect.name == "postgresql"
        sqlite_insert = f"INSERT INTO {t.inbox.name} (event_id, type, time, payload) VALUES (?, ?, ?, ?)"
        rows: list[tuple[str, str, Any, str]] = []
        written = 0

        def flush() -> None:
            cursor = raw.cursor()
            if postgres:
                with cursor.copy(
                    f"COPY {t.inbox.name} (event_id, type, time, payload) FROM STDIN"
                ) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(sqlite_insert, rows)
            raw.commit()

        for e in synthetic_log(children, events, seed):
            moment = datetime.fromisoformat(e["time"])
            rows.append((e["id"], e["type"],
                         moment if postgres else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
                         json.dumps(e, ensure_ascii=False, separators=(",", ":"))))
            if len(rows) == COPY_CHUNK:
                flush()
                written += len(rows)
                rows = []
                progress(f"  log: {written:,} events ({time.perf_counter() - began:.0f} s)")
        if rows:
            flush()
    finally:
        raw.close()
    return time.perf_counter() - began


def summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
            "max_ms": round(ordered[-1], 2)}


def timed(call: Callable[[], Any], repeat: int, keep: bool = False) -> dict[str, Any]:
    """Milliseconds per call: n, p50, p99, max (and the samples themselves with ``keep``)."""
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return {**summary(samples), **({"samples": samples} if keep else {})}


def each_indicator(queries: SqlIndicatorQueries, at: datetime, repeat: int) -> dict[str, Any]:
    """Every indicator of the catalogue asked alone for every township, ``repeat`` times each: the p99 of all
    those queries together, and the indicator with the slowest p99."""
    samples: list[float] = []
    worst = ("", 0.0)
    for indicator in queries.catalogue():
        one = timed(partial(queries.values, indicator.code, "township", None, at), repeat, keep=True)
        samples.extend(one.pop("samples"))
        if one["p99_ms"] > worst[1]:
            worst = (indicator.code, one["p99_ms"])
    return {**summary(samples), "slowest_indicator": worst[0], "slowest_p99_ms": worst[1]}


def run(settings: Settings, children: int, events: int, seed: int, repeat: int) -> dict[str, Any]:
    started = time.perf_counter()
    engine = read_model_engine(settings, "indicators")
    migrate(engine)
    store = IndicatorStore(engine)
    progress(f"writing the log: {children:,} children, {events:,} events")
    write_s = write_log(store, children, events, seed)
    size = store.replay_size()
    progress("raw read of the log")
    began = time.perf_counter()
    read = sum(len(batch) for batch in store.read_log())
    raw_s = time.perf_counter() - began
    progress("rebuild of every read model")
    began = time.perf_counter()
    rebuilt = store.rebuild()
    rebuild_s = time.perf_counter() - began
    queries = SqlIndicatorQueries(engine)
    now, year_ago = END, END - timedelta(days=365)
    progress("queries")
    figures = {
        "values_one_indicator_per_township": timed(
            lambda: queries.values("visit_compliance", "township", None, now), repeat),
        "values_each_indicator_per_township": each_indicator(queries, now, max(5, repeat // 5)),
        "values_all_indicators_per_township": timed(lambda: queries.values(None, "township", None, now),
                                                    max(3, repeat // 10)),
        "trend_12_months_one_township": timed(
            lambda: queries.trend("visit_compliance", "township", TOWNSHIPS[0], 12, now), max(3, repeat // 10)),
        "as_of_one_year_back_all_indicators": timed(lambda: queries.values(None, "township", None, year_ago),
                                                    max(3, repeat // 10)),
    }
    engine.dispose()
    return {"total_s": round(time.perf_counter() - started, 1),
        "storage": settings.storage, "children": children, "events": size, "log_write_s": round(write_s, 1),
        "raw_read": {"events": read, "seconds": round(raw_s, 2), "events_per_s": round(read / raw_s)},
        "rebuild": {"events": rebuilt, "seconds": round(rebuild_s, 2), "events_per_s": round(rebuilt / rebuild_s),
                    "ratio_to_raw_read": round((rebuilt / rebuild_s) / (read / raw_s), 3), "target_ratio": 0.30},
        "queries": figures, "targets": {"query_p99_ms": 100, "as_of_one_year_back_ms": 2000},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.indicators", description=__doc__.split("\n\n")[0])
    p.add_argument("--children", type=int, default=100_000)
    p.add_argument("--events", type=int, default=5_000_000)
    p.add_argument("--storage", choices=("postgres", "sqlite"), default="postgres")
    p.add_argument("--quick", action="store_true", help="2,000 children, 100,000 events")
    p.add_argument("--repeat", type=int, default=50, help="query repetitions (p99 of these)")
    p.add_argument("--json", type=Path, default=RESULTS)
    p.add_argument("--seed", type=int, default=8)
    args = p.parse_args(argv)
    if args.quick:
        args.children, args.events = 2_000, 100_000
    with tempfile.TemporaryDirectory(prefix="huhang-bench-indicators-") as tmp:
        if args.storage == "sqlite":
            settings = Settings(storage="sqlite", data_dir=Path(tmp))
            prefix = None
        else:
            prefix = run_prefix("indicators")
            settings = Settings(storage="postgres", database_url=DATABASE_URL, schema_prefix=prefix)
        try:
            results = run(settings, args.children, args.events, args.seed, args.repeat)
        finally:
            if prefix is not None:
                drop_schemas(prefix)
    print(json.dumps(results, indent=2, ensure_ascii=False))
    write_results(args.json, "indicators", "synthetic inbox log written in bulk; raw read, full rebuild and "
                  "queries measured in the same run on the same store", results,
                  ("sqlalchemy", "psycopg", "alembic"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

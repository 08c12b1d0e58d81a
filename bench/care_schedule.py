"""Next-due benchmark: the visit regime's next contact and home visit for 100,000 children, and the scheduled care
check over 100,000 known children.

    .venv/bin/python -m bench.care_schedule [--children 100000] [--storage sqlite,postgres] [--json PATH] [--seed 11]

1. ``next_due`` (``services.guardianship.visits``), the pure rule, over synthetic children (last contact, last home
   visit, registration day, frequent regime or not): children/s. Beside it, the same loop over the same inputs
   without the call (what the loop itself costs).
2. ``CareApplication.check(today)``, the scheduled check (``services.guardianship.care_application``), on SQLite (a
   temporary folder) and on PostgreSQL (a unique schema prefix on the test database, dropped at the end):
   - the children: ``ChildFileUpdated`` events through guardianship's own projection (``KnownChildren.handle``);
     registered over the past 18 months, 95% covered, 60% with parents away, 10% on the frequent regime;
   - their care as the check reads it, written straight into its read model (``care_status``,
     ``care_agreements``): 93% of the children contacted within the last 31 days and most visited at home within
     their regime, 7% never; of the children whose parents are away, 90% heard from a parent within the week, 5%
     one to two weeks ago, 5% never, and 85% with a signed agreement in force, 7% expired, 8% none. (The
     projection from visit events into that read model is not what this measures.)
   - timed, one after another: the baseline (reading the same rows into the same objects, nothing computed or
     saved), the routine run (``check(today)`` on this data: everything overdue is raised and saved as notices),
     the same day again (nothing new: idempotent), the next-day run (``check(today + 1)``: what fell due
     overnight), and the baseline again. Time, children/s, notices raised, and the ratio of each run's rate to
     the baseline's (the mean of the two baseline runs).

Prints a table and writes ``bench/results/care_schedule.json``. All data is synthetic (ids and dates only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, text

from bench._pg import DATABASE_URL, drop_schemas
from contracts.agencies import Agency
from contracts.cases import care_case_id
from contracts.events import ChildFileUpdated, ChildFileUpdatedData
from contracts.vocabulary import ChildCategory
from huhang.settings import Settings
from services.guardianship.care_application import CheckResult
from services.guardianship.care_status import CareStatus, care_agreements_table, care_status_table
from services.guardianship.children import CHINA_STANDARD_TIME
from services.guardianship.main import GuardianshipService, build
from services.guardianship.visits import VisitPolicy, next_due

RESULTS_DIR = Path(__file__).parent / "results"
DEFAULT_JSON = RESULTS_DIR / "care_schedule.json"
TOWNSHIPS = ("虹桥镇", "柳市镇", "北白象镇", "大荆镇", "清江镇", "芙蓉镇", "雁荡镇", "淡溪镇")
FREQUENT_REASONS = ("child_disability", "child_psychological_abnormality", "guardian_serious_disability")
WRITE_CHUNK = 5000
_T0 = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ synthetic children


@dataclass(frozen=True)
class SyntheticChild:
    child_id: uuid.UUID
    township: str
    village: str
    covered: bool
    registered_on: date
    parents_away_since: date | None  # None: parents not away
    frequent_reasons: tuple[str, ...]
    risk_level: str | None
    last_contact_on: date | None
    last_home_visit_on: date | None
    last_parent_contact_on: date | None
    agreement: tuple[date, date | None] | None  # (start, end) of a signed agreement, if any


def synthetic_children(count: int, today: date, seed: int) -> Iterator[SyntheticChild]:
    """A county's children as the check sees them, most of them looked after as the plan asks, some not."""
    rng = random.Random(seed)
    for _ in range(count):
        registered_on = today - timedelta(days=rng.randint(1, 540))
        away = rng.random() < 0.6
        frequent = tuple(sorted(rng.sample(FREQUENT_REASONS, rng.randint(1, 2)))) if rng.random() < 0.1 else ()
        risk = rng.choice(("medium", "high")) if rng.random() < 0.05 else ("low" if rng.random() < 0.2 else None)
        cared_for = rng.random() < 0.93
        contact = today - timedelta(days=rng.randint(0, 31)) if cared_for else None
        home_window = 31 if frequent or risk in ("medium", "high") else 92
        home = today - timedelta(days=rng.randint(0, home_window)) if cared_for and rng.random() < 0.95 else None
        parent_contact = agreement = None
        if away:
            draw = rng.random()
            if draw < 0.95:  # within the week, or a week or two late
                parent_contact = today - timedelta(days=rng.randint(0, 7) if draw < 0.9 else rng.randint(8, 20))
            draw = rng.random()
            if draw < 0.85:
                agreement = (registered_on - timedelta(days=rng.randint(0, 200)), None if draw < 0.5 else
                             today + timedelta(days=rng.randint(1, 365)))
            elif draw < 0.92:  # expired
                agreement = (registered_on - timedelta(days=400), today - timedelta(days=rng.randint(1, 60)))
        yield SyntheticChild(
            child_id=uuid.UUID(int=rng.getrandbits(128), version=4), township=rng.choice(TOWNSHIPS),
            village=f"第{rng.randint(1, 40)}村", covered=rng.random() < 0.95, registered_on=registered_on,
            parents_away_since=registered_on - timedelta(days=rng.randint(0, 400)) if away else None,
            frequent_reasons=frequent, risk_level=risk, last_contact_on=contact, last_home_visit_on=home,
            last_parent_contact_on=parent_contact, agreement=agreement,
        )


# ------------------------------------------------------------------------------------------------- 1. next_due


def bench_next_due(children: Sequence[SyntheticChild]) -> dict[str, Any]:
    policy = VisitPolicy()
    inputs = [(c.last_contact_on, c.last_home_visit_on, c.registered_on, bool(c.frequent_reasons)) for c in children]
    runs, loops = [], []
    for _ in range(3):
        started = time.perf_counter()
        for last_contact, last_home, registered_on, frequent in inputs:
            next_due(last_contact, last_home, registered_on, frequent, policy)
        runs.append(time.perf_counter() - started)
        started = time.perf_counter()
        for last_contact, last_home, registered_on, frequent in inputs:  # noqa: B007 - the loop alone
            pass
        loops.append(time.perf_counter() - started)
    best, loop = min(runs), min(loops)
    return {
        "children": len(inputs), "seconds": round(best, 3), "children_per_s": round(len(inputs) / best),
        "us_per_child": round(best / len(inputs) * 1e6, 2), "loop_alone_seconds": round(loop, 4),
        "runs_seconds": [round(r, 3) for r in runs],
    }


# ------------------------------------------------------------------------------------------------ 2. the check


def at_noon(day: date) -> datetime:
    return datetime.combine(day, clock_time(12), tzinfo=CHINA_STANDARD_TIME)


def file_event(child: SyntheticChild) -> ChildFileUpdated:
    categories: tuple[ChildCategory, ...] = ()
    if child.covered:
        categories = (ChildCategory.left_behind,) if child.parents_away_since else (ChildCategory.single_parent,)
    event_id = uuid.uuid4()
    return ChildFileUpdated(
        id=event_id, source="/huhang/intake", subject=str(care_case_id(child.child_id)),
        time=at_noon(child.registered_on), dataschema=ChildFileUpdated.schema_uri(), correlationid=event_id,
        actoragency=Agency.civil_affairs,
        data=ChildFileUpdatedData(
            child_id=child.child_id, case_id=care_case_id(child.child_id), township=child.township,
            village=child.village, categories=categories, added_categories=categories, removed_categories=(),
            category_reasons=(), parents_away=child.parents_away_since is not None,
            parents_away_since=child.parents_away_since, frequent_visit_reasons=child.frequent_reasons,
            has_entrusted_caregiver=child.agreement is not None,
        ),
    )


def care_rows(child: SyntheticChild) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    status = None
    if child.last_contact_on or child.last_parent_contact_on or child.risk_level:
        status = {
            "child_id": str(child.child_id), "last_contact_on": child.last_contact_on,
            "last_home_visit_on": child.last_home_visit_on, "last_parent_contact_on": child.last_parent_contact_on,
            "risk_level": child.risk_level, "risk_position": 1 if child.risk_level else None,
            "raised_contact_due_on": None, "raised_home_visit_due_on": None, "raised_parent_contact": None,
            "raised_entrusted_care": None,
        }
    agreement = None
    if child.agreement is not None:
        start, end = child.agreement
        agreement = {"agreement_id": str(uuid.uuid5(child.child_id, "agreement")), "child_id": str(child.child_id),
                     "start_on": start, "end_on": end, "signed": True}
    return status, agreement


def load(service: GuardianshipService, children: Sequence[SyntheticChild]) -> dict[str, Any]:
    started = time.perf_counter()
    for start in range(0, len(children), WRITE_CHUNK):
        service.known_children.handle([file_event(c) for c in children[start:start + WRITE_CHUNK]])
    projected = time.perf_counter() - started
    engine: Engine = service.care.status.engine
    statuses, agreements = [], []
    for child in children:
        status, agreement = care_rows(child)
        if status is not None:
            statuses.append(status)
        if agreement is not None:
            agreements.append(agreement)
    with engine.begin() as conn:
        for table, rows in ((care_status_table, statuses), (care_agreements_table, agreements)):
            for start in range(0, len(rows), WRITE_CHUNK):
                conn.execute(insert(table), rows[start:start + WRITE_CHUNK])
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE known_children; ANALYZE care_status; ANALYZE care_agreements"))
    return {"known_children": len(children), "care_status_rows": len(statuses), "agreements": len(agreements),
            "projection_seconds": round(projected, 2), "children_projected_per_s": round(len(children) / projected)}


def read_only(status: CareStatus) -> int:
    """The baseline: the rows the check reads, built into the same objects; nothing computed, nothing saved."""
    status.catch_up()
    status.agreements_of_children_with_parents_away()
    return sum(len(page) for page in status.covered_children())


def timed_baseline(status: CareStatus) -> dict[str, Any]:
    started = time.perf_counter()
    rows = read_only(status)
    seconds = time.perf_counter() - started
    return {"children": rows, "seconds": round(seconds, 3), "children_per_s": round(rows / seconds)}


def timed_check(service: GuardianshipService, day: date) -> dict[str, Any]:
    started = time.perf_counter()
    result: CheckResult = service.care.check(day)
    seconds = time.perf_counter() - started
    return {
        "day": day.isoformat(), "children": result.children_checked, "seconds": round(seconds, 3),
        "children_per_s": round(result.children_checked / seconds), "notices_raised": result.raised,
        "visit_overdue": result.visit_overdue, "parent_contact_missed": result.parent_contact_missed,
        "entrusted_care_flagged": result.entrusted_care_flagged,
    }


def settings_for(storage: str, tmp: Path, prefix: str) -> Settings:
    if storage == "postgres":
        return Settings(storage="postgres", database_url=DATABASE_URL, schema_prefix=prefix)
    return Settings(storage="sqlite", data_dir=tmp / "data")


def bench_check(
    storage: str, children: Sequence[SyntheticChild], today: date, tmp: Path, prefix: str
) -> dict[str, Any]:
    service = build(settings_for(storage, tmp, prefix))
    try:
        progress(f"{storage}: loading {len(children):,} children")
        out: dict[str, Any] = {"setup": load(service, children)}
        status = service.care.status
        progress(f"{storage}: baseline, routine run, same day again, next-day run, baseline")
        read_only(status)  # warm up: the first read of a fresh table pays for the cache
        first = timed_baseline(status)
        out["routine"] = timed_check(service, today)
        out["same_day_again"] = timed_check(service, today)
        out["next_day"] = timed_check(service, today + timedelta(days=1))
        second = timed_baseline(status)
        base_rate = (first["children_per_s"] + second["children_per_s"]) / 2
        out["baseline"] = {"runs": [first, second], "children_per_s": round(base_rate)}
        for run in ("routine", "same_day_again", "next_day"):
            out[run]["ratio_to_baseline"] = round(out[run]["children_per_s"] / base_rate, 3)
        return out
    finally:
        service.application.close()
        service.care.status.engine.dispose()


# ----------------------------------------------------------------------------------------------------- results


def table(results: dict[str, Any]) -> str:
    pure = results["next_due"]
    lines = [
        f"next-due for {results['meta']['children']:,} children ({results['meta']['machine']['cpus']} CPUs, "
        f"today {results['meta']['today']})", "",
        f"next_due (pure)      {pure['seconds']:8.3f} s  {pure['children_per_s']:>12,} children/s  "
        f"({pure['us_per_child']} us each; the loop alone {pure['loop_alone_seconds']} s)",
    ]
    for storage, out in results.get("check", {}).items():
        if "failure" in out:
            lines.append(f"{storage:<10} failed: {out['failure']}")
            continue
        setup = out["setup"]
        lines += [
            "",
            f"{storage}: {setup['known_children']:,} known children ({setup['children_projected_per_s']:,}/s through "
            f"the projection), {setup['care_status_rows']:,} with care recorded, {setup['agreements']:,} agreements",
            f"  baseline (read only)  {out['baseline']['runs'][0]['seconds']:7.2f} s / "
            f"{out['baseline']['runs'][1]['seconds']:.2f} s  {out['baseline']['children_per_s']:>10,} children/s",
        ]
        for run, label in (("routine", "routine run"), ("same_day_again", "same day again"),
                           ("next_day", "next-day run")):
            r = out[run]
            lines.append(
                f"  {label:<21} {r['seconds']:7.2f} s  {r['children_per_s']:>19,} children/s  "
                f"{r['ratio_to_baseline']:.2f} of the baseline; notices raised {r['notices_raised']:,} (visits "
                f"{r['visit_overdue']:,}, parent contact {r['parent_contact_missed']:,}, entrusted care "
                f"{r['entrusted_care_flagged']:,})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.care_schedule", description=__doc__.split("\n\n")[0])
    p.add_argument("--children", type=int, default=100_000)
    p.add_argument("--storage", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args(argv)
    storages = [s.strip() for s in args.storage.split(",") if s.strip()]
    if not set(storages) <= {"sqlite", "postgres"}:
        p.error("--storage takes sqlite and/or postgres")

    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench_{run_id}_"
    today = datetime.now(CHINA_STANDARD_TIME).date()
    results: dict[str, Any] = {"meta": {
        "benchmark": "care_schedule", "run_id": run_id, "children": args.children, "seed": args.seed,
        "today": today.isoformat(), "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "postgres_schema_prefix": prefix if "postgres" in storages else None,
        "policy": {"contact_every_months": 1, "home_visit_every_months": 3, "frequent_home_visit_every_months": 1},
    }}
    children = list(synthetic_children(args.children, today, args.seed))
    progress(f"next_due over {len(children):,} children")
    results["next_due"] = bench_next_due(children)
    results["check"] = {}
    failed = False
    try:
        with tempfile.TemporaryDirectory(prefix="huhang-bench-care-") as tmp_name:
            for storage in storages:
                try:
                    results["check"][storage] = bench_check(storage, children, today, Path(tmp_name), prefix)
                except Exception as exc:
                    failed = True
                    results["check"][storage] = {"failure": f"{type(exc).__name__}: {exc}"}
                    progress(f"{storage}: failed ({type(exc).__name__})")
    finally:
        if "postgres" in storages:
            try:
                progress(f"dropped {len(drop_schemas(prefix))} PostgreSQL schema(s) {prefix}*")
            except Exception as exc:
                progress(f"could not drop the schemas {prefix}*: {type(exc).__name__}")
        results["meta"]["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    print(table(results))
    print(f"\nJSON: {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Survey import benchmark: a synthetic 100,000-child roster with duplicates seeded in, imported as the CLI does.

    .venv/bin/python -m bench.child_import [--rows 100000] [--storage postgres|sqlite] [--json PATH]
                                           [--duplicate-rate 0.05] [--seed 7] [--no-baseline]

1. The roster: ``bench.synthetic_roster.generate_roster`` (as of today, so that every child is under 18) written to
   a temporary CSV without its ground truth, which is kept aside (the person behind each row).
2. The import: ``services.intake.survey.import_roster``, the code path of ``huhang import-survey`` (streaming
   parse, validation, batches of 500 to ``IntakeApplication.register_children`` with its duplicate matching), on
   PostgreSQL (a unique schema prefix on the test database, dropped at the end) or SQLite (a temporary folder).
   Time, rows/s, the process's peak memory (``ru_maxrss``) before and after.
3. The matcher's precision and recall on the seeded duplicates: the probable duplicates flagged (pairs of child
   files) against the ground truth (pairs of files of the same person). Rows refused before matching are
   counted apart: a second row with the same identity-card number in the file (an exact duplicate, caught by
   the import itself) and rows whose own values disagree (e.g. a swapped birth date beside the identity-card
   number that contains the right one).
4. The baseline, in the same run: saving the same aggregates (the Child's Registered, FactsRecorded and
   CategoriesDerived events, in batches of 500) straight to a fresh event store of the same kind, without
   reading, validating, matching or read models (the rows are parsed before the clock starts). The import's
   rate is reported as a ratio to it.

Targets: >= 1,000 rows/s on PostgreSQL, peak memory < 500 MB, precision >= 0.95, recall >= 0.90.
Prints a table and writes ``bench/results/child_import.json``. All data is synthetic; nothing personal is printed.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import platform
import resource
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from bench._pg import DATABASE_URL, drop_schemas
from bench.synthetic_roster import RosterRow, generate_roster, write_csv
from huhang.settings import Settings
from huhang.storage import eventsourcing_env
from services.intake.application import REGISTER_CHUNK, IntakeApplication
from services.intake.categories import derive_categories
from services.intake.domain import Child
from services.intake.main import build
from services.intake.survey import (
    BATCH_ROWS,
    ImportedRow,
    SurveyRow,
    find_header,
    import_gc_settings,
    import_roster,
    parse_row,
    read_rows,
    scan,
    survey_source,
)

RESULTS_DIR = Path(__file__).parent / "results"
DEFAULT_JSON = RESULTS_DIR / "child_import.json"
AGENCY = "civil_affairs"
TARGETS = {"rows_per_s": 1000.0, "peak_mb": 500.0, "precision": 0.95, "recall": 0.90}
SAME_ID_REASON = "the same identity card number as row"
_T0 = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def thread_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def postgres_ticks() -> dict[int, int]:
    """CPU ticks used so far by each of the machine's PostgreSQL processes (every database: other work counts)."""
    ticks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return ticks


def postgres_cpu_s(before: dict[int, int]) -> float:
    """CPU seconds PostgreSQL used since ``before`` (processes that ended meanwhile are not counted)."""
    return sum(t - before.get(pid, 0) for pid, t in postgres_ticks().items()) / CLOCK_TICKS


def machine_busy() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return sum(values) - values[3] - values[4], sum(values)


# ---------------------------------------------------------------------------------------------------- the roster


@dataclass
class Truth:
    """The person behind each data row (row numbers as in the file: the header is row 1)."""

    person: dict[int, str] = field(default_factory=dict)
    variants: dict[int, tuple[str, ...]] = field(default_factory=dict)  # rows that repeat an earlier child
    twins: int = 0

    def tap(self, rows: Iterable[RosterRow]) -> Iterator[RosterRow]:
        for number, row in enumerate(rows, start=2):
            self.person[number] = row.person_key
            if row.variants:
                self.variants[number] = row.variants
            if row.twin_of:
                self.twins += 1
            yield row


def write_roster(path: Path, rows: int, duplicate_rate: float, seed: int, as_of: date) -> Truth:
    truth = Truth()
    write_csv(path, truth.tap(generate_roster(rows, duplicate_rate, seed, as_of=as_of)), include_truth=False)
    return truth


# ------------------------------------------------------------------------------------------- precision and recall


@dataclass
class Scoring:
    """Fed with every batch's registrations: which file each row went to and which pairs were flagged."""

    child_of_row: dict[int, UUID] = field(default_factory=dict)
    flagged: set[frozenset[UUID]] = field(default_factory=set)

    def on_batch(self, batch: Sequence[ImportedRow]) -> None:
        for imported in batch:
            child = imported.registration.child_id
            self.child_of_row[imported.row] = child
            for match in imported.registration.duplicates:
                self.flagged.add(frozenset((child, match.child_id)))


def score(truth: Truth, scoring: Scoring, rejected: dict[int, str]) -> dict[str, Any]:
    persons_of_child: dict[UUID, set[str]] = defaultdict(set)
    children_of_person: dict[str, set[UUID]] = defaultdict(set)
    rows_of_person: Counter[str] = Counter()
    for row, child in scoring.child_of_row.items():
        person = truth.person[row]
        persons_of_child[child].add(person)
        children_of_person[person].add(child)
        rows_of_person[person] += 1
    true_pairs = {
        frozenset((a, b)) for children in children_of_person.values() for a in children for b in children if a < b
    }
    merged_by_identity = sum(n - len(children_of_person[p]) for p, n in rows_of_person.items())
    wrongly_merged = sum(1 for persons in persons_of_child.values() if len(persons) > 1)

    def same_person(pair: frozenset[UUID]) -> bool:
        a, b = tuple(pair)
        return bool(persons_of_child.get(a, set()) & persons_of_child.get(b, set()))

    true_positive = sum(1 for pair in scoring.flagged if same_person(pair))
    false_positive = len(scoring.flagged) - true_positive
    found = {pair for pair in scoring.flagged if pair in true_pairs}
    false_negative = len(true_pairs - found)
    precision = true_positive / len(scoring.flagged) if scoring.flagged else 1.0
    recall = len(found) / len(true_pairs) if true_pairs else 1.0

    seeded = len(truth.variants)
    rejected_same_id = sum(1 for row in truth.variants if SAME_ID_REASON in rejected.get(row, ""))
    rejected_other = Counter(
        reason for row, reason in rejected.items() if row in truth.variants and SAME_ID_REASON not in reason
    )
    caught_rows = 0  # seeded duplicate rows found one way or another
    for row in truth.variants:
        if SAME_ID_REASON in rejected.get(row, ""):
            caught_rows += 1
            continue
        found_child = scoring.child_of_row.get(row)
        if found_child is None:
            continue
        child = found_child
        person = truth.person[row]
        others = children_of_person[person] - {child}
        if any(frozenset((child, other)) in scoring.flagged for other in others) or (
            rows_of_person[person] > len(children_of_person[person])
        ):
            caught_rows += 1
    by_variant: dict[str, dict[str, int]] = defaultdict(lambda: {"pairs": 0, "found": 0})
    for row, variants in truth.variants.items():
        row_child = scoring.child_of_row.get(row)
        if row_child is None:
            continue
        others = children_of_person[truth.person[row]] - {row_child}
        hit = any(frozenset((row_child, other)) in scoring.flagged for other in others)
        for variant in variants:
            by_variant[variant]["pairs"] += 1
            by_variant[variant]["found"] += int(hit)
    return {
        "precision": round(precision, 4), "recall": round(recall, 4),
        "flagged_pairs": len(scoring.flagged), "true_positive": true_positive, "false_positive": false_positive,
        "false_negative": false_negative, "true_pairs": len(true_pairs),
        "rows_merged_by_identity": merged_by_identity, "files_with_two_persons": wrongly_merged,
        "seeded_duplicate_rows": seeded, "twins": truth.twins,
        "seeded_rows_rejected_same_id_in_file": rejected_same_id,
        "seeded_rows_rejected_other": dict(rejected_other),
        "seeded_rows_caught_any_way": caught_rows,
        "seeded_rows_caught_share": round(caught_rows / seeded, 4) if seeded else 1.0,
        "by_variant": {k: {**v, "recall": round(v["found"] / v["pairs"], 4) if v["pairs"] else None}
                       for k, v in sorted(by_variant.items())},
    }


# ---------------------------------------------------------------------------------------------------- the import


def settings_for(storage: str, tmp: Path, prefix: str) -> Settings:
    if storage == "postgres":
        return Settings(storage="postgres", database_url=DATABASE_URL, schema_prefix=prefix)
    return Settings(storage="sqlite", data_dir=tmp / f"{prefix}data")


def run_import(
    settings: Settings, roster: Path, tmp: Path, total: int, batch_rows: int = BATCH_ROWS
) -> tuple[dict[str, Any], Scoring, dict[int, str]]:
    service = build(settings)
    scoring = Scoring()
    last = [time.perf_counter(), 0]

    def report(done: int) -> None:
        now = time.perf_counter()
        if done - last[1] >= 10_000 or (done >= total and done > last[1]):
            progress(f"import: {done:,}/{total:,} rows, {(done - last[1]) / (now - last[0]):,.0f} rows/s lately")
            last[:] = [now, done]

    try:
        before = peak_mb()
        cpu, pg_before, busy = own_cpu_s(), postgres_ticks(), machine_busy()
        started = time.perf_counter()
        summary, errors_path = import_roster(
            roster, service.application.register_children, agency=AGENCY, errors_path=tmp / "errors.csv",
            batch_rows=batch_rows, progress=report, on_batch=scoring.on_batch,
        )
        wall = time.perf_counter() - started
        after = peak_mb()
        cpu, pg_cpu = own_cpu_s() - cpu, postgres_cpu_s(pg_before)
        busy_after = machine_busy()
        machine = (busy_after[0] - busy[0]) / max(busy_after[1] - busy[1], 1) * (os.cpu_count() or 1)
    finally:
        service.application.close()
        service.positions.engine.dispose()
    rejected: dict[int, str] = {}
    with errors_path.open(encoding="utf-8-sig", newline="") as report_file:
        for line in csv.DictReader(report_file):
            rejected.setdefault(int(line["row"]), line["reason"])
    result = {
        "rows": summary.rows, "imported_new": summary.imported_new, "updated": summary.updated,
        "unchanged": summary.unchanged, "duplicates_flagged_rows": summary.duplicates_flagged,
        "rejected": summary.rejected, "rejected_by_reason": dict(Counter(_reason_kind(r) for r in rejected.values())),
        "seconds": round(wall, 2), "rows_per_s": round(summary.rows / wall, 1),
        "peak_mb_before": round(before, 1), "peak_mb": round(after, 1),
        "cpu_s": {"importer": round(cpu, 1), "postgres_all": round(pg_cpu, 1),
                  "machine_busy_cores": round(machine, 2)},
        "rows_per_importer_cpu_s": round(summary.rows / cpu, 1) if cpu else None,
    }
    return result, scoring, rejected


def _reason_kind(reason: str) -> str:
    return SAME_ID_REASON if reason.startswith(SAME_ID_REASON) else reason


def run_reimport(settings: Settings, roster: Path, tmp: Path) -> dict[str, Any]:
    """The same file again into the same store: nothing may change."""
    service = build(settings)
    try:
        started = time.perf_counter()
        summary, _ = import_roster(roster, service.application.register_children, agency=AGENCY,
                                   errors_path=tmp / "errors-again.csv")
        wall = time.perf_counter() - started
    finally:
        service.application.close()
        service.positions.engine.dispose()
    return {"rows": summary.rows, "imported_new": summary.imported_new, "updated": summary.updated,
            "unchanged": summary.unchanged, "changed": summary.changed, "seconds": round(wall, 2),
            "rows_per_s": round(summary.rows / wall, 1)}


# --------------------------------------------------------------------------------------------------- the baseline


def parsed_batches(roster: Path, today: date) -> Iterator[list[SurveyRow]]:
    """The roster's valid rows, parsed, in batches (the same rows the import registers, minus in-file repeats)."""
    seen: set[str] = set()
    with roster.open("rb") as stream:
        file_scan = scan(stream)
        rows = read_rows(stream, file_scan)
        try:
            header = find_header(rows)
            batch: list[SurveyRow] = []
            for number, cells in rows:
                parsed = parse_row(header, number, cells, today)
                if not isinstance(parsed, SurveyRow):
                    continue
                number_on_card = parsed.identity.id_card_number
                if number_on_card:
                    if number_on_card in seen:
                        continue
                    seen.add(number_on_card)
                batch.append(parsed)
                if len(batch) >= REGISTER_CHUNK:
                    yield batch
                    batch = []
            if batch:
                yield batch
        finally:
            rows.close()


def run_baseline(settings: Settings, roster: Path, import_id: str) -> dict[str, Any]:
    """Save the same Child aggregates (Registered, FactsRecorded, CategoriesDerived) in batches, nothing else."""
    app = IntakeApplication(
        eventsourcing_env(settings, "intake"), identity_key=settings.identity_key.get_secret_value().encode()
    )
    today = datetime.now(UTC).date()
    try:
        with import_gc_settings():  # the same collector settings as the import
            clock, cpu, saved = _save_batches(app, roster, import_id, today)
    finally:
        app.close()
    return {
        "aggregates": saved, "seconds": round(clock, 2), "rows_per_s": round(saved / clock, 1) if clock else None,
        "cpu_s": {"saver": round(cpu, 1)}, "rows_per_saver_cpu_s": round(saved / cpu, 1) if cpu else None,
    }


def _save_batches(app: IntakeApplication, roster: Path, import_id: str, today: date) -> tuple[float, float, int]:
    """Build and save each batch's aggregates: the time and CPU time it took, and how many."""
    ids: set[UUID] = set()
    clock = cpu = 0.0
    saved = 0
    for batch in parsed_batches(roster, today):
        started, cpu_started = time.perf_counter(), thread_cpu_s()
        children = []
        for row in batch:
            child_id = app.child_id_for(row.identity)
            if child_id in ids:
                continue
            ids.add(child_id)
            children.append(_child(child_id, row, import_id, today))
        app.save(*children)
        clock += time.perf_counter() - started
        cpu += thread_cpu_s() - cpu_started
        saved += len(children)
    return clock, cpu, saved


def _child(child_id: UUID, row: SurveyRow, import_id: str, today: date) -> Child:
    identity = row.identity
    child = Child(
        child_id=child_id, name=identity.name, sex=identity.sex, birth_date=identity.birth_date,
        id_card_number=identity.id_card_number, township=identity.township, village=identity.village,
        categories=[], registered_by=AGENCY,
    )
    child.record_facts(facts=row.facts.stored(), source=survey_source(import_id, row.row), recorded_by=AGENCY)
    derived = derive_categories(row.facts, today)
    child.categories_derived(
        categories=list(derived.categories), added=list(derived.categories), removed=[], reasons=list(derived.reasons),
        as_of=today, township=identity.township, village=identity.village, parents_away=derived.parents_away,
        parents_away_since=derived.parents_away_since, frequent_visit_reasons=list(derived.frequent_visit_reasons),
        has_entrusted_caregiver=derived.has_entrusted_caregiver, rederive_on=derived.next_change_on,
        derived_by=AGENCY,
    )
    return child


# -------------------------------------------------------------------------------------------------------- results


def evaluate(results: dict[str, Any]) -> dict[str, Any]:
    imported = results.get("import") or {}
    matching = results.get("matching") or {}
    out: dict[str, Any] = {}
    if imported:
        out["rows_per_s"] = {"target": TARGETS["rows_per_s"], "value": imported["rows_per_s"],
                             "met": imported["rows_per_s"] >= TARGETS["rows_per_s"],
                             "applies": results["meta"]["storage"] == "postgres"}
        out["peak_mb"] = {"target": TARGETS["peak_mb"], "value": imported["peak_mb"],
                          "met": imported["peak_mb"] < TARGETS["peak_mb"]}
    if matching:
        for key in ("precision", "recall"):
            out[key] = {"target": TARGETS[key], "value": matching[key], "met": matching[key] >= TARGETS[key]}
    return out


def table(results: dict[str, Any]) -> str:
    meta, imported = results["meta"], results.get("import") or {}
    matching, baseline = results.get("matching") or {}, results.get("baseline") or {}
    again = results.get("reimport") or {}
    lines = [f"survey import of {meta['rows']:,} rows on {meta['storage']} ({meta['machine']['cpus']} CPUs)", ""]
    if imported:
        lines += [
            f"import     {imported['seconds']:8.1f} s  {imported['rows_per_s']:9,.0f} rows/s   peak memory "
            f"{imported['peak_mb']:.0f} MB (before the import {imported['peak_mb_before']:.0f} MB)",
            f"           CPU: the importer {imported['cpu_s']['importer']:.0f} s "
            f"({imported['rows_per_importer_cpu_s']:,.0f} rows per CPU second), PostgreSQL "
            f"{imported['cpu_s']['postgres_all']:.0f} s; the machine was "
            f"{imported['cpu_s']['machine_busy_cores']:.2f} cores busy",
            f"           new {imported['imported_new']:,}, updated {imported['updated']:,}, unchanged "
            f"{imported['unchanged']:,}, rows with duplicates flagged {imported['duplicates_flagged_rows']:,}, "
            f"rejected {imported['rejected']:,}",
        ]
    if again:
        lines.append(f"re-import  {again['seconds']:8.1f} s  {again['rows_per_s']:9,.0f} rows/s   changed: "
                     f"{again['changed']} (new {again['imported_new']}, updated {again['updated']})")
    if baseline:
        lines.append(f"baseline   {baseline['seconds']:8.1f} s  {baseline['rows_per_s']:9,.0f} rows/s   (saving the "
                     f"same aggregates only; {baseline['rows_per_saver_cpu_s']:,.0f} rows per CPU second); "
                     f"import / baseline = {results.get('ratio_to_baseline')}")
    if matching:
        lines += [
            f"matcher    precision {matching['precision']:.4f}  recall {matching['recall']:.4f}  "
            f"({matching['true_positive']:,} of {matching['flagged_pairs']:,} flagged pairs right, "
            f"{matching['true_pairs']:,} true pairs)",
            f"           seeded duplicate rows {matching['seeded_duplicate_rows']:,}: caught any way "
            f"{matching['seeded_rows_caught_any_way']:,} ({matching['seeded_rows_caught_share']:.2%}); same ID "
            f"in the file {matching['seeded_rows_rejected_same_id_in_file']:,}; other rejections "
            f"{sum(matching['seeded_rows_rejected_other'].values()):,}",
        ]
    lines.append("")
    for key, target in results.get("targets", {}).items():
        applies = "" if target.get("applies", True) else " (target is for PostgreSQL)"
        lines.append(f"target {key:<11} {target['value']!s:>10} vs {target['target']!s:<8} "
                     f"{'met' if target['met'] else 'NOT MET'}{applies}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.child_import", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--storage", choices=("postgres", "sqlite"), default="postgres")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--duplicate-rate", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline (and the re-import)")
    p.add_argument("--batch-rows", type=int, default=BATCH_ROWS, help="rows per register_children call")
    args = p.parse_args(argv)

    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench_{run_id}_"
    today = datetime.now(UTC).date()
    results: dict[str, Any] = {"meta": {
        "benchmark": "child_import", "run_id": run_id, "rows": args.rows, "storage": args.storage,
        "duplicate_rate": args.duplicate_rate, "seed": args.seed, "batch_rows": args.batch_rows,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "postgres_schema_prefix": prefix if args.storage == "postgres" else None,
    }}
    failed = False
    try:
        with tempfile.TemporaryDirectory(prefix="huhang-bench-import-") as tmp_name:
            tmp = Path(tmp_name)
            roster = tmp / "roster.csv"
            progress(f"writing a synthetic roster of {args.rows:,} rows")
            truth = write_roster(roster, args.rows, args.duplicate_rate, args.seed, today)
            results["meta"]["roster_bytes"] = roster.stat().st_size
            gc.collect()
            settings = settings_for(args.storage, tmp, f"{prefix}i_")
            progress(f"importing on {args.storage}")
            results["import"], scoring, rejected = run_import(settings, roster, tmp, args.rows, args.batch_rows)
            results["matching"] = score(truth, scoring, rejected)
            del scoring
            if not args.no_baseline:
                progress("importing the same file again")
                results["reimport"] = run_reimport(settings, roster, tmp)
                progress("baseline: saving the same aggregates only")
                with roster.open("rb") as stream:
                    import_id = scan(stream).import_id
                results["baseline"] = run_baseline(settings_for(args.storage, tmp, f"{prefix}b_"), roster, import_id)
                base = results["baseline"]["rows_per_s"]
                results["ratio_to_baseline"] = round(results["import"]["rows_per_s"] / base, 3) if base else None
    except Exception as exc:
        failed = True
        results["failure"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if args.storage == "postgres":
            try:
                progress(f"dropped {len(drop_schemas(prefix))} PostgreSQL schema(s) {prefix}*")
            except Exception as exc:
                progress(f"could not drop the schemas {prefix}*: {type(exc).__name__}")
        results["meta"]["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        results["targets"] = evaluate(results)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    print(table(results))
    print(f"\nJSON: {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

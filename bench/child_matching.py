"""Duplicate matcher benchmark: precision and recall on a synthetic roster with seeded duplicates, and speed.

    .venv/bin/python -m bench.child_matching [--rows 100000] [--duplicate-rate 0.05] [--seed 7] [--json PATH]

Each roster row is a file of its own (a child id per row). In roster order, the matcher is asked for the
candidates of each row, then the row is added: as a survey import or a registration meets them. Against the
ground truth (rows with the same ``person_key`` are the same child):

- precision: of the candidates returned (pairs), the share that are the same child;
- recall: of the rows that repeat a child seen earlier, the share whose candidates include an earlier row of that
  child (one link suffices to merge); also given for the rows no identity-card number could link;
- calibration: precision and recall at a range of thresholds, to show where ``PROBABLE_AT`` sits;
- speed: rows/s of the matching loop (query then add), beside the baseline of the same loop with an exact
  identity-card lookup only, interleaved row by row in the same run; the ratio is the figure to compare across
  machines.

Targets (issue 4): precision >= 0.95 and recall >= 0.90. Writes ``bench/results/child_matching.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.synthetic_roster import RosterRow, generate_roster
from services.intake.matching import (
    BLOCKING_COMPLETE_AT,
    PROBABLE_AT,
    DuplicateMatcher,
    Match,
    PersonRecord,
    normalise_id_card,
)

RESULTS = Path(__file__).parent / "results" / "child_matching.json"
SWEEP = (0.78, 0.8, 0.82, 0.85, 0.88, 0.9, 0.95)
PRECISION_TARGET = 0.95
RECALL_TARGET = 0.90
_ROW_NAMESPACE = uuid.UUID("9b0f3c52-61d4-4e8a-a7c3-2f5e8d1b6a90")


class ExactIdMatcher:
    """The baseline: an identity-card number seen before, nothing else."""

    def __init__(self) -> None:
        self._by_id: dict[str, list[uuid.UUID]] = defaultdict(list)

    def add(self, record: PersonRecord) -> None:
        key = normalise_id_card(record.id_card_number)
        if key is not None:
            self._by_id[key].append(record.child_id)

    def candidates(self, record: PersonRecord, limit: int = 5) -> list[Match]:
        key = normalise_id_card(record.id_card_number)
        if key is None:
            return []
        found = [c for c in self._by_id.get(key, ()) if c != record.child_id]
        return [Match(c, 1.0, True, ("id_card",)) for c in found[:limit]]


@dataclass
class Tally:
    rows: int = 0
    seconds: float = 0.0
    predicted_pairs: int = 0
    true_positive_pairs: int = 0
    duplicate_rows: int = 0
    found_rows: int = 0
    true_pairs: int = 0
    duplicate_rows_without_id_link: int = 0
    found_rows_without_id_link: int = 0
    false_positives_by_kind: Counter[str] = field(default_factory=Counter)
    found_by_variant: Counter[str] = field(default_factory=Counter)
    duplicates_by_variant: Counter[str] = field(default_factory=Counter)

    @property
    def precision(self) -> float:
        return self.true_positive_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.found_rows / self.duplicate_rows if self.duplicate_rows else 1.0

    @property
    def pair_recall(self) -> float:
        return self.true_positive_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def recall_without_id_link(self) -> float:
        if not self.duplicate_rows_without_id_link:
            return 1.0
        return self.found_rows_without_id_link / self.duplicate_rows_without_id_link

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def record_of(index: int, row: RosterRow) -> PersonRecord:
    return PersonRecord(
        child_id=uuid.uuid5(_ROW_NAMESPACE, str(index)), name=row.name, sex=row.sex, birth_date=row.birth_date,
        id_card_number=row.id_card_number, township=row.township, village=row.village,
    )


@dataclass(frozen=True, slots=True)
class _Seen:
    person_key: str
    twin_of: str | None
    id_key: str | None


class Matcher(Protocol):
    def add(self, record: PersonRecord) -> None: ...
    def candidates(self, record: PersonRecord, limit: int = 5) -> list[Match]: ...


def evaluate(matchers: Sequence[Matcher], rows: Iterable[RosterRow]) -> list[Tally]:
    """One pass over the rows with every matcher side by side, each timed on its own calls: interleaved, the
    machine's load falls on all alike and the ratio of their speeds holds."""
    tallies = [Tally() for _ in matchers]
    seen: dict[uuid.UUID, _Seen] = {}
    ids_of_person: dict[str, set[str]] = defaultdict(set)
    rows_of_person: Counter[str] = Counter()
    clock = time.perf_counter
    for index, row in enumerate(rows):
        record = record_of(index, row)
        id_key = normalise_id_card(row.id_card_number)
        earlier = rows_of_person[row.person_key]
        id_linkable = id_key is not None and id_key in ids_of_person[row.person_key]
        for matcher, tally in zip(matchers, tallies, strict=True):
            started = clock()
            candidates = matcher.candidates(record)
            matcher.add(record)
            tally.seconds += clock() - started
            tally.rows += 1
            _count(tally, row, candidates, seen, earlier, id_linkable)
        seen[record.child_id] = _Seen(row.person_key, row.twin_of, id_key)
        rows_of_person[row.person_key] += 1
        if id_key is not None:
            ids_of_person[row.person_key].add(id_key)
    return tallies


def _count(
    tally: Tally, row: RosterRow, candidates: list[Match], seen: dict[uuid.UUID, _Seen], earlier: int,
    id_linkable: bool,
) -> None:
    found = False
    for match in candidates:
        other = seen[match.child_id]
        tally.predicted_pairs += 1
        if other.person_key == row.person_key:
            tally.true_positive_pairs += 1
            found = True
        else:
            twins = row.person_key == other.twin_of or other.person_key == row.twin_of
            tally.false_positives_by_kind["twin" if twins else "other"] += 1
    if earlier:
        tally.duplicate_rows += 1
        tally.true_pairs += earlier
        tally.found_rows += found
        if not id_linkable:
            tally.duplicate_rows_without_id_link += 1
            tally.found_rows_without_id_link += found
        for variant in row.variants:
            tally.duplicates_by_variant[variant] += 1
            tally.found_by_variant[variant] += found


def sweep(rows: Iterable[RosterRow], thresholds: Sequence[float], limit: int = 5) -> dict[str, dict[str, float]]:
    """Precision and recall at each threshold, from one pass at the lowest threshold blocking covers."""
    matcher = DuplicateMatcher(BLOCKING_COMPLETE_AT)
    person_of: dict[uuid.UUID, str] = {}
    rows_of_person: Counter[str] = Counter()
    predicted: Counter[float] = Counter()
    correct: Counter[float] = Counter()
    found: Counter[float] = Counter()
    duplicates = 0
    for index, row in enumerate(rows):
        record = record_of(index, row)
        candidates = matcher.candidates(record, limit=50)
        matcher.add(record)
        duplicates += rows_of_person[row.person_key] > 0
        for threshold in thresholds:
            kept = [m for m in candidates if m.exact or m.score >= threshold][:limit]
            same = sum(person_of[m.child_id] == row.person_key for m in kept)
            predicted[threshold] += len(kept)
            correct[threshold] += same
            found[threshold] += same > 0
        person_of[record.child_id] = row.person_key
        rows_of_person[row.person_key] += 1
    return {
        f"{t:.2f}": {
            "precision": round(correct[t] / predicted[t], 4) if predicted[t] else 1.0,
            "recall": round(found[t] / duplicates, 4) if duplicates else 1.0,
        }
        for t in thresholds
    }


def run(rows: int, duplicate_rate: float = 0.05, seed: int = 7) -> dict[str, Any]:
    roster: Callable[[], Iterable[RosterRow]] = lambda: generate_roster(rows, duplicate_rate, seed)  # noqa: E731
    fuzzy, baseline = evaluate([DuplicateMatcher(PROBABLE_AT), ExactIdMatcher()], roster())
    calibration = sweep(roster(), SWEEP)
    return {
        "rows": rows,
        "duplicate_rate": duplicate_rate,
        "seed": seed,
        "threshold": PROBABLE_AT,
        "duplicate_rows": fuzzy.duplicate_rows,
        "duplicate_rows_without_id_link": fuzzy.duplicate_rows_without_id_link,
        "predicted_pairs": fuzzy.predicted_pairs,
        "true_positive_pairs": fuzzy.true_positive_pairs,
        "false_positives_by_kind": dict(fuzzy.false_positives_by_kind),
        "precision": round(fuzzy.precision, 4),
        "recall": round(fuzzy.recall, 4),
        "recall_without_id_link": round(fuzzy.recall_without_id_link, 4),
        "pair_recall": round(fuzzy.pair_recall, 4),
        "f1": round(fuzzy.f1, 4),
        "recall_by_variant": {
            v: round(fuzzy.found_by_variant[v] / n, 4) for v, n in sorted(fuzzy.duplicates_by_variant.items())
        },
        "rows_per_second": round(fuzzy.rows_per_second),
        "baseline_rows_per_second": round(baseline.rows_per_second),
        "speed_ratio_to_baseline": round(fuzzy.rows_per_second / baseline.rows_per_second, 4)
        if baseline.rows_per_second else None,
        "baseline_precision": round(baseline.precision, 4),
        "baseline_recall": round(baseline.recall, 4),
        "precision_target": PRECISION_TARGET,
        "recall_target": RECALL_TARGET,
        "precision_met": fuzzy.precision >= PRECISION_TARGET,
        "recall_met": fuzzy.recall >= RECALL_TARGET,
        "calibration": calibration,
    }


def report(result: dict[str, Any]) -> str:
    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = [
        f"duplicate matcher on {result['rows']:,} synthetic rows "
        f"({result['duplicate_rows']:,} repeat an earlier child, "
        f"{result['duplicate_rows_without_id_link']:,} with no identity-card number to link them)",
        f"  threshold            {result['threshold']}",
        f"  precision            {result['precision']:.4f}  (target >= {PRECISION_TARGET}: "
        f"{met(result['precision_met'])}; false positives {result['false_positives_by_kind'] or 0})",
        f"  recall               {result['recall']:.4f}  (target >= {RECALL_TARGET}: {met(result['recall_met'])})",
        f"  recall, no ID link   {result['recall_without_id_link']:.4f}",
        f"  F1                   {result['f1']:.4f}",
        "  recall by variant    " + ", ".join(f"{k} {v:.3f}" for k, v in result["recall_by_variant"].items()),
        f"  matching             {result['rows_per_second']:,} rows/s; exact-ID baseline "
        f"{result['baseline_rows_per_second']:,} rows/s; ratio {result['speed_ratio_to_baseline']}",
        f"  exact-ID baseline    precision {result['baseline_precision']:.4f}, recall {result['baseline_recall']:.4f}",
        "  by threshold         "
        + ", ".join(f"{t}: P {v['precision']:.3f} R {v['recall']:.3f}" for t, v in result["calibration"].items()),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--duplicate-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"where to write the figures (default {RESULTS})")
    args = parser.parse_args(argv)
    result = run(args.rows, args.duplicate_rate, args.seed)
    print(report(result), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written to {args.json}", file=sys.stderr)
    return 0 if result["precision_met"] and result["recall_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

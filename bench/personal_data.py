"""The cost of sealing personal data per child (huhang/personal.py) on intake's throughput.

    .venv/bin/python -m bench.personal_data [--seconds 8] [--rounds 3] [--threads 8] [--storage postgres,sqlite]
                                            [--json PATH]

Two intake applications on the same kind of store, each with a fresh store of its own: ``sealed`` as the platform
builds it (every event about a child sealed under the child's key, keys made in bulk per group commit) and
``plain`` (the same application built without child keys: events stored as JSON). The duplicate index seals its
records in both (it has no unsealed form), so the figure is the cost of sealing the events and of the child keys.
Each round runs both, alternately, from ``--threads`` threads filing new reports back to back
(``IntakeApplication.file_report``, no HTTP) for ``--seconds``; the figure is the ratio of the medians over the rounds,
measured in the same run because this machine is noisy. Target: sealing costs under 20 % (ratio >= 0.80).

Reports and names are synthetic (``bench.intake_and_routing.SyntheticReports``). Prints a table and writes
``bench/results/personal_data.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import secrets
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._pg import DATABASE_URL, drop_schemas, run_prefix
from bench.intake_and_routing import SyntheticReports, closed_loop, command, progress
from huhang.personal import ChildKeys
from huhang.settings import Settings
from huhang.storage import eventsourcing_env, read_model_engine
from services.intake.application import IntakeApplication

DEFAULT_JSON = Path(__file__).parent / "results" / "personal_data.json"
TARGET_RATIO = 0.80


@contextmanager
def intake(storage: str, sealed: bool, prefix: str, folder: Path) -> Iterator[IntakeApplication]:
    arm = "sealed" if sealed else "plain"
    if storage == "postgres":
        settings = Settings(storage="postgres", database_url=DATABASE_URL, schema_prefix=f"{prefix}{arm}_")
    else:
        settings = Settings(storage="sqlite", data_dir=folder / arm)
    engine = read_model_engine(settings, "intake")
    app = IntakeApplication(
        eventsourcing_env(settings, "intake"), identity_key=b"bench-identity-key", read_engine=engine,
        child_keys=ChildKeys(engine, secrets.token_bytes(32)) if sealed else None,
    )
    try:
        yield app
    finally:
        app.close()
        engine.dispose()


def filer(app: IntakeApplication, reports: SyntheticReports) -> Callable[[int], None]:
    def file(_: int) -> None:
        app.file_report(command(reports.next_body()))

    return file


def run(storages: list[str], seconds: float, rounds: int, threads: int) -> dict[str, Any]:
    reports = SyntheticReports(11)
    prefix = run_prefix("personal")
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for storage in storages:
                rates: dict[str, list[float]] = {"plain": [], "sealed": []}
                with (
                    intake(storage, False, prefix, Path(tmp)) as plain,
                    intake(storage, True, prefix, Path(tmp)) as sealed,
                ):
                    apps = {"plain": plain, "sealed": sealed}
                    for app in apps.values():  # warm up both (tables, caches, connections)
                        closed_loop(threads, 1.0, filer(app, reports))
                    for r in range(rounds):
                        order = ("plain", "sealed") if r % 2 == 0 else ("sealed", "plain")
                        for arm in order:
                            res = closed_loop(threads, seconds, filer(apps[arm], reports))
                            if res.errors:
                                raise RuntimeError(f"{arm}: {res.errors} errors: {res.error_kinds}")
                            rates[arm].append(res.rate)
                            progress(f"{storage} round {r + 1} {arm}: {res.rate:.0f} reports/s")
                plain_rate, sealed_rate = statistics.median(rates["plain"]), statistics.median(rates["sealed"])
                results[storage] = {
                    "plain_reports_per_s": rates["plain"], "sealed_reports_per_s": rates["sealed"],
                    "ratio": sealed_rate / plain_rate, "cost": 1 - sealed_rate / plain_rate,
                }
    finally:
        if "postgres" in storages:
            progress(f"dropped {len(drop_schemas(prefix))} PostgreSQL schema(s) {prefix}*")
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--storage", default="postgres,sqlite")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = p.parse_args(argv)
    storages = [s for s in args.storage.split(",") if s]
    results = run(storages, args.seconds, args.rounds, args.threads)
    print(f"\nintake with personal data sealed per child vs plain, {args.threads} threads, median of {args.rounds} "
          f"rounds of {args.seconds:g}s ({platform.machine()}, Python {platform.python_version()})")
    print(f"{'storage':10} {'plain/s':>9} {'sealed/s':>9} {'ratio':>7} {'cost':>7}  target cost < 20%")
    for storage, r in results.items():
        met = "met" if r["ratio"] >= TARGET_RATIO else "NOT met"
        print(f"{storage:10} {statistics.median(r['plain_reports_per_s']):9.0f} "
              f"{statistics.median(r['sealed_reports_per_s']):9.0f} {r['ratio']:7.3f} {r['cost']:7.1%}  {met}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"threads": args.threads, "seconds": args.seconds, "rounds": args.rounds,
                                     "results": results, "target_ratio": TARGET_RATIO}, indent=2))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

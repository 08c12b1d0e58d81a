"""Audit benchmark: how fast the hash chain is verified beside reading the same events without verification.

    .venv/bin/python -m bench.audit [--events 100000] [--repeats 5] [--batch-size 1000] [--stores sqlite,postgres]
                                    [--json PATH]

For each store, SQLite (a temporary data folder) and PostgreSQL (a unique schema prefix on
postgresql://postgres@127.0.0.1:5432/test, dropped at the end):

1. write N events: referrals opened through the referral service (``ReferralApplication.open_referrals``, 500 a
   save), synthetic ids and codes only;
2. chain them with the chainer (``huhang.chain.Chainer.catch_up``, the platform's batch size): events/s;
3. sign a checkpoint of the head (stored in the table and published to a file);
4. ``repeats`` times, back to back: the raw read (``select_notifications`` through the event store's recorder, in
   batches of ``--batch-size``, every notification taken) and the verification (``huhang.audit.verify_log``, the
   same batches: every event hashed and compared with the chain, the chain against the signed checkpoints).
   Each pair gives a ratio, verification rate / raw rate; the figure is the median of those ratios (pairs taken
   together see the same load on a shared machine). Target: >= 0.50.

Wall-clock and CPU time (this process) are both recorded. Prints a table and writes ``bench/results/audit.json``.
"""

from __future__ import annotations

import argparse
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

from bench._pg import DATABASE_URL, drop_schemas
from bench._results import write_results
from contracts.agencies import Agency
from contracts.commands import OpenReferral
from contracts.vocabulary import Priority
from huhang.audit import read_log, verify_log
from huhang.chain import Chainer, ChainStore
from huhang.checkpoints import (
    Checkpointer,
    CheckpointStore,
    FilePublisher,
    Signer,
    TrustedKeys,
    log_name,
    read_published,
)
from huhang.settings import Settings
from services.referral.main import ReferralService, build

RESULTS_DIR = Path(__file__).parent / "results"
DEFAULT_JSON = RESULTS_DIR / "audit.json"
TARGET_RATIO = 0.5
WRITE_BATCH = 500
_T0 = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def a_referral(n: int) -> OpenReferral:
    """A synthetic referral: random ids, fixed codes and place names; nothing about a person."""
    return OpenReferral(
        referral_id=uuid.uuid4(), case_id=uuid.uuid4(), child_id=uuid.uuid4(),
        owner_agency=(Agency.police, Agency.education, Agency.civil_affairs)[n % 3],
        requester_agency=Agency.education, referral_type="guardianship_investigation", priority=Priority.urgent,
        due_at=datetime.now(UTC) + timedelta(days=1), plan_tasks=(4, 6), rule_ids=("guardian-neglect-or-abuse",),
        rules_version="2026-11-29.1", source_event_id=uuid.uuid4(), correlation_id=uuid.uuid4(),
        township="虹桥镇", village="溪西村",
    )


@contextmanager
def store(kind: str, tmp: Path, prefix: str) -> Iterator[tuple[Settings, ReferralService]]:
    if kind == "sqlite":
        settings = Settings(storage="sqlite", data_dir=tmp / "sqlite")
    else:
        settings = Settings(storage="postgres", database_url=DATABASE_URL, schema_prefix=prefix,
                            data_dir=tmp / "postgres")
    service = build(settings)
    try:
        yield settings, service
    finally:
        service.application.close()
        service.positions.engine.dispose()


def timed(work: Callable[[], int]) -> tuple[int, float, float]:
    """(events, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    n = work()
    return n, time.perf_counter() - wall, time.process_time() - cpu


def bench_store(kind: str, events: int, repeats: int, batch_size: int, tmp: Path, prefix: str) -> dict[str, Any]:
    with store(kind, tmp, prefix) as (settings, service):
        progress(f"{kind}: writing {events} events")
        written, wall, _ = timed(lambda: _write(service, events))
        write_rate = written / wall

        progress(f"{kind}: chaining")
        engine = service.positions.engine
        chainer = Chainer("referral", service.application, ChainStore(engine), batch_size=settings.batch_size)
        chained, chain_wall, chain_cpu = timed(chainer.catch_up)
        assert chained == written, (chained, written)

        signer = Signer.generate()
        log = log_name(settings, "referral")
        publish = tmp / f"{kind}-audit"
        Checkpointer(signer, log, "referral", CheckpointStore(engine), [FilePublisher(publish, log)]).checkpoint(
            *chainer.head
        )
        trusted = TrustedKeys([signer.public_key])
        recorder = service.application.recorder

        def raw() -> int:
            return sum(1 for _ in read_log(recorder, batch_size))

        def verify() -> int:
            report = verify_log("referral", recorder, engine, log=log, trusted=trusted,
                                published=read_published(publish, log), batch_size=batch_size)
            assert report.ok, report.findings[:5]
            assert report.checkpoints_verified == 1
            return report.events_checked

        pairs: list[dict[str, float]] = []
        for i in range(repeats):
            progress(f"{kind}: raw read and verification, pair {i + 1} of {repeats}")
            n_raw, raw_wall, raw_cpu = timed(raw)
            n_ver, ver_wall, ver_cpu = timed(verify)
            assert n_raw == n_ver == written, (n_raw, n_ver, written)
            pairs.append({
                "raw_per_s": n_raw / raw_wall, "verify_per_s": n_ver / ver_wall,
                "ratio": (n_ver / ver_wall) / (n_raw / raw_wall),
                "raw_cpu_per_s": n_raw / max(raw_cpu, 1e-9), "verify_cpu_per_s": n_ver / max(ver_cpu, 1e-9),
            })
    ratio = statistics.median(p["ratio"] for p in pairs)
    return {
        "store": kind, "events": written, "batch_size": batch_size, "write_per_s": round(write_rate),
        "chainer_per_s": round(chained / chain_wall), "chainer_cpu_s_per_1000": round(1000 * chain_cpu / chained, 4),
        "raw_read_per_s_median": round(statistics.median(p["raw_per_s"] for p in pairs)),
        "verify_per_s_median": round(statistics.median(p["verify_per_s"] for p in pairs)),
        "ratio_median": round(ratio, 3), "target_ratio": TARGET_RATIO, "meets_target": ratio >= TARGET_RATIO,
        "pairs": [{k: round(v, 3) for k, v in p.items()} for p in pairs],
    }


def _write(service: ReferralService, events: int) -> int:
    written = 0
    while written < events:
        count = min(WRITE_BATCH, events - written)
        service.application.open_referrals([a_referral(written + i) for i in range(count)])
        written += count
    return written


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'store':<9} {'events':>8} {'chainer/s':>10} {'raw read/s':>11} {'verify/s':>9} {'ratio':>6} target",
    ]
    for r in results:
        mark = "met" if r["meets_target"] else "NOT met"
        lines.append(
            f"{r['store']:<9} {r['events']:>8} {r['chainer_per_s']:>10} {r['raw_read_per_s_median']:>11} "
            f"{r['verify_per_s_median']:>9} {r['ratio_median']:>6.2f} >= {r['target_ratio']:.2f} {mark}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1000, help="events per read, raw and verified alike")
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    prefix = f"bench_audit_{uuid.uuid4().hex[:8]}_"
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="huhang-bench-audit-") as tmp:
            for kind in args.stores.split(","):
                results.append(bench_store(kind, args.events, args.repeats, args.batch_size, Path(tmp), prefix))
    finally:
        if "postgres" in args.stores:
            dropped = drop_schemas(prefix)
            progress(f"dropped PostgreSQL schemas {', '.join(dropped) or '(none)'}")
    write_results(
        args.json, "audit",
        "median over back-to-back pairs of (verification rate / raw read rate), same events, same batches",
        results, ("eventsourcing", "sqlalchemy", "psycopg", "cryptography"),
    )
    print(table(results))
    progress(f"wrote {args.json}")
    return 0 if all(r["meets_target"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The audit bundle of a case (``huhang audit bundle``): everything an inspector needs to check, offline, that the
case's record is what was stored, with only the bundle and the published public key.

For each service the bundle holds:

- the case's stored events exactly as the event store keeps them (state in base64): the records whose integration
  events are on the case's timeline (found by running the service's own mapping over its log) and every record of
  the case aggregate itself (originator id = case id); with ``--since``/``--until``, those of that period;
- the chain rows that link each of them to a signed checkpoint: for each checkpoint, every row from the first of the
  case's records it covers up to the checkpoint's position. The rows of other cases' events in between are chain
  rows only (hashes, ids, versions), never their state;
- those checkpoints (signed heads, Ed25519), each checked here against the trusted keys and the chain.

Plus the case history as of ``--until`` (``GET /v1/cases/{id}/history``), and ``bundle_verify.py``, the verifier,
which needs only the standard library and ``cryptography``. Before collecting, every chain is brought up to date and
its head signed (unless ``sign=False``), so the case's latest events are covered too; a record that no checkpoint
covers is listed as such, and the verifier names it.

Layout (a directory, or the same files in a zip)::

    manifest.json  history.json  services/<service>.json  bundle_verify.py  README.txt
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from huhang import bundle_verify
from huhang.audit import SERVICES, log_batches
from huhang.bundle_verify import BUNDLE_FORMAT
from huhang.chain import ChainRow, ChainStore, build_chainer, originator_key
from huhang.checkpoints import (
    Checkpoint,
    CheckpointStore,
    TrustedKeys,
    log_name,
    publish_dir,
    read_published,
    trusted_keys,
)
from huhang.settings import Settings
from services.intake.history import case_file

logger = logging.getLogger(__name__)

README = """Huhang audit bundle of case {case_id}

Verify it offline (Python 3.11+ and the `cryptography` package only):

    python bundle_verify.py . --public-key <the published base64 public key of the checkpoint signing key>

Exit status 0: every stored event of the case links to a checkpoint signed with that key. Otherwise each record,
chain row or checkpoint that does not verify is named (service, position, originator id and version).
"""


class BundleError(Exception):
    """The bundle cannot be made (no such case, no event in the period)."""


@dataclass
class BundleSummary:
    out: Path
    case_id: UUID
    records: dict[str, int] = field(default_factory=dict)
    chain_rows: dict[str, int] = field(default_factory=dict)
    unproven: dict[str, list[int]] = field(default_factory=dict)  # positions no signed checkpoint covers

    @property
    def complete(self) -> bool:
        return not any(self.unproven.values())


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _in_window(moment: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or moment >= since) and (until is None or moment <= until)


def case_records(
    service: Any, case_id: UUID, event_ids: set[str], since: datetime | None, until: datetime | None,
    batch_size: int = 1000,
) -> Iterator[dict[str, Any]]:
    """The service's stored records of the case, in position order, as stored (``event_ids``: the case's events in
    the period, from its timeline). Each record is decoded and mapped with the service's own mapping; one that
    cannot be decoded (erased, or altered beyond reading) cannot be attributed to a case and is skipped."""
    app, to_contract = service.application, service.to_integration_events()
    case_text, case_hex = str(case_id), case_id.hex
    for batch in log_batches(app.recorder, batch_size):
        for n in batch:
            try:
                domain_event = app.mapper.to_domain_event(n)
                produced = [str(e.id) for e in to_contract(domain_event) if e.subject == case_text]
            except Exception as exc:
                logger.warning("bundle: %s position %s not decoded (%s)", service.name, getattr(n, "id", "?"),
                               type(exc).__name__)
                continue
            own = originator_key(n.originator_id) == case_hex and _in_window(domain_event.timestamp, since, until)
            if own or any(i in event_ids for i in produced):
                yield {
                    "position": n.id, "originator_id": str(n.originator_id),
                    "originator_id_type": "uuid" if isinstance(n.originator_id, UUID) else "text",
                    "originator_version": n.originator_version, "topic": n.topic,
                    "state_b64": base64.b64encode(bytes(n.state)).decode(), "event_ids": produced,
                }


def usable_checkpoints(
    service: str, log: str, chain: ChainStore, sources: Sequence[Checkpoint], trusted: TrustedKeys,
) -> dict[int, Checkpoint]:
    """One checkpoint per position: signed with a trusted key, of this log, and agreeing with the chain as stored
    (one that does not is no proof of anything here; ``huhang audit verify`` says where the chain was changed)."""
    found: dict[int, Checkpoint] = {}
    for cp in sources:
        if cp.position in found or (cp.log, cp.service) != (log, service) or trusted.check(cp) is not None:
            continue
        row = chain.row_at(cp.position)
        if row is not None and row.hash == cp.head:
            found[cp.position] = cp
    return found


def _row_json(row: ChainRow) -> dict[str, Any]:
    return {
        "position": row.position, "originator_id": row.originator_id, "originator_version": row.originator_version,
        "topic": row.topic, "state_sha256": row.state_sha256.hex(), "prev_hash": row.prev_hash.hex(),
        "hash": row.hash.hex(),
    }


def _checkpoint_json(cp: Checkpoint) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cp.to_json())
    return data


def _rows_between(chain: ChainStore, first: int, through: int, batch_size: int = 5000) -> list[ChainRow]:
    rows: list[ChainRow] = []
    after = first - 1
    while True:
        batch = chain.rows_after(after, batch_size, through)
        rows.extend(batch)
        if len(batch) < batch_size:
            return rows
        after = batch[-1].position


def service_part(
    settings: Settings, service: Any, records: list[dict[str, Any]], trusted: TrustedKeys,
    checkpoints_dir: Path | None = None,
) -> dict[str, Any]:
    """One service's file: its records of the case, and the proofs linking them to signed checkpoints."""
    log = log_name(settings, service.name)
    engine = service.positions.engine
    chain = ChainStore(engine)
    sourced = [*CheckpointStore(engine).read(), *read_published(checkpoints_dir or publish_dir(settings), log)]
    checkpoints = usable_checkpoints(
        service.name, log, chain, [s.checkpoint for s in sourced if s.checkpoint is not None], trusted
    )
    positions = sorted(checkpoints)
    groups: dict[int, list[int]] = {}
    unproven = []
    for record in records:
        covering = next((c for c in positions if c >= record["position"]), None)
        if covering is None:
            unproven.append(record["position"])
        else:
            groups.setdefault(covering, []).append(record["position"])
    proofs = [
        {"checkpoint": _checkpoint_json(checkpoints[c]),
         "chain": [_row_json(r) for r in _rows_between(chain, min(covered), c)]}
        for c, covered in sorted(groups.items())
    ]
    return {"service": service.name, "log": log, "records": records, "proofs": proofs, "unproven": unproven}


def sign_heads(settings: Settings, services: Sequence[Any]) -> None:
    """Chain what each log holds so far and sign its head, so the case's latest events are covered too."""
    for service in services:
        chainer = build_chainer(settings, service)
        chainer.catch_up()
        chainer.checkpoint()


def build_bundle(
    settings: Settings,
    services: Mapping[str, Any],
    case_id: UUID,
    out: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    sign: bool = True,
    checkpoints_dir: Path | None = None,
) -> BundleSummary:
    """Write the bundle of ``case_id`` to ``out`` (a ``.zip`` file, or a directory). ``services`` are the built
    services (``huhang.service.Service``) by name; intake's holds the case's timeline."""
    since, until = _utc(since), _utc(until)
    as_of = until or datetime.now(UTC)
    intake = services["intake"]
    history = intake.timeline.history.history(str(case_id), as_of)
    if history is None:
        raise BundleError(f"case {case_id} has no event at or before {as_of.isoformat()}")
    entries = []
    for entry in history.events:
        moment = datetime.fromisoformat(entry["time"])
        entries.append({**entry, "in_window": _in_window(moment, since, until)})
    window_ids = {e["event_id"] for e in entries if e["in_window"]}
    if not window_ids:
        raise BundleError(f"case {case_id} has no event in the period asked for")
    if sign:
        sign_heads(settings, list(services.values()))
    trusted = trusted_keys(settings)
    summary = BundleSummary(out, case_id)
    files: dict[str, Any] = {
        "history.json": {
            "case_id": str(case_id), "as_of": as_of.isoformat(), "since": since and since.isoformat(),
            "until": until and until.isoformat(), "case": case_file(history.case), "events": entries,
        },
    }
    for name, service in services.items():
        records = list(case_records(service, case_id, window_ids, since, until))
        part = service_part(settings, service, records, trusted, checkpoints_dir)
        files[f"services/{name}.json"] = part
        summary.records[name] = len(records)
        summary.chain_rows[name] = sum(len(p["chain"]) for p in part["proofs"])
        summary.unproven[name] = part["unproven"]
    files["manifest.json"] = {
        "format": BUNDLE_FORMAT, "case_id": str(case_id), "since": since and since.isoformat(),
        "until": until and until.isoformat(), "created_at": datetime.now(UTC).isoformat(),
        "services": list(services), "trusted_key_ids": sorted(trusted.keys),
    }
    _write(out, case_id, files)
    return summary


def _write(out: Path, case_id: UUID, files: Mapping[str, Any]) -> None:
    """Write the files (and the verifier) to a staging folder, then move it (or its zip) into place whole."""
    verifier = Path(bundle_verify.__file__).read_text(encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as staging:
        root = Path(staging) / "bundle"
        (root / "services").mkdir(parents=True)
        for name, content in files.items():
            (root / name).write_text(json.dumps(content, ensure_ascii=False, indent=1), encoding="utf-8")
        (root / "bundle_verify.py").write_text(verifier, encoding="utf-8")
        (root / "README.txt").write_text(README.format(case_id=case_id), encoding="utf-8")
        if out.suffix == ".zip":
            tmp_zip = Path(staging) / "bundle.zip"
            with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(root.rglob("*")):
                    if path.is_file():
                        archive.write(path, path.relative_to(root).as_posix())
            tmp_zip.replace(out)
        else:
            if out.exists():
                shutil.rmtree(out)
            root.replace(out)


def bundle_command(
    settings: Settings, case_id: UUID, out: Path, *, since: datetime | None = None, until: datetime | None = None,
    sign: bool = True,
) -> BundleSummary:
    """``huhang audit bundle``: build every service where the settings store it, write the bundle, close them."""
    built = {name: importlib.import_module(f"services.{name}.main").build(settings) for name in SERVICES}
    try:
        return build_bundle(settings, built, case_id, out, since=since, until=until, sign=sign)
    finally:
        for service in built.values():
            service.application.close()
            service.positions.engine.dispose()

"""The tamper check of one case, answered online (``GET /v1/cases/{case_id}/integrity``, issue 9).

The same proof an inspector gets from ``huhang audit bundle``, made in memory and checked at once: for every service
the case's stored events as stored (``huhang.bundle.case_records``), the chain rows linking them to a signed
checkpoint (``huhang.bundle.service_part``), verified by the offline verifier's own code
(``huhang.bundle_verify.verify_service_file``), and the case history checked against the verified records. Nothing
is signed or written here: a GET has no side effects, so the case's latest events may not be covered by a signed
checkpoint yet (the chainer signs every ``HUHANG_AUDIT_CHECKPOINT_INTERVAL_S``); they are checked against their
chain rows when chained, and listed plainly as not yet covered, which is not a problem.

Three things the bundle alone would not name, added here because an auditor reads the answer as "is this case
intact?":

- a stored event of the case altered beyond decoding (sealed per child: one bit changed and it no longer opens) is
  skipped by ``case_records`` (it cannot be attributed); and a deleted one is simply absent. So every chain row of
  the case's originators (the case itself and each aggregate a record of the case came from) is held against the
  store at its position: **DELETED** when nothing is stored there, **ALTERED** when what is stored is not what was
  chained;
- a signed checkpoint that disagrees with the chain (**CHAIN_REWRITTEN**: the chain table was recomputed after
  events were changed) would only make the case's records look "not yet covered"; it is named;
- a checkpoint whose signature does not verify with a trusted key (**BAD_SIGNATURE**).

Nothing is cached between calls: each answer reads the stores, the chains and the checkpoints again (the built
services are kept, not their contents). Problems carry kinds, services, positions, originator ids, versions and
event types: ids and codes, never stored content. Cost: the case's records are found the way the bundle finds
them, by reading each service's log once (decoded, mapped); at most ``max_records`` per service are checked, and
the answer says when the cap was reached. One check runs at a time in a process.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import itertools
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select

from huhang.audit import SERVICES
from huhang.bundle import case_records, service_part
from huhang.bundle_verify import BundleReport, chain_originator_id, verify_service_file
from huhang.chain import (
    ChainRow,
    ChainStore,
    chain_table,
    originator_display,
    originator_key,
    record_hash,
    state_sha256,
)
from huhang.checkpoints import CheckpointStore, TrustedKeys, log_name, publish_dir, read_published, trusted_keys
from huhang.settings import Settings
from huhang.sql import reading

logger = logging.getLogger(__name__)

MAX_RECORDS = 5000  # stored events of one case checked per service: beyond, the answer says it was capped
NOT_COVERED = "not yet covered by a signed checkpoint"

# The offline verifier's findings, in the vocabulary of ``huhang audit verify`` (huhang/audit.py), so that one word
# means one thing wherever an auditor reads it.
KIND_OF_FINDING = {
    "RECORD_ALTERED": "ALTERED",
    "RECORD_UNLINKED": "UNLINKED",
    "RECORD_UNPROVEN": "UNPROVEN",
    "CHAIN_ROW_ALTERED": "CHAIN_BROKEN",
    "LINK_BROKEN": "CHAIN_BROKEN",
    "NOT_AT_CHECKPOINT": "CHAIN_BROKEN",
    "BAD_CHECKPOINT": "BAD_SIGNATURE",
    "HISTORY_UNBACKED": "UNBACKED",
    "MALFORMED": "MALFORMED",
}


class CaseUnknown(Exception):
    """The case has no event on its timeline."""


@dataclass(frozen=True)
class IntegrityProblem:
    kind: str  # ALTERED, DELETED, CHAIN_BROKEN, CHAIN_REWRITTEN, BAD_SIGNATURE, UNBACKED, UNPROVEN, ...
    check: str  # the finding as the check that found it names it (RECORD_ALTERED, chain_vs_store, ...)
    service: str
    position: int | None
    originator_id: str | None
    originator_version: int | None
    event_type: str | None
    detail: str


@dataclass(frozen=True)
class CheckpointUsed:
    position: int
    time: str
    key_id: str
    head: str


@dataclass
class ServiceIntegrity:
    service: str
    log: str
    records: int = 0
    records_verified: int = 0
    chain_rows: int = 0
    chain_head: int = 0
    chain_head_hash: str = ""
    checkpoint: CheckpointUsed | None = None  # the latest signed checkpoint the case's records were checked against
    checkpoints: list[int] = field(default_factory=list)
    not_covered: list[int] = field(default_factory=list)  # chained, matching, but after the last checkpoint
    not_chained: list[int] = field(default_factory=list)  # after the chain's head: the chainer has not seen them yet
    capped: bool = False


@dataclass
class CaseIntegrityReport:
    case_id: UUID
    checked_at: datetime
    history_events: int
    services: list[ServiceIntegrity] = field(default_factory=list)
    problems: list[IntegrityProblem] = field(default_factory=list)
    max_records: int = MAX_RECORDS

    @property
    def verified(self) -> bool:
        return not self.problems

    @property
    def pending(self) -> int:
        return sum(len(s.not_covered) + len(s.not_chained) for s in self.services)

    @property
    def capped(self) -> bool:
        return any(s.capped for s in self.services)


def event_type_of(topic: str | None) -> str | None:
    """A stored event's type from its topic (``services.referral.domain:Referral.Received``: ``Referral.Received``)."""
    return None if not topic else topic.rsplit(":", 1)[-1]


class CaseIntegrity:
    """Checks one case at a time against the stores of every service (``huhang.audit.SERVICES``).

    ``services`` are the services built in this process (embedded: all of them); the others are built from the
    settings on first use, as ``huhang audit bundle`` builds them (distributed: intake's API reads every service's
    store)."""

    def __init__(
        self, settings: Settings, services: Mapping[str, Any], *, max_records: int = MAX_RECORDS,
        names: tuple[str, ...] = SERVICES,
    ) -> None:
        self.settings = settings
        self.names = names
        self.max_records = max_records
        self._services = {n: s for n, s in services.items() if n in names}
        self._built: list[Any] = []
        self._build_lock = threading.Lock()
        self.running = threading.Lock()  # one check at a time per process

    def services(self) -> dict[str, Any]:
        with self._build_lock:
            for name in self.names:
                if name not in self._services:
                    built = importlib.import_module(f"services.{name}.main").build(self.settings)
                    self._services[name] = built
                    self._built.append(built)
            return {name: self._services[name] for name in self.names}

    def close(self) -> None:
        """Close what this object built (not the services it was given)."""
        for service in self._built:
            service.application.close()
            service.positions.engine.dispose()
        self._built.clear()

    def check(self, case_id: UUID) -> CaseIntegrityReport:
        now = datetime.now(UTC)
        history = self._services["intake"].timeline.history.history(str(case_id), now)
        if history is None:
            raise CaseUnknown(str(case_id))
        services = self.services()
        events = list(history.events)
        event_ids = {str(e["event_id"]) for e in events}
        related = {u.hex for u in ids_in(history.case)}  # referrals, reports, the child...: aggregates of the case
        trusted = trusted_keys(self.settings)
        report = CaseIntegrityReport(case_id, now, len(events), max_records=self.max_records)
        backed: set[str] = set()
        named: set[str] = set()
        for service in services.values():
            part = _ServiceCheck(self.settings, service, case_id, trusted, self.max_records, related)
            result, ok_ids, failed_ids = part.run(event_ids, report)
            report.services.append(result)
            backed |= ok_ids
            named |= failed_ids
        for event in events:
            event_id = str(event["event_id"])
            if event_id not in backed and event_id not in named:
                report.problems.append(IntegrityProblem(
                    "UNBACKED", "HISTORY_UNBACKED", str(event.get("service")), None, None, None,
                    str(event.get("type")), f"history event {event_id} was produced by no stored event found",
                ))
        report.problems.sort(key=lambda p: (p.service, p.position if p.position is not None else -1, p.kind))
        logger.info("integrity of case %s: %d problems, %d records pending", case_id, len(report.problems),
                    report.pending)
        return report


def ids_in(document: Any) -> set[UUID]:
    """The ids a case file names (``referral_id``, ``report_id``, ``child_id``, ``merged_child_ids``...): the
    aggregates whose stored events may be the case's even when one of them no longer decodes."""
    found: set[UUID] = set()
    if isinstance(document, Mapping):
        for key, value in document.items():
            if isinstance(key, str) and (key.endswith("_id") or key.endswith("_ids")):
                for v in value if isinstance(value, list) else [value]:
                    with contextlib.suppress(ValueError):
                        found.add(UUID(str(v)))
            elif isinstance(value, Mapping | list):
                found |= ids_in(value)
    elif isinstance(document, list):
        for item in document:
            found |= ids_in(item)
    return found


class _ServiceCheck:
    """One service's part: the bundle's records and proofs, verified; then the chain against the store."""

    def __init__(
        self, settings: Settings, service: Any, case_id: UUID, trusted: TrustedKeys, cap: int, related: set[str],
    ) -> None:
        self.related = related
        self.settings = settings
        self.service = service
        self.name: str = service.name
        self.case_id = case_id
        self.trusted = trusted
        self.cap = cap
        self.engine = service.positions.engine
        self.chain = ChainStore(self.engine)
        self.log = log_name(settings, self.name)

    def run(self, event_ids: set[str], report: CaseIntegrityReport) -> tuple[ServiceIntegrity, set[str], set[str]]:
        result = ServiceIntegrity(self.name, self.log)
        head, head_hash = self.chain.head()
        result.chain_head, result.chain_head_hash = head, head_hash.hex()
        found = list(itertools.islice(case_records(self.service, self.case_id, event_ids, None, None), self.cap + 1))
        result.capped = len(found) > self.cap
        records = found[: self.cap]
        part = service_part(self.settings, self.service, records, self.trusted)
        uncovered = set(part["unproven"])
        covered = [r for r in records if r["position"] not in uncovered]
        verifier = BundleReport(str(self.case_id))
        checked, backed, failed = verify_service_file({**part, "records": covered}, self.trusted.keys, verifier)
        where = {r["position"]: r for r in records}
        for finding in verifier.findings:
            record = where.get(finding.position) if finding.position is not None else None
            report.problems.append(IntegrityProblem(
                KIND_OF_FINDING.get(finding.what, finding.what), finding.what, self.name, finding.position,
                None if record is None else str(record["originator_id"]),
                None if record is None else int(record["originator_version"]),
                None if record is None else event_type_of(record["topic"]), finding.detail,
            ))
        result.records = len(records)
        result.records_verified = checked.records_verified
        result.chain_rows = checked.chain_rows
        result.checkpoints = sorted(checked.checkpoints)
        used = {int(p["checkpoint"]["position"]): p["checkpoint"] for p in part["proofs"]}
        if used:
            latest = used[max(used)]
            result.checkpoint = CheckpointUsed(int(latest["position"]), str(latest["time"]), str(latest["key_id"]),
                                               str(latest["head"]))
        for record in records:
            if record["position"] in uncovered:
                ok = self._check_uncovered(record, head, result, report)
                (backed if ok else failed).update(str(e) for e in record.get("event_ids", []))
        if self._check_originators(records, report):
            result.capped = True
        self._check_checkpoints(min((r["position"] for r in records), default=None), report)
        return result, backed, failed - backed

    def _problem(self, report: CaseIntegrityReport, kind: str, check: str, row: Any, detail: str) -> None:
        report.problems.append(IntegrityProblem(
            kind, check, self.name, row.position, originator_display(row.originator_id), row.originator_version,
            event_type_of(row.topic), detail,
        ))

    def _check_uncovered(
        self, record: Mapping[str, Any], head: int, result: ServiceIntegrity, report: CaseIntegrityReport,
    ) -> bool:
        """A record after the last signed checkpoint: held against its chain row if it is chained."""
        position = int(record["position"])
        if position > head:
            result.not_chained.append(position)
            return True
        row = self.chain.row_at(position)
        state = base64.b64decode(record["state_b64"])
        oid = chain_originator_id(str(record["originator_id"]), str(record.get("originator_id_type", "uuid")))
        version, topic = int(record["originator_version"]), str(record["topic"])
        if row is None:
            report.problems.append(IntegrityProblem(
                "INSERTED", "chain_vs_store", self.name, position, str(record["originator_id"]), version,
                event_type_of(topic), "a stored event at or below the chain's head that was never chained",
            ))
            return False
        if record_hash(self.name, position, oid, version, topic, state_sha256(state), row.prev_hash) != row.hash:
            self._problem(report, "ALTERED", "chain_vs_store", row, "the stored event is not what was chained "
                          f"({NOT_COVERED} yet: the chain row itself is not signed)")
            return False
        result.not_covered.append(position)
        return True

    def _check_originators(self, records: list[dict[str, Any]], report: CaseIntegrityReport) -> bool:
        """Every chained record of the case's originators, held against the store: what was deleted, and what was
        altered so that it no longer decodes (``case_records`` cannot attribute it, so the bundle leaves it out).
        True when there were more such rows than the cap allows (the rest were not held against the store)."""
        originators = {self.case_id.hex} | self.related | {
            chain_originator_id(str(r["originator_id"]), str(r.get("originator_id_type", "uuid"))) for r in records
        }
        seen = {int(r["position"]) for r in records}
        c = chain_table.c
        query = select(c.position, c.originator_id, c.originator_version, c.topic, c.state_sha256, c.prev_hash,
                       c.hash).where(c.originator_id.in_(sorted(originators))).order_by(c.position).limit(
                           self.cap * 4)
        with reading(self.engine) as conn:
            rows = [ChainRow._make(row) for row in conn.execute(query).all()]
        truncated = len(rows) >= self.cap * 4
        recorder = self.service.application.recorder
        for row in rows:
            if row.position in seen:
                continue
            try:
                stored = recorder.select_notifications(row.position, 1, stop=row.position)
            except Exception as exc:
                self._problem(report, "ALTERED", "chain_vs_store", row,
                              f"the stored event cannot be read any more ({type(exc).__name__})")
                continue
            if not stored:
                self._problem(report, "DELETED", "chain_vs_store", row, "a chained event is no longer stored")
                continue
            n = stored[0]
            oid = originator_key(n.originator_id)
            digest = record_hash(self.name, n.id, oid, n.originator_version, n.topic, state_sha256(n.state),
                                 row.prev_hash)
            if digest != row.hash:
                changed = [what for what, same in (
                    ("state", state_sha256(n.state) == row.state_sha256), ("topic", n.topic == row.topic),
                    ("originator id", oid == row.originator_id),
                    ("version", n.originator_version == row.originator_version),
                ) if not same]
                self._problem(report, "ALTERED", "chain_vs_store", row,
                              f"its {' and '.join(changed) or 'content'} is not what was chained")
        return truncated

    def _check_checkpoints(self, first: int | None, report: CaseIntegrityReport) -> None:
        """Signed checkpoints of this log that a trusted key does not verify, and those that disagree with the chain
        at or after the case's first record (the chain was rewritten: the proof of those records is void)."""
        sources = [*CheckpointStore(self.engine).read(), *read_published(publish_dir(self.settings), self.log)]
        seen: set[tuple[int, str]] = set()
        for sourced in sources:
            cp = sourced.checkpoint
            if cp is None:
                report.problems.append(IntegrityProblem(
                    "BAD_SIGNATURE", "checkpoint", self.name, None, None, None, None,
                    f"a published checkpoint cannot be read ({sourced.error})",
                ))
                continue
            if (cp.log, cp.service) != (self.log, self.name) or (cp.position, cp.key_id) in seen:
                continue
            seen.add((cp.position, cp.key_id))
            why = self.trusted.check(cp)
            if why is not None:
                report.problems.append(IntegrityProblem(
                    "BAD_SIGNATURE", "checkpoint", self.name, cp.position, None, None, None, why))
                continue
            if first is None or cp.position < first:
                continue
            row = self.chain.row_at(cp.position)
            if row is None or row.hash != cp.head:
                report.problems.append(IntegrityProblem(
                    "CHAIN_REWRITTEN", "checkpoint", self.name, cp.position, None, None, None,
                    f"the chain no longer agrees with the checkpoint signed at {cp.time} (key {cp.key_id}): it was "
                    "rewritten after stored events changed",
                ))

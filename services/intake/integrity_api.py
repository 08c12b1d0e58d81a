"""``GET /v1/cases/{case_id}/integrity``: the tamper check of one case (issue 9), for auditors and the lead and
supervising agencies. The work is ``huhang.integrity`` (the audit bundle made in memory and verified with the
offline verifier's own code); this module is its HTTP face."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from huhang.access.guards import FORBIDDEN_DOC, CaseIntegrityReader
from huhang.integrity import NOT_COVERED, CaseIntegrity, CaseIntegrityReport, CaseUnknown
from huhang.problems import NotFound, problem_doc

router = APIRouter(prefix="/v1", tags=["audit"])

BUSY_WAIT_S = 30.0  # a check waits this long for the one before it, then answers 503
BUSY_RETRY_AFTER_S = 10


def get_integrity(request: Request) -> CaseIntegrity:
    checker: CaseIntegrity = request.app.state.case_integrity
    return checker


IntegrityDep = Annotated[CaseIntegrity, Depends(get_integrity)]


class CheckpointPublic(BaseModel):
    position: int = Field(description="The log position whose chain head the checkpoint signs.")
    time: datetime = Field(description="When it was signed (UTC).")
    key_id: str = Field(description="The signing key's id: the first 16 hex digits of the SHA-256 of its public key.")
    head: str = Field(description="The signed chain head (hex).")


class ServiceIntegrityPublic(BaseModel):
    service: str
    log: str = Field(description="The log's name in this deployment (its schema name).")
    records: int = Field(description="Stored events of the case found in this service's log, and checked.")
    records_verified: int = Field(description="Of those, how many link to a signed checkpoint and verify.")
    chain_rows: int = Field(description="Chain rows checked to link them to their checkpoints.")
    chain_head: int = Field(description="The last chained position of the log.")
    chain_head_hash: str = Field(description="Its hash (hex); empty when nothing is chained yet.")
    checkpoint: CheckpointPublic | None = Field(
        description="The latest signed checkpoint the case's records were checked against; null when none covers "
        "them yet.")
    checkpoints: list[int] = Field(description="Positions of every signed checkpoint used.")
    not_covered: list[int] = Field(
        description=f"Positions of the case's stored events that are chained and match their chain rows but are "
        f"{NOT_COVERED} (signed every HUHANG_AUDIT_CHECKPOINT_INTERVAL_S). Not a problem: the next checkpoint "
        "covers them.")
    not_chained: list[int] = Field(description="Positions after the chain's head: not yet chained at all.")
    capped: bool = Field(description="More stored events of the case than the cap: only the first were checked.")


class IntegrityProblemPublic(BaseModel):
    kind: str = Field(description="ALTERED (a stored event is not what was chained), DELETED (a chained event is no "
                      "longer stored), INSERTED (stored but never chained), CHAIN_BROKEN (the chain table edited), "
                      "CHAIN_REWRITTEN (the chain no longer agrees with a signed checkpoint), BAD_SIGNATURE (a "
                      "checkpoint no trusted key verifies), UNPROVEN (a record whose link to its checkpoint does not "
                      "verify), UNLINKED, UNBACKED (a history event no stored event produced), MALFORMED.",
                      examples=["ALTERED"])
    check: str = Field(description="The finding as the check that made it names it (the offline verifier's "
                       "RECORD_ALTERED, LINK_BROKEN...; chain_vs_store; checkpoint; HISTORY_UNBACKED).")
    service: str
    position: int | None = Field(description="The log position, when the problem has one.")
    originator_id: str | None = Field(description="The aggregate the stored event belongs to (an id).")
    originator_version: int | None
    event_type: str | None = Field(description="The stored event's type (or the history event's type).")
    detail: str = Field(description="What does not verify, in words (ids and positions only).")


class CaseIntegrityPublic(BaseModel):
    case_id: UUID
    checked_at: datetime
    verified: bool = Field(description="True when no problem was found. Records not yet covered by a signed "
                           "checkpoint do not make it false: see `pending`.")
    complete: bool = Field(description="True when every stored event of the case was checked and is covered by a "
                           "signed checkpoint (nothing pending, nothing capped).")
    pending: int = Field(description=f"Stored events of the case {NOT_COVERED} (or not yet chained).")
    pending_note: str | None = Field(description="The same, in words; null when nothing is pending.")
    capped: bool
    max_records: int = Field(description="The most stored events of the case checked per service.")
    history_events: int = Field(description="Events on the case's history, each checked to come from a verified "
                                "stored event.")
    services: list[ServiceIntegrityPublic]
    problems: list[IntegrityProblemPublic]


def integrity_public(report: CaseIntegrityReport) -> CaseIntegrityPublic:
    pending = report.pending
    services = []
    for s in report.services:
        cp = s.checkpoint
        services.append(ServiceIntegrityPublic(
            service=s.service, log=s.log, records=s.records, records_verified=s.records_verified,
            chain_rows=s.chain_rows, chain_head=s.chain_head, chain_head_hash=s.chain_head_hash,
            checkpoint=None if cp is None else CheckpointPublic(
                position=cp.position, time=datetime.fromisoformat(cp.time), key_id=cp.key_id, head=cp.head),
            checkpoints=s.checkpoints, not_covered=s.not_covered, not_chained=s.not_chained, capped=s.capped,
        ))
    return CaseIntegrityPublic(
        case_id=report.case_id, checked_at=report.checked_at, verified=report.verified,
        complete=not pending and not report.capped, pending=pending,
        pending_note=f"{pending} stored event{'s' if pending != 1 else ''} of the case {NOT_COVERED} yet."
        if pending else None,
        capped=report.capped, max_records=report.max_records, history_events=report.history_events,
        services=services, problems=[IntegrityProblemPublic(**vars(p)) for p in report.problems],
    )


@router.get(
    "/cases/{case_id}/integrity",
    response_model=CaseIntegrityPublic,
    responses={**problem_doc(404, "The case has no event"), **FORBIDDEN_DOC,
               **problem_doc(503, "Another tamper check is running in this process; retry after Retry-After")},
    summary="The tamper check of one case: do its stored events verify against the signed hash chain?",
)
def get_case_integrity(case_id: UUID, checker: IntegrityDep, access: CaseIntegrityReader) -> CaseIntegrityPublic:
    """Builds the case's audit bundle in memory (what `huhang audit bundle` exports: the case's stored events from
    every service, as stored, and the hash-chain rows linking each to a signed checkpoint) and verifies it with the
    offline verifier's own code, then holds every chained event of the case's aggregates against the store (to
    name one deleted, or altered beyond decoding) and the case history against the verified events.

    `verified` is false when any problem is found; each names its kind, service, log position, aggregate id,
    version and event type (ids and codes, no personal data). Events after the last signed checkpoint are listed as
    not yet covered by one (`pending`), checked against their chain rows when chained. Nothing is cached or signed:
    every call reads the stores again. Cost: each service's log is read once; at most `max_records` stored events
    of the case are checked per service (`capped` says when there were more). One check at a time per process.
    Reading it is recorded in the access log as a read of the case."""
    if not checker.running.acquire(timeout=BUSY_WAIT_S):
        raise HTTPException(503, "Another tamper check is running; try again shortly.",
                            headers={"Retry-After": str(BUSY_RETRY_AFTER_S)})
    try:
        report = checker.check(case_id)
    except CaseUnknown:
        raise NotFound(f"case {case_id} has no event") from None
    finally:
        checker.running.release()
    return integrity_public(report)

"""The province sync export (format: ``contracts.province_sync``), read from intake's own event log.

The cursor is a position in intake's application log (its notification ids): every change of a child's file is an
event there, so "what changed since the cursor" is "which children the events after it touched", and the export
can never miss one or go back. A page scans at most ``scan`` log entries and answers each touched child once, in
its current state; the next cursor is the last entry scanned (a page of entries about reports or grants answers no
record but still moves the cursor on).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Protocol
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from contracts.cases import care_case_id
from contracts.province_sync import MEDIA_TYPE, ChildIdentity, ChildSyncRecord, SyncPageEnd
from huhang.access.guards import FORBIDDEN_DOC, ProvinceSync
from huhang.problems import PROBLEM_RESPONSES, Gone, NotFound

CHILD_TOPIC = ":Child."
ERASURE_TOPIC = ":Erasure."


class IntakeLog(Protocol):
    """What the export needs of intake's application."""

    @property
    def recorder(self) -> Any: ...

    @property
    def mapper(self) -> Any: ...

    def get_child(self, child_id: UUID) -> Any: ...


@dataclass(frozen=True)
class Page:
    records: list[ChildSyncRecord]
    end: SyncPageEnd

    def lines(self) -> Iterator[str]:
        for record in self.records:
            yield record.model_dump_json() + "\n"
        yield self.end.model_dump_json() + "\n"


class ProvinceExport:
    def __init__(self, log: IntakeLog, scan: int = 1000) -> None:
        self.log = log
        self.scan = scan

    def page(self, cursor: int, limit: int) -> Page:
        """Up to ``limit`` children touched after ``cursor`` (scanning at most ``scan`` log entries)."""
        touched: dict[UUID, int] = {}  # child -> position of its last change in this page
        position = cursor
        has_more = False
        batch = self.log.recorder.select_notifications(cursor + 1, self.scan)
        for n in batch:
            child_id = self._child_of(n)
            if child_id is not None and child_id not in touched and len(touched) == limit:
                has_more = True
                break
            position = n.id
            if child_id is not None:
                touched.pop(child_id, None)
                touched[child_id] = n.id
        has_more = has_more or len(batch) == self.scan
        records = [self._record(child_id, at) for child_id, at in touched.items()]
        end = SyncPageEnd(cursor=cursor, next_cursor=position, has_more=has_more, records=len(records))
        return Page(records, end)

    def _child_of(self, notification: Any) -> UUID | None:
        topic: str = notification.topic
        if CHILD_TOPIC in topic:
            return UUID(str(notification.originator_id))
        if ERASURE_TOPIC in topic:
            erased: UUID = self.log.mapper.to_domain_event(notification).erased_child_id
            return erased
        return None

    def _record(self, child_id: UUID, position: int) -> ChildSyncRecord:
        try:
            child = self.log.get_child(child_id)
        except (Gone, NotFound):
            return ChildSyncRecord(
                change="erased", child_id=child_id, care_case_id=care_case_id(child_id), position=position,
                identity=None, township=None, village=None, categories=(), category_reasons=(), case_ids=(),
                merged_into=None,
            )
        return ChildSyncRecord(
            change="file", child_id=child_id, care_case_id=care_case_id(child_id), position=position,
            identity=ChildIdentity(name=child.name, sex=child.sex, birth_date=child.birth_date,
                                   id_card_number=child.id_card_number),
            township=child.township, village=child.village, categories=tuple(child.all_categories),
            category_reasons=tuple(child.category_reasons), case_ids=tuple(child.case_ids),
            merged_into=child.merged_into,
        )


def get_export(request: Request) -> ProvinceExport:
    return ProvinceExport(request.app.state.intake)


router = APIRouter(prefix="/v1", tags=["province sync"])


@router.get(
    "/province-sync/children",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPE: {}}, "description": "JSON lines: `ChildSyncRecord`s, then one "
                     "`SyncPageEnd` (schema: contracts/schemas/province-sync-children.v1.json)."},
               **PROBLEM_RESPONSES, **FORBIDDEN_DOC},
    summary="Children's files changed since a cursor, for the provincial system (JSON lines, v1)",
)
def province_sync_children(
    export: Annotated[ProvinceExport, Depends(get_export)],
    _: ProvinceSync,
    cursor: Annotated[int, Query(ge=0, description="`next_cursor` of the last page applied; 0 from the start.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many children.")] = 200,
) -> StreamingResponse:
    """Format `huhang.province-sync.children.v1`: each changed child once, in its current state (identity, place,
    categories, cases; merged and erased files said so), then the page end with `next_cursor` and `has_more`.
    The lead agency's system only."""
    page = export.page(cursor, limit)
    return StreamingResponse(page.lines(), media_type=MEDIA_TYPE, headers={
        "Huhang-Next-Cursor": str(page.end.next_cursor),
        "Link": f'</v1/province-sync/children?cursor={page.end.next_cursor}&limit={limit}>; rel="next"',
    })

"""The annual archive spot check over HTTP (issue 8; the domain: services/indicators/spot_checks.py).

- A supervisor of civil affairs draws the sample (``POST /v1/spot-checks``); the seed is recorded (generated when
  not given), so anyone can draw the same sample again from the seed and ``as_of``.
- Civil affairs records each sampled file's checklist (``POST .../files/{child_id}``); newly failed items route a
  follow-up to the township.
- The sample and progress (``GET``), and the summary per township and item as JSON or CSV (``GET .../summary``).
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from huhang.access.guards import FORBIDDEN_DOC, SpotChecker, SpotCheckLead, SpotCheckReader
from huhang.problems import PROBLEM_RESPONSES, problem_doc
from services.indicators.spot_check_schemas import (
    FileResults,
    FileResultView,
    ItemAnswer,
    ItemSummaryView,
    SampledFile,
    SpotCheckCreate,
    SpotCheckSummary,
    SpotCheckView,
    TownshipSample,
    TownshipSummaryView,
)
from services.indicators.spot_checks import (
    ChildRoster,
    ItemResult,
    ItemSummary,
    SpotCheck,
    SpotCheckFile,
    SpotChecks,
)

RESPONSES = {**PROBLEM_RESPONSES, **FORBIDDEN_DOC, **problem_doc(404, "No such spot check, or not in its sample")}
CSV_DOC: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {}, "text/csv": {}},
                 "description": "The summary (JSON, or CSV with `format=csv`)"}}


def install(api: FastAPI, application: object, roster: ChildRoster) -> None:
    """Put the spot-check desk into ``api.state`` (called by the indicators service's ``bind``)."""
    api.state.spot_checks = SpotChecks(application, roster)


def get_spot_checks(request: Request) -> SpotChecks:
    return request.app.state.spot_checks


SpotChecksDep = Annotated[SpotChecks, Depends(get_spot_checks)]
router = APIRouter(prefix="/v1", tags=["spot checks"])


def _view(desk: SpotChecks, check: SpotCheck) -> SpotCheckView:
    files = desk.files(check)
    townships = [
        TownshipSample(
            township=township, registered=check.populations.get(township, 0),
            files=[
                SampledFile(child_id=UUID(row["child_id"]), village=row["village"],
                            checked=UUID(row["child_id"]) in files,
                            failed_items=sorted(files[UUID(row["child_id"])].failed)
                            if UUID(row["child_id"]) in files else [])
                for row in rows
            ],
        )
        for township, rows in check.samples.items()
    ]
    return SpotCheckView(
        spot_check_id=check.id, year=check.year, seed=check.seed, as_of=check.as_of, sample_size=check.size,
        sample_rate=check.rate, checklist_version=check.checklist_version, drawn_by_agency=check.drawn_by_agency,
        sampled=sum(len(t.files) for t in townships), checked=len(files), townships=townships,
    )


@router.post("/spot-checks", response_model=SpotCheckView, status_code=201, responses=RESPONSES,
             summary="Draw the annual archive spot check: a reproducible random sample of files per township")
def draw_spot_check(body: SpotCheckCreate, desk: SpotChecksDep, principal: SpotCheckLead) -> SpotCheckView:
    check = desk.draw(
        year=body.year, townships=body.townships, size=body.sample_size, rate=body.sample_rate, seed=body.seed,
        as_of=body.as_of, drawn_by=principal.subject, agency=principal.agency.value,
    )
    return _view(desk, check)


@router.get("/spot-checks/{spot_check_id}", response_model=SpotCheckView, responses=RESPONSES,
            summary="A spot check: its seed, sample and progress")
def spot_check(spot_check_id: UUID, desk: SpotChecksDep, _: SpotCheckReader) -> SpotCheckView:
    return _view(desk, desk.get(spot_check_id))


@router.post("/spot-checks/{spot_check_id}/files/{child_id}", response_model=FileResultView, responses=RESPONSES,
             summary="Record a sampled file's checklist (a failed item routes a follow-up to the township)")
def record_file(spot_check_id: UUID, child_id: UUID, body: FileResults, desk: SpotChecksDep,
                principal: SpotChecker) -> FileResultView:
    results: dict[str, tuple[ItemResult, str]] = {}
    for answer in body.results:
        results[answer.item] = (answer.result, answer.note)
    checked = desk.record(spot_check_id, child_id, results, body.checked_on, principal.subject,
                          principal.agency.value)
    return _file_view(checked)


def _file_view(checked: SpotCheckFile) -> FileResultView:
    assert checked.checked_on is not None
    return FileResultView(
        spot_check_id=checked.spot_check_id, child_id=checked.child_id, township=checked.township,
        village=checked.village, checked_on=checked.checked_on,
        results=[ItemAnswer(item=code, result=ItemResult(r["result"]), note=r["note"])
                 for code, r in checked.results.items()],
        failed_items=sorted(checked.failed), follow_up_items=list(checked.last_newly_failed),
    )


def _item_view(desk: SpotChecks, item: ItemSummary) -> ItemSummaryView:
    label = desk.checklist.item(item.code)
    return ItemSummaryView(
        item=item.code, label_zh=label.zh if label else item.code, label_en=label.en if label else item.code,
        passed=item.passed, failed=item.failed, not_applicable=item.not_applicable, pass_rate=item.pass_rate,
    )


@router.get("/spot-checks/{spot_check_id}/summary", response_model=SpotCheckSummary,
            responses={**RESPONSES, **CSV_DOC}, summary="Pass rates per township and checklist item (JSON or CSV)")
def summary(
    spot_check_id: UUID, desk: SpotChecksDep, _: SpotCheckReader,
    format: Annotated[Literal["json", "csv"], Query(description="`csv` for a spreadsheet")] = "json",
) -> Response:
    check = desk.get(spot_check_id)
    townships = desk.summary(check)
    codes = desk.checklist.codes
    total = [
        ItemSummary(code, passed=sum(t.items[i].passed for t in townships),
                    failed=sum(t.items[i].failed for t in townships),
                    not_applicable=sum(t.items[i].not_applicable for t in townships))
        for i, code in enumerate(codes)
    ]
    body = SpotCheckSummary(
        spot_check_id=check.id, year=check.year, seed=check.seed,
        townships=[TownshipSummaryView(township=t.township, sampled=t.sampled, checked=t.checked,
                                       files_with_failures=t.files_with_failures,
                                       items=[_item_view(desk, i) for i in t.items]) for t in townships],
        items=[_item_view(desk, i) for i in total],
    )
    if format == "json":
        return JSONResponse(body.model_dump(mode="json"))
    return _csv(body)


def _csv(body: SpotCheckSummary) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["township", "item", "label_zh", "passed", "failed", "not_applicable", "pass_rate", "sampled",
                     "checked", "files_with_failures"])
    rows = [(t.township, t.sampled, t.checked, t.files_with_failures, t.items) for t in body.townships]
    rows.append(("全部", sum(t.sampled for t in body.townships), sum(t.checked for t in body.townships),
                 sum(t.files_with_failures for t in body.townships), body.items))
    for township, sampled, checked, failing, items in rows:
        for item in items:
            rate = "" if item.pass_rate is None else f"{item.pass_rate:.4f}"
            writer.writerow([township, item.item, item.label_zh, item.passed, item.failed, item.not_applicable, rate,
                             sampled, checked, failing])
    # A BOM, so that Excel (as used in China) opens the UTF-8 file with its Chinese labels intact.
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="spot-check-{body.spot_check_id}-summary.csv"'})

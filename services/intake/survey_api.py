"""The survey import over HTTP: ``POST /v1/survey-imports`` (a CSV or XLSX roster as a multipart upload)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field

from contracts.agencies import Agency
from huhang.access.guards import FORBIDDEN_DOC, Creator, acting_for
from huhang.problems import PROBLEM_JSON, PROBLEM_RESPONSES
from huhang.web import UPLOAD
from services.intake.application import IntakeApplication
from services.intake.survey import COLUMNS, CollectedErrors, ImportSummary, SurveyImport

MAX_ERRORS_IN_ANSWER = 10_000

router = APIRouter(prefix="/v1", tags=["survey import (摸底排查)"])


def get_intake(request: Request) -> IntakeApplication:
    return request.app.state.intake


IntakeDep = Annotated[IntakeApplication, Depends(get_intake)]


class SurveyUpload(BaseModel):
    """A survey roster to import, and the agency importing it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"file": "虹桥镇摸底排查2026.xlsx", "agency": "civil_affairs"}]},
    )

    file: UploadFile = Field(description="The roster: .xlsx (first sheet) or .csv (UTF-8 or GB18030).")
    agency: Agency = Field(default=Agency.civil_affairs, description="The agency importing the roster.")


class SurveyRowError(BaseModel):
    row: int = Field(description="The row number as in the file (the header row and any title rows count).")
    field: str = Field(description="The column key, or `row` for the row as a whole.")
    column: str = Field(description="The column's header as written in the file.")
    reason: str


class SurveyImportPublic(BaseModel):
    import_id: str = Field(description="SHA-256 of the file: the same file always has the same import id.")
    file_format: str
    agency: Agency
    header_row: int
    ignored_columns: list[str] = Field(description="Headers not recognised: their values were not imported.")
    rows: int = Field(description="Data rows read (blank rows not counted).")
    imported_new: int = Field(description="Children registered for the first time (a new file).")
    updated: int = Field(description="Children already registered whose facts or categories changed.")
    unchanged: int = Field(description="Children already registered with nothing new (e.g. a re-import).")
    duplicates_flagged: int = Field(description="Rows whose child probably duplicates another: for a person.")
    rejected: int = Field(description="Rows left out: see `errors`.")
    changed: bool = Field(description="Whether the import changed anything (false when the same file comes again).")
    seconds: float
    errors: list[SurveyRowError] = Field(description="Why each rejected row was left out, field by field.")
    errors_left_out: int = Field(description=f"Error lines beyond the first {MAX_ERRORS_IN_ANSWER} not shown.")


def _columns_doc() -> str:
    lines = []
    for column in COLUMNS:
        required = " **required**" if column.required else ""
        extra = f": {column.description}" if column.description else ""
        lines.append(f"- `{column.key}` / {' / '.join(column.headers)}{required}{extra}")
    return "\n".join(lines)


@router.post(
    "/survey-imports",
    status_code=status.HTTP_201_CREATED,
    response_model=SurveyImportPublic,
    responses={
        **PROBLEM_RESPONSES,
        **FORBIDDEN_DOC,
        200: {"model": SurveyImportPublic, "description": "Nothing changed: every row was already on file"},
        413: {"description": "The file is larger than HUHANG_MAX_UPLOAD_BYTES (default 50 MB)",
              "content": {PROBLEM_JSON: {}}},
    },
    summary="Import a survey roster (摸底排查)",
    description=(
        "Registers every valid row's child through the same path as any registration (duplicate matching, "
        "derived categories, one child one file). Bad rows come back in `errors` (row, field, column, reason) "
        "while good rows import. A file missing a required column is refused as a whole (422 naming the "
        "column). Importing the same file again changes nothing: answered 200 with `changed: false`. "
        "Uploads up to `HUHANG_MAX_UPLOAD_BYTES` (default 50 MB).\n\nColumns (English key or Chinese header; "
        "values in Chinese or as codes; dates as YYYY-MM-DD, YYYY/M/D, YYYY年M月D日 or Excel dates):\n\n"
        + _columns_doc()
    ),
    openapi_extra={UPLOAD: True},
)
def import_survey(
    upload: Annotated[SurveyUpload, Form(media_type="multipart/form-data")],
    intake: IntakeDep,
    response: Response,
    access: Creator,
) -> SurveyImportPublic:
    acting_for(access.principal, upload.agency, "agency")
    errors = CollectedErrors(limit=MAX_ERRORS_IN_ANSWER)
    job = SurveyImport(intake.register_children, agency=upload.agency.value)
    summary = job.run(upload.file.file, errors)
    if not summary.changed:
        response.status_code = status.HTTP_200_OK
    return summary_public(summary, errors)


def summary_public(summary: ImportSummary, errors: CollectedErrors) -> SurveyImportPublic:
    fields: dict[str, Any] = {
        "import_id": summary.import_id, "file_format": summary.file_format, "agency": summary.agency,
        "header_row": summary.header_row, "ignored_columns": list(summary.ignored_columns), "rows": summary.rows,
        "imported_new": summary.imported_new, "updated": summary.updated, "unchanged": summary.unchanged,
        "duplicates_flagged": summary.duplicates_flagged, "rejected": summary.rejected, "changed": summary.changed,
        "seconds": round(summary.seconds, 3),
    }
    return SurveyImportPublic(
        **fields,
        errors=[SurveyRowError(row=p.row, field=p.field, column=p.column, reason=p.reason) for p in errors.problems],
        errors_left_out=errors.left_out,
    )

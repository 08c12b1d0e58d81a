"""Survey import (摸底排查): a CSV or XLSX roster of children, read as a stream, validated row by row, registered in
batches through the same path as any registration (``IntakeApplication.register_children``: duplicate matching,
derived categories, one child one file).

The roster: one row per child under one header row (on the first sheet, the first of the first rows that names
every required column; title rows above it are skipped). Headers are accepted in Chinese or as the English keys of
``COLUMNS``; values in Chinese (男/女, 外出务工, 是/否, ...) or as codes. Dates as YYYY-MM-DD, YYYY/M/D,
YYYY.M.D, YYYY年M月D日, YYYYMMDD or Excel date cells. CSV in UTF-8 (with or without BOM) or GB18030 (what
Excel saves in China).

- A file without a required column, or that is neither CSV nor XLSX, is refused as a whole (422, the column named).
- A bad row is left out and reported (row number as in the file, field, column header, reason); good rows import.
- The import id is the SHA-256 of the file; each row is registered with source ``survey:<import id>:<row>``. Importing
  the same file again changes nothing (``register_children`` is idempotent on identical facts) and says so.
- Reasons never repeat a personal value (a name, an identity number, a date): only coded values are echoed.
"""

from __future__ import annotations

import codecs
import csv
import gc
import hashlib
import io
import itertools
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from pydantic import ValidationError

from contracts.agencies import Agency
from huhang.problems import DomainError, FieldError, Unprocessable, validation_errors
from services.intake.application import ChildFacts
from services.intake.facts import (
    CaregiverRelation,
    ChildFileFacts,
    DifficultyNeed,
    Disability,
    EntrustedCaregiver,
    Guardian,
    GuardianRelation,
    GuardianshipFindingSource,
    GuardianshipSituation,
    GuardianshipSituationKind,
    GuardianStatus,
    NeedKind,
    NeedSource,
    School,
)
from services.intake.registry import RegisterChild, Registration
from services.intake.schemas import eighteenth_birthday

BATCH_ROWS = 2000  # rows per register_children call, saved in chunks of 500 (the next prepared while one saves)
HEADER_SEARCH_ROWS = 10  # title rows above the header row are skipped, up to this many
MAX_TEXT = 200
_CHUNK = 1 << 20

FileFormat = Literal["csv", "xlsx"]


# --------------------------------------------------------------------------------------------- the roster's columns


@dataclass(frozen=True)
class Column:
    key: str  # the English key, also accepted as a header
    headers: tuple[str, ...]  # Chinese headers accepted (the first is the documented one)
    required: bool = False
    description: str = ""

    @property
    def label(self) -> str:
        return f"{self.headers[0]} ({self.key})"


def _parent_columns(who: str, zh: str) -> tuple[Column, ...]:
    return (
        Column(f"{who}_status", (f"{zh}状况", f"{zh}情况", f"{zh}状态"),
               description="在家/外出务工/死亡/服刑/失联/不详, or a guardian status code"),
        Column(f"{who}_away_since", (f"{zh}外出时间", f"{zh}外出日期", f"{zh}外出务工时间"),
               description="start of the current absence for work (only when away for work)"),
        Column(f"{who}_outside_county", (f"{zh}是否县外", f"{zh}是否县外务工", f"{zh}务工地点",
                                         f"{who}_works_outside_county"),
               description="是/否, or 县外/省外/县内: works outside the county (only when away for work)"),
        Column(f"{who}_serious_disability", (f"{zh}重度残疾", f"{zh}是否重度残疾", f"{zh}重残类别"),
               description="否, or the kind(s): 肢体/精神/智力"),
        Column(f"{who}_serious_illness", (f"{zh}是否重病", f"{zh}重病"), description="是/否"),
    )


NEED_COLUMNS: Mapping[str, str] = {  # column key -> facts.NeedKind value
    "need_basic_living": "basic_living", "need_medical": "medical",
    "need_education": "education", "need_housing": "housing",
}
NEED_DESCRIPTION = "否/blank, 是 (found in the survey), or where it is established: 低保/特困/低保边缘/医疗救助/..."

COLUMNS: tuple[Column, ...] = (
    Column("name", ("姓名", "儿童姓名", "名字"), required=True),
    Column("sex", ("性别",), required=True, description="男/女 or male/female"),
    Column("birth_date", ("出生日期", "出生年月日", "生日"), required=True),
    Column("id_card_number", ("身份证号", "身份证号码", "公民身份号码", "身份证"),
           description="18 characters; checked against the GB 11643 check digit, birth date and sex"),
    Column("township", ("乡镇", "乡镇(街道)", "乡镇街道", "镇街", "所属乡镇", "街道"), required=True),
    Column("village", ("村", "村(社区)", "村社区", "所属村", "社区", "村居"), required=True),
    *_parent_columns("father", "父亲"),
    *_parent_columns("mother", "母亲"),
    Column("caregiver_relation", ("照护人关系", "委托照护人关系", "照护人与儿童关系"),
           description="the entrusted caregiver's relation: 祖父母/外祖父母/亲属/邻居/朋友/其他"),
    Column("caregiver_lives_with_child", ("照护人是否同住", "照护人同住"), description="是/否 (default 是)"),
    Column("school", ("学校", "就读学校", "所在学校")),
    Column("grade", ("年级",), description="幼儿园, 一年级..六年级, 初一..初三, 高一..高三, or 0-12"),
    Column("enrolled", ("是否在校", "是否在读", "在校"), description="是/否"),
    Column("dropped_out_on", ("辍学时间", "辍学日期"), description="when the child left school"),
    Column("disability", ("是否残疾", "残疾", "残疾情况"), description="是/否"),
    Column("disability_level", ("残疾等级", "残疾证等级"), description="一级..四级 or 1-4"),
    Column("health_notes", ("健康状况", "健康情况", "健康备注")),
    Column("psychological_notes", ("心理状况", "心理情况", "心理备注")),
    Column("psychological_abnormality", ("心理行为异常", "是否心理行为异常"), description="是/否"),
    Column("need_basic_living", ("基本生活困难", "基本生活"), description=NEED_DESCRIPTION),
    Column("need_medical", ("医疗康复困难", "医疗康复"), description=NEED_DESCRIPTION),
    Column("need_education", ("教育困难", "就学困难"), description=NEED_DESCRIPTION),
    Column("need_housing", ("住房困难", "住房安全"), description=NEED_DESCRIPTION),
    Column("guardianship", ("监护状况", "监护情况"), description="正常/监护缺失/监护不当"),
)
COLUMN_BY_KEY: Mapping[str, Column] = {c.key: c for c in COLUMNS}
REQUIRED = tuple(c for c in COLUMNS if c.required)


def _normalise_header(value: object) -> str:
    text = str(value).replace("\ufeff", "").replace("\u3000", "").strip()
    text = text.replace("（", "(").replace("）", ")").replace("*", "").replace("＊", "")
    return re.sub(r"\s+", "", text).lower()


_ALIASES: Mapping[str, str] = {
    _normalise_header(alias): column.key for column in COLUMNS for alias in (column.key, *column.headers)
}


def column_for(header: object) -> str | None:
    """The column key a header names ("出生日期", "出生日期(YYYY-MM-DD)", "* 姓名", "birth_date"), or None."""
    if header is None:
        return None
    text = _normalise_header(header)
    if not text:
        return None
    key = _ALIASES.get(text)
    if key is None:
        key = _ALIASES.get(re.sub(r"\(.*?\)$", "", text))  # a hint in brackets after the name
    return key


# ------------------------------------------------------------------------------------------------- reading a file


@dataclass(frozen=True)
class FileScan:
    """What one pass over the bytes tells before anything is imported."""

    import_id: str  # SHA-256 of the file, hex
    file_format: FileFormat
    encoding: str | None  # CSV only
    size: int
    approx_rows: int | None  # data rows, for a progress bar (CSV: lines - 1)


def _refuse(reason: str, detail: str = "The file cannot be read as a survey roster.") -> Unprocessable:
    return Unprocessable(detail, errors=[FieldError(field="file", reason=reason)])


def scan(stream: IO[bytes]) -> FileScan:
    """Hash the file and, for CSV, find its encoding (UTF-8, else GB18030) and read it through once as CSV, so that
    a file that is not valid CSV further down is refused before anything is imported. The stream is rewound."""
    digest = hashlib.sha256()
    head = b""
    size = 0
    decoders = {name: codecs.getincrementaldecoder(name)() for name in ("utf-8", "gb18030")}
    while chunk := stream.read(_CHUNK):
        if not head:
            head = chunk[:8]
        digest.update(chunk)
        size += len(chunk)
        if not head.startswith(b"PK\x03\x04"):
            decoders = _still_decoding(decoders, chunk)
    stream.seek(0)
    if size == 0:
        raise _refuse("empty file")
    if head.startswith(b"PK\x03\x04"):
        return FileScan(digest.hexdigest(), "xlsx", None, size, None)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise _refuse("an old Excel .xls workbook: save it as .xlsx or .csv")
    decoders = _still_decoding(decoders, b"", final=True)
    if not decoders:
        raise _refuse("neither an XLSX workbook nor CSV text in UTF-8 or GB18030")
    encoding = "utf-8-sig" if "utf-8" in decoders else "gb18030"
    records = sum(1 for _ in _csv_rows(stream, encoding))
    stream.seek(0)
    return FileScan(digest.hexdigest(), "csv", encoding, size, max(records - 1, 0))


def _still_decoding(
    decoders: dict[str, codecs.IncrementalDecoder], chunk: bytes, final: bool = False
) -> dict[str, codecs.IncrementalDecoder]:
    alive = {}
    for name, decoder in decoders.items():
        try:
            decoder.decode(chunk, final)
        except UnicodeDecodeError:
            continue
        alive[name] = decoder
    return alive


RawRow = tuple[int, Sequence[Any]]  # (row number as in the file, 1-based; the cells)


def read_rows(stream: IO[bytes], file_scan: FileScan) -> Generator[RawRow, None, None]:
    """The rows of the file, one at a time (never the whole file in memory)."""
    if file_scan.file_format == "xlsx":
        yield from _xlsx_rows(stream)
    else:
        yield from _csv_rows(stream, file_scan.encoding or "utf-8-sig")


def _csv_rows(stream: IO[bytes], encoding: str) -> Iterator[RawRow]:
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    number = 0
    try:
        first = text.readline()
        delimiter = "\t" if first.count("\t") > first.count(",") else ","
        for number, row in enumerate(csv.reader(itertools.chain((first,), text), delimiter=delimiter), start=1):
            yield number, row
    except csv.Error as exc:
        raise _refuse(f"row {number + 1} is not valid CSV ({exc})") from None
    finally:
        text.detach()  # leave the caller's stream open


def _xlsx_rows(stream: IO[bytes]) -> Iterator[RawRow]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(stream, read_only=True, data_only=True)
    except Exception:  # a damaged or foreign zip: openpyxl raises many kinds
        raise _refuse("not a readable XLSX workbook") from None
    try:
        if not workbook.worksheets:
            raise _refuse("the workbook has no worksheet")
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # a wrong stored dimension must not cut rows off
        number = 0
        try:
            for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield number, row
        except Exception:  # a damaged sheet: the rows before it may have been imported (again: nothing twice)
            raise _refuse(
                f"the sheet cannot be read from row {number + 1} on",
                detail="The workbook is damaged; the rows above the damage may have been imported. Importing the "
                "repaired file imports nothing twice.",
            ) from None
    finally:
        workbook.close()


def xlsx_row_count(stream: IO[bytes]) -> int | None:
    """Data rows as the first sheet's stored dimension says (for a progress bar; may be absent or wrong)."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(stream, read_only=True, data_only=True)
        try:
            max_row = workbook.worksheets[0].max_row if workbook.worksheets else None
        finally:
            workbook.close()
    except Exception:
        return None
    finally:
        stream.seek(0)
    return max(max_row - 1, 0) if max_row else None


def _blank(cells: Sequence[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


# -------------------------------------------------------------------------------------------------------- header


@dataclass(frozen=True)
class Header:
    row: int  # row number of the header in the file
    positions: Mapping[str, int]  # column key -> index in the row
    titles: Mapping[str, str]  # column key -> the header text as written in the file
    ignored: tuple[str, ...]  # headers not recognised (their values are not imported)


def find_header(rows: Iterator[RawRow]) -> Header:
    """The header row: among the first rows, the first that names every required column (title rows and a row of
    "乡镇 | 虹桥镇 | 村 | 溪西村" above it are skipped). Refuses the file when there is none (naming the columns
    missing from the row that names most known columns) or when a column is named twice."""
    best: tuple[int, RawRow] | None = None  # (known columns, row)
    for seen, (number, cells) in enumerate(rows):
        if _blank(cells):
            continue
        keys = {key for c in cells if (key := column_for(c)) is not None}
        if all(c.key in keys for c in REQUIRED):
            return _header(number, cells)
        if best is None or len(keys) > best[0]:
            best = (len(keys), (number, cells))
        if seen >= HEADER_SEARCH_ROWS:
            break
    if best is None:
        raise _refuse("no rows: the file has no header row")
    return _header(*best[1])  # refused: it lacks a required column


def _header(number: int, cells: Sequence[Any]) -> Header:
    positions: dict[str, int] = {}
    titles: dict[str, str] = {}
    ignored: list[str] = []
    errors: list[FieldError] = []
    for index, cell in enumerate(cells):
        key = column_for(cell)
        if key is None:
            if cell is not None and str(cell).strip():
                ignored.append(str(cell).strip())
            continue
        if key in positions:
            errors.append(FieldError(
                field=key, reason=f"column named twice ({titles[key]!s} and {str(cell).strip()})"
            ))
            continue
        positions[key] = index
        titles[key] = str(cell).strip()
    errors += [
        FieldError(field=c.key, reason=f"required column missing: {c.label}")
        for c in REQUIRED if c.key not in positions
    ]
    if errors:
        raise Unprocessable(f"The header (row {number}) does not fit the survey roster.", errors=errors)
    return Header(number, positions, titles, tuple(ignored))


# ---------------------------------------------------------------------------------------------------- cell values


SEX_VALUES: Mapping[str, str] = {"男": "male", "男性": "male", "m": "male", "male": "male",
                                 "女": "female", "女性": "female", "f": "female", "female": "female"}
YES = frozenset({"是", "有", "y", "yes", "true", "1", "√", "✓", "对"})
NO = frozenset({"否", "无", "没有", "n", "no", "false", "0", "×", "✗", "不是"})
_DATE_PATTERNS = (
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"),
    re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"),
    re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)
_TIME_SUFFIX = re.compile(r"[ T]0?0:00(:00(\.0+)?)?$")  # "2016-05-12 00:00:00" as Excel-made CSVs write dates
_EXCEL_EPOCH = date(1899, 12, 30)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_SEPARATORS = re.compile(r"[、,，;；/|\s]+")


def id_card_check_digit(first_17: str) -> str:
    """GB 11643-1999 check character of an identity-card number's first 17 digits."""
    return "10X98765432"[sum(int(d) * w for d, w in zip(first_17, _ID_WEIGHTS, strict=True)) % 11]


class RowError(Exception):
    """One bad value; carries the reason (never the value itself unless it is a code)."""


def cell_text(value: Any) -> str:
    """A cell as text: strings stripped, whole numbers without ".0", dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("\u3000", " ").strip()
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def parse_date(value: Any) -> date:
    """A date cell: an Excel date, YYYY-MM-DD, YYYY/M/D, YYYY.M.D, YYYY年M月D日, YYYYMMDD, or an Excel serial
    number (a number in an XLSX cell formatted as General)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and 1 <= value < 2_958_466 and not 10_000_000 <= value <= 99_999_999:  # an Excel serial
        if float(value).is_integer():
            return _EXCEL_EPOCH + timedelta(days=int(value))
        raise RowError("not a date (a number with a fraction)")
    text = _TIME_SUFFIX.sub("", cell_text(value))
    for pattern in _DATE_PATTERNS:
        if m := pattern.match(text):
            try:
                return date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                raise RowError("not a valid date (no such day)") from None
    raise RowError("not a date: write YYYY-MM-DD, YYYY/M/D or YYYY年M月D日")


def parse_choice(value: Any, choices: Mapping[str, str], what: str) -> str:
    text = cell_text(value)
    code = choices.get(text) or choices.get(text.lower())
    if code is None:
        shown = text if len(text) <= 20 else text[:20] + "…"
        raise RowError(f"unknown {what} {shown!r}: one of {', '.join(sorted(set(choices.values())))}")
    return code


def parse_yes_no(value: Any) -> bool | None:
    text = cell_text(value).lower()
    if not text:
        return None
    if text in YES:
        return True
    if text in NO:
        return False
    shown = text if len(text) <= 10 else text[:10] + "…"
    raise RowError(f"not yes or no {shown!r}: write 是 or 否")


def parse_many(value: Any, choices: Mapping[str, str], what: str) -> tuple[str, ...]:
    parts = [p for p in _SEPARATORS.split(cell_text(value)) if p]
    codes: list[str] = []
    for part in parts:
        code = parse_choice(part, choices, what)
        if code not in codes:
            codes.append(code)
    return tuple(codes)


def parse_id_card(value: Any, birth_date: date | None, sex: str | None) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise RowError("stored as a number, which loses digits: format the column as text and type it again")
    text = cell_text(value).upper()
    if not re.fullmatch(r"\d{17}[\dX]", text):
        raise RowError("must be 18 characters: 17 digits and a digit or X")
    if id_card_check_digit(text[:17]) != text[17]:
        raise RowError("the check digit does not match (a typing error?)")
    try:
        embedded = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise RowError("the birth date inside the number is not a valid date") from None
    if birth_date is not None and embedded != birth_date:
        raise RowError("the birth date inside the number differs from birth_date")
    if sex is not None and ("male" if int(text[16]) % 2 else "female") != sex:
        raise RowError("the sex digit of the number differs from sex")
    return text


def today_utc() -> date:
    return datetime.now(UTC).date()


# ------------------------------------------------------------------------------------------------- the error report


@dataclass(frozen=True)
class RowProblem:
    """One line of the error report: a row left out, and why."""

    row: int  # as in the file (the header row counts; title rows above it too)
    field: str  # the column key, or "row" for the row as a whole
    column: str  # the header as written in the file ("" for the row as a whole)
    reason: str


class ErrorSink(Protocol):
    def add(self, problem: RowProblem) -> None: ...


@dataclass
class CollectedErrors:
    """The error report kept in memory, up to ``limit`` lines (the rest counted)."""

    limit: int = 10_000
    problems: list[RowProblem] = field(default_factory=list)
    left_out: int = 0

    def add(self, problem: RowProblem) -> None:
        if len(self.problems) < self.limit:
            self.problems.append(problem)
        else:
            self.left_out += 1


ERROR_REPORT_COLUMNS = ("row", "field", "column", "reason")


class CsvErrorReport:
    """The error report written as it goes (CSV, UTF-8 with BOM so that Excel shows the Chinese)."""

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out)
        self._writer.writerow(ERROR_REPORT_COLUMNS)
        self.count = 0

    def add(self, problem: RowProblem) -> None:
        self._writer.writerow((problem.row, problem.field, problem.column, problem.reason))
        self.count += 1


# ---------------------------------------------------------------------------------------------- parsing one row


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


class RowValues:
    """One data row read through the header, collecting every bad value of the row (not only the first).

    The non-empty cells are picked out once (a roster has many empty optional columns): ``raw`` is the cell as read
    (an Excel date or number stays one), ``texts`` the cell as text.
    """

    __slots__ = ("header", "number", "problems", "raw_cells", "texts")

    def __init__(self, header: Header, number: int, cells: Sequence[Any]) -> None:
        self.header = header
        self.number = number
        self.problems: list[RowProblem] = []
        self.raw_cells: dict[str, Any] = {}
        self.texts: dict[str, str] = {}
        length = len(cells)
        for key, index in header.positions.items():
            if index >= length or (cell := cells[index]) is None or cell == "":
                continue
            text = cell_text(cell)
            if text:
                self.raw_cells[key] = cell
                self.texts[key] = text

    def present(self, key: str) -> bool:
        return key in self.texts

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(RowProblem(self.number, key, self.header.titles.get(key, ""), reason))

    def text(self, key: str, *, max_length: int = MAX_TEXT, multiline: bool = False) -> str | None:
        value = self.texts.get(key)
        if value is None:
            if COLUMN_BY_KEY[key].required:
                self.problem(key, "required")
            return None
        if len(value) > max_length:
            self.problem(key, f"longer than {max_length} characters")
            return None
        if (_CONTROL if multiline else _CONTROL_OR_BREAK).search(value):
            reason = "contains a control character" if multiline else "contains a line break or control character"
            self.problem(key, reason)
            return None
        return value

    def parse(self, key: str, parser: Callable[[Any], Any]) -> Any:
        """``parser(raw cell)`` for a non-empty cell; None for an empty one (a problem if the column is required)."""
        if key not in self.texts:
            if COLUMN_BY_KEY[key].required:
                self.problem(key, "required")
            return None
        try:
            return parser(self.raw_cells[key])
        except RowError as exc:
            self.problem(key, str(exc))
            return None


# ------------------------------------------------------------------------------------------ values, Chinese or codes


def _codes(*pairs: tuple[str, Iterable[str]]) -> dict[str, str]:
    """Accepted spellings -> code; every code is accepted as itself."""
    return {spelling: code for code, spellings in pairs for spelling in (code, *spellings)}


GUARDIAN_STATUS = _codes(
    ("present", ("在家", "在家务农", "本地务工", "共同生活", "同住", "本地", "at_home")),
    ("away_for_work", ("外出务工", "外出", "外出打工", "务工")),
    ("deceased", ("死亡", "已故", "去世", "亡故")),
    ("incarcerated", ("服刑", "服刑在押", "在押", "羁押")),
    ("missing", ("失联", "失踪", "下落不明")),
    ("unknown", ("不详", "未知", "不清楚")),
)
OUTSIDE_COUNTY = _codes(
    ("yes", ("是", "县外", "市外", "省外", "国外", "境外", "y", "true", "1")),
    ("no", ("否", "县内", "本县", "n", "false", "0")),
)
SERIOUS_DISABILITY = _codes(
    ("physical", ("肢体", "肢体残疾", "重度肢体残疾")),
    ("mental", ("精神", "精神残疾", "重度精神残疾")),
    ("intellectual", ("智力", "智力残疾", "重度智力残疾")),
    ("none", ("否", "无", "没有", "n", "no")),
)
CAREGIVER_RELATION = _codes(
    ("grandparent", ("祖父母", "外祖父母", "祖父", "祖母", "外祖父", "外祖母", "爷爷", "奶奶", "外公", "外婆",
                     "姥姥", "姥爷", "爷爷奶奶", "外公外婆")),
    ("other_relative", ("亲属", "亲戚", "其他亲属", "叔叔", "伯伯", "伯父", "叔父", "姑姑", "姑妈", "舅舅", "阿姨",
                        "姨妈", "婶婶", "哥哥", "姐姐", "兄姐")),
    ("neighbour", ("邻居",)),
    ("family_friend", ("朋友", "亲友", "家庭朋友")),
    ("other", ("其他",)),
)
_ZH_NUMBERS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
GRADES: Mapping[str, int] = {
    "幼儿园": 0, "学前": 0, "学前班": 0,
    **{f"{zh}年级": n for zh, n in _ZH_NUMBERS.items()},
    **{f"小学{zh}年级": n for zh, n in _ZH_NUMBERS.items() if n <= 6},
    **{f"初{zh}": n + 6 for zh, n in _ZH_NUMBERS.items() if n <= 3},
    **{f"高{zh}": n + 9 for zh, n in _ZH_NUMBERS.items() if n <= 3},
    **{str(n): n for n in range(13)},
}
DISABILITY_LEVELS: Mapping[str, int] = {
    **{f"{zh}级": n for zh, n in _ZH_NUMBERS.items() if n <= 4},
    **{f"{n}级": n for n in range(1, 5)},
    **{str(n): n for n in range(1, 5)},
}
NEED_SOURCE = _codes(
    ("survey_assessment", ("是", "有", "摸底", "摸底认定", "排查认定")),
    ("dibao", ("低保",)),
    ("tekun", ("特困", "特困供养")),
    ("low_income_margin", ("低保边缘",)),
    ("medical_assistance", ("医疗救助", "大病")),
    ("education_assistance", ("教育资助",)),
    ("housing_assistance", ("危房改造", "住房救助")),
    ("other", ("其他",)),
    ("none", ("否", "无", "没有")),
)
GUARDIANSHIP = _codes(
    ("none", ("正常", "无", "否")),
    ("missing", ("监护缺失", "缺失")),
    ("improper", ("监护不当", "不当")),
)


def parse_grade(value: Any) -> int:
    text = cell_text(value)
    grade = GRADES.get(text)
    if grade is None:
        raise RowError("not a grade: 幼儿园, 一年级..六年级, 初一..初三, 高一..高三, or 0-12")
    return grade


def parse_disability_level(value: Any) -> int:
    level = DISABILITY_LEVELS.get(cell_text(value))
    if level is None:
        raise RowError("not a disability certificate level: 一级..四级 or 1-4")
    return level


def _choice(choices: Mapping[str, str], what: str) -> Callable[[Any], str]:
    return lambda value: parse_choice(value, choices, what)


def _many(choices: Mapping[str, str], what: str) -> Callable[[Any], tuple[str, ...]]:
    return lambda value: parse_many(value, choices, what)


PARSE_SEX = _choice(SEX_VALUES, "sex")
PARSE_GUARDIAN_STATUS = _choice(GUARDIAN_STATUS, "guardian status")
PARSE_OUTSIDE_COUNTY = _choice(OUTSIDE_COUNTY, "yes or no (or 县外/县内)")
PARSE_SERIOUS_DISABILITY = _many(SERIOUS_DISABILITY, "disability kind")
PARSE_CAREGIVER_RELATION = _choice(CAREGIVER_RELATION, "caregiver relation")
PARSE_NEED_SOURCE = _choice(NEED_SOURCE, "need source")
PARSE_GUARDIANSHIP = _choice(GUARDIANSHIP, "guardianship situation")


def _past_date(today: date) -> Callable[[Any], date]:
    def parse(value: Any) -> date:
        parsed = parse_date(value)
        if parsed > today:
            raise RowError("must not be in the future")
        return parsed

    return parse


def _birth_date(today: date) -> Callable[[Any], date]:
    def parse(value: Any) -> date:
        born = _past_date(today)(value)
        if eighteenth_birthday(born) <= today:
            raise RowError("the child must be under 18")
        return born

    return parse


# ------------------------------------------------------------------------------------------- a row -> the child


@dataclass(frozen=True)
class SurveyRow:
    """A valid row: the child's identity and what the file records."""

    row: int
    identity: ChildFacts
    facts: ChildFileFacts


def parse_row(header: Header, number: int, cells: Sequence[Any], today: date) -> SurveyRow | list[RowProblem]:
    """One data row, validated: the child, or every problem of the row."""
    v = RowValues(header, number, cells)
    name = v.text("name", max_length=50)
    sex = v.parse("sex", PARSE_SEX)
    birth_date = v.parse("birth_date", _birth_date(today))
    id_card = v.parse("id_card_number", lambda value: parse_id_card(value, birth_date, sex))
    township = v.text("township", max_length=50)
    village = v.text("village", max_length=50)
    guardians = tuple(g for g in (_guardian(v, "father", today), _guardian(v, "mother", today)) if g is not None)
    caregiver = _caregiver(v)
    school = _school(v, today, birth_date)
    disability = _disability(v)
    health_notes = v.text("health_notes", max_length=2000, multiline=True)
    psychological_notes = v.text("psychological_notes", max_length=2000, multiline=True)
    abnormality = v.parse("psychological_abnormality", parse_yes_no)
    needs = tuple(need for key, kind in NEED_COLUMNS.items() if (need := _need(v, key, kind)) is not None)
    guardianship = v.parse("guardianship", PARSE_GUARDIANSHIP)
    if v.problems:
        return v.problems
    if not (name and sex and birth_date and township and village):  # cannot be: each is a problem when missing
        raise AssertionError("a required value is missing without a problem")
    try:
        facts = ChildFileFacts(
            guardians=guardians, entrusted_caregiver=caregiver, school=school, disability=disability,
            health_notes=health_notes, psychological_notes=psychological_notes,
            psychological_abnormality=bool(abnormality), needs=needs,
            guardianship=None if guardianship in (None, "none") else GuardianshipSituation(
                kind=GuardianshipSituationKind(guardianship), source=GuardianshipFindingSource.survey,
            ),
        )
    except ValidationError as exc:  # a rule of the file that the checks above did not foresee
        return [RowProblem(number, "row", "", validation_errors([dict(e) for e in exc.errors()])[0].reason)]
    identity = ChildFacts(
        name=name, sex=sex, birth_date=birth_date, id_card_number=id_card, township=township, village=village,
        categories=(),
    )
    return SurveyRow(number, identity, facts)


def _guardian(v: RowValues, who: str, today: date) -> Guardian | None:
    keys = [f"{who}_{part}" for part in ("status", "away_since", "outside_county", "serious_disability",
                                         "serious_illness")]
    if not any(v.present(k) for k in keys):
        return None  # not recorded
    status_key, since_key, county_key, disability_key, illness_key = keys
    status = v.parse(status_key, PARSE_GUARDIAN_STATUS)
    since = v.parse(since_key, _past_date(today))
    outside = v.parse(county_key, PARSE_OUTSIDE_COUNTY)
    kinds = v.parse(disability_key, PARSE_SERIOUS_DISABILITY) or ()
    illness = v.parse(illness_key, parse_yes_no)
    if status is None and (since is not None or outside is not None):
        status = "away_for_work"  # a date of leaving or a place of work says the parent is away
    if status != "away_for_work":
        for key, value in ((since_key, since), (county_key, outside)):
            if value is not None:
                v.problem(key, "only recorded for a parent away for work (外出务工)")
    if "none" in kinds and len(kinds) > 1:
        v.problem(disability_key, "否/无 together with a kind of disability")
    return Guardian(
        relation=GuardianRelation(who),
        status=GuardianStatus(status or "unknown"),
        away_since=since if status == "away_for_work" else None,
        works_outside_county=None if outside is None or status != "away_for_work" else outside == "yes",
        serious_physical_disability="physical" in kinds,
        serious_mental_disability="mental" in kinds,
        serious_intellectual_disability="intellectual" in kinds,
        serious_illness=bool(illness),
    )


def _caregiver(v: RowValues) -> EntrustedCaregiver | None:
    relation = v.parse("caregiver_relation", PARSE_CAREGIVER_RELATION)
    lives_with = v.parse("caregiver_lives_with_child", parse_yes_no)
    if relation is None:
        if lives_with is not None:
            v.problem("caregiver_lives_with_child", "given without the caregiver's relation (照护人关系)")
        return None
    return EntrustedCaregiver(relation=CaregiverRelation(relation), lives_with_child=lives_with is not False)


def _school(v: RowValues, today: date, birth_date: date | None) -> School | None:
    name = v.text("school", max_length=100)
    grade = v.parse("grade", parse_grade)
    enrolled = v.parse("enrolled", parse_yes_no)
    dropped = v.parse("dropped_out_on", _past_date(today))
    if dropped is not None:
        if enrolled:
            v.problem("dropped_out_on", "given for a child recorded as enrolled (是否在校 是)")
        elif birth_date is not None and dropped < birth_date:
            v.problem("dropped_out_on", "before the birth date")
        enrolled = False
    if name is None and grade is None and enrolled is None and dropped is None:
        return None
    return School(name=name, grade=grade, enrolled=enrolled, dropped_out_on=dropped)


def _disability(v: RowValues) -> Disability:
    has = v.parse("disability", parse_yes_no)
    level = v.parse("disability_level", parse_disability_level)
    if level is not None:
        if has is False:
            v.problem("disability_level", "given for a child recorded without a disability (是否残疾 否)")
            return Disability()
        return Disability(has_disability=True, certificate_level=level)
    return Disability(has_disability=bool(has))


def _need(v: RowValues, key: str, kind: str) -> DifficultyNeed | None:
    source = v.parse(key, PARSE_NEED_SOURCE)
    if source in (None, "none"):
        return None
    return DifficultyNeed(kind=NeedKind(kind), source=NeedSource(source))


# -------------------------------------------------------------------------------------------------- the import


@dataclass
class ImportSummary:
    import_id: str
    file_format: FileFormat
    agency: str
    header_row: int
    ignored_columns: tuple[str, ...]
    rows: int = 0  # data rows read (blank rows are not counted)
    imported_new: int = 0  # a new file
    updated: int = 0  # an existing file whose facts or categories changed
    unchanged: int = 0  # an existing file, nothing new (a re-import)
    duplicates_flagged: int = 0  # rows whose child probably duplicates another: flagged for a person to decide
    rejected: int = 0  # rows left out: see the error report
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.imported_new or self.updated)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ImportedRow:
    row: int
    registration: Registration


Register = Callable[[Sequence[RegisterChild]], list[Registration]]


def survey_source(import_id: str, row: int) -> str:
    return f"survey:{import_id}:{row}"


class _BatchReader:
    """Reads and validates the rows in a thread of its own, a batch or two ahead of the registration (which waits
    on the database much of the time): the file is still read as a stream, at most ``AHEAD`` batches in memory.

    Counts rows and rejected rows into ``summary`` and sends every problem to ``errors``; a second row with an
    identity-card number already seen in the file is rejected (the same child twice: a person must say which row
    is right)."""

    AHEAD = 2
    _DONE = object()

    def __init__(
        self, rows: Iterator[RawRow], header: Header, summary: ImportSummary, errors: ErrorSink, batch_rows: int,
        today: date,
    ) -> None:
        self.rows = rows
        self.header = header
        self.summary = summary
        self.errors = errors
        self.batch_rows = batch_rows
        self.today = today
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=self.AHEAD)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="survey-reader", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()

    def batches(self) -> Iterator[tuple[list[SurveyRow], int]]:
        """Each batch, with the number of rows read (valid or not) up to its last row."""
        while True:
            item = self.queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(self, item: Any) -> bool:
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def _run(self) -> None:
        try:
            for batch in self._read():
                if not self._put(batch):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the importing thread, which raises it
            self._put(exc)

    def _read(self) -> Iterator[tuple[list[SurveyRow], int]]:
        header, summary = self.header, self.summary
        first_row_of_id: dict[str, int] = {}
        batch: list[SurveyRow] = []
        for number, cells in self.rows:
            if _blank(cells):
                continue
            summary.rows += 1
            parsed = parse_row(header, number, cells, self.today)
            if isinstance(parsed, SurveyRow) and parsed.identity.id_card_number:
                first = first_row_of_id.setdefault(parsed.identity.id_card_number, number)
                if first != number:
                    parsed = [RowProblem(number, "id_card_number", header.titles["id_card_number"],
                                         f"the same identity card number as row {first}")]
            if isinstance(parsed, list):
                summary.rejected += 1
                for problem in parsed:
                    self.errors.add(problem)
                continue
            batch.append(parsed)
            if len(batch) >= self.batch_rows:
                yield batch, summary.rows
                batch = []
        if batch:
            yield batch, summary.rows


IMPORT_GC_THRESHOLDS = (20_000, 20, 20)  # Python's defaults: (700, 10, 10)
_gc_lock = threading.Lock()
_gc_imports = 0
_gc_saved: tuple[int, int, int] = (700, 10, 10)


@contextmanager
def import_gc_settings() -> Iterator[None]:
    """Fewer garbage collections while an import runs. An import allocates millions of short-lived objects and keeps
    few; with the default thresholds the collector's passes (full ones over every object the process holds: its
    modules, its web application) took about a seventh of the import's time. While any import runs, the objects
    alive when the first began are set aside (``gc.freeze``) and collections run less often; the settings come back
    when the last import ends. Memory stays bounded: every object is still collected, later."""
    global _gc_imports, _gc_saved
    with _gc_lock:
        if _gc_imports == 0:
            _gc_saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(*IMPORT_GC_THRESHOLDS)
        _gc_imports += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_imports -= 1
            if _gc_imports == 0:
                gc.set_threshold(*_gc_saved)
                gc.unfreeze()


class SurveyImport:
    """Reads a roster and registers its children in batches; one instance per import.

    ``register`` is ``IntakeApplication.register_children``. ``progress(rows read so far)`` is called after each
    batch; ``on_batch`` gets each batch's rows and registrations (the benchmark scores the matcher with them).
    """

    def __init__(
        self,
        register: Register,
        *,
        agency: str,
        batch_rows: int = BATCH_ROWS,
        today: date | None = None,
        progress: Callable[[int], None] | None = None,
        on_batch: Callable[[Sequence[ImportedRow]], None] | None = None,
    ) -> None:
        try:
            self.agency = Agency(agency).value
        except ValueError:
            raise Unprocessable(
                "Unknown agency.", errors=[FieldError(field="agency", reason=f"unknown agency code {agency[:40]!r}")]
            ) from None
        self.register = register
        self.batch_rows = batch_rows
        self.today = today or today_utc()
        self.progress = progress
        self.on_batch = on_batch

    def run(self, stream: IO[bytes], errors: ErrorSink, file_scan: FileScan | None = None) -> ImportSummary:
        """Import the roster in ``stream`` (seekable); bad rows go to ``errors``. Refuses a file that does not fit
        (``Unprocessable`` naming the column) before anything is registered."""
        started = time.perf_counter()
        file_scan = file_scan or scan(stream)
        rows = read_rows(stream, file_scan)
        try:
            with import_gc_settings():
                summary = self._import(rows, file_scan, errors)
        finally:
            rows.close()  # the reader lets go of the stream now, whether the file was refused or not
        summary.seconds = time.perf_counter() - started
        return summary

    def _import(self, rows: Generator[RawRow, None, None], file_scan: FileScan, errors: ErrorSink) -> ImportSummary:
        header = find_header(rows)
        summary = ImportSummary(
            import_id=file_scan.import_id, file_format=file_scan.file_format, agency=self.agency,
            header_row=header.row, ignored_columns=header.ignored,
        )
        reader = _BatchReader(rows, header, summary, errors, self.batch_rows, self.today)
        reader.start()
        try:
            for batch, rows_read in reader.batches():
                self._register(batch, summary)
                if self.progress is not None:
                    self.progress(rows_read)
            if self.progress is not None:
                self.progress(summary.rows)  # the rows after the last batch were all rejected
        finally:
            reader.stop()
        return summary

    def _register(self, batch: list[SurveyRow], summary: ImportSummary) -> None:
        commands = [
            RegisterChild(
                identity=row.identity, facts=row.facts, registered_by=self.agency,
                source=survey_source(summary.import_id, row.row),
            )
            for row in batch
        ]
        registrations = self.register(commands)
        for registration in registrations:
            if registration.created:
                summary.imported_new += 1
            elif registration.changed:
                summary.updated += 1
            else:
                summary.unchanged += 1
            if registration.duplicates:
                summary.duplicates_flagged += 1
        if self.on_batch is not None:
            self.on_batch([ImportedRow(row.row, reg) for row, reg in zip(batch, registrations, strict=True)])


# --------------------------------------------------------------------------------------------- a file on disk (CLI)


def default_errors_path(path: Path) -> Path:
    """The error report beside the roster: ``roster.xlsx`` -> ``roster.errors.csv``."""
    return path.with_name(f"{path.stem}.errors.csv")


def import_roster(
    path: Path,
    register: Register,
    *,
    agency: str,
    errors_path: Path | None = None,
    batch_rows: int = BATCH_ROWS,
    on_start: Callable[[int | None], None] | None = None,
    progress: Callable[[int], None] | None = None,
    on_batch: Callable[[Sequence[ImportedRow]], None] | None = None,
) -> tuple[ImportSummary, Path]:
    """Import a roster file; the error report (CSV, every rejected value) is written to ``errors_path`` (default:
    beside the roster), replaced only when the import ran: a refused file leaves no report and no change.
    ``on_start(approximate data rows)`` is called once the file is read through."""
    errors_path = errors_path or default_errors_path(path)
    job = SurveyImport(register, agency=agency, batch_rows=batch_rows, progress=progress, on_batch=on_batch)
    with path.open("rb") as stream:
        file_scan = scan(stream)
        if on_start is not None:
            on_start(file_scan.approx_rows if file_scan.file_format == "csv" else xlsx_row_count(stream))
        errors_path.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=f".{errors_path.name}.", dir=errors_path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as out:
                summary = job.run(stream, CsvErrorReport(out), file_scan)
            os.replace(partial, errors_path)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return summary, errors_path


def import_survey_command(
    register: Register, path: Path, *, agency: str, errors_path: Path | None, console: Any = None
) -> int:
    """``huhang import-survey``: the import with a progress bar (rows/s) and a summary. Exit status: 0 every row
    imported, 1 some rows rejected (see the error report), 2 the file refused (nothing imported)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RowsPerSecond(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="progress.data.speed")

    err = console or Console(stderr=True)
    if not path.is_file():
        err.print(f"[red]No such file:[/red] {path}")
        return 2
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RowsPerSecond(),
               TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=err, transient=False) as bar:
            task = bar.add_task(f"importing {path.name}", total=None)
            summary, report = import_roster(
                path, register, agency=agency, errors_path=errors_path,
                on_start=lambda total: bar.update(task, total=total),
                progress=lambda done: bar.update(task, completed=done),
            )
            bar.update(task, total=summary.rows, completed=summary.rows)
    except DomainError as exc:
        err.print(f"[red]Refused:[/red] {exc.detail}")
        for problem in exc.errors:
            err.print(f"  {problem.field}: {problem.reason}")
        return 2
    err.print(summary_text(summary, report))
    return 1 if summary.rejected else 0


def summary_text(summary: ImportSummary, report: Path) -> str:
    lines = [
        f"import {summary.import_id[:12]} ({summary.file_format}, header on row {summary.header_row}), "
        f"{summary.rows} rows in {summary.seconds:.1f}s ({summary.rows_per_s:,.0f} rows/s)",
        f"  new files:                   {summary.imported_new}",
        f"  updated:                     {summary.updated}",
        f"  unchanged:                   {summary.unchanged}",
        f"  probable duplicates flagged: {summary.duplicates_flagged}",
        f"  rejected:                    {summary.rejected}",
    ]
    if summary.ignored_columns:
        lines.append(f"  columns not recognised (not imported): {', '.join(summary.ignored_columns)}")
    if not summary.changed and summary.unchanged:
        lines.append("Nothing changed: every row was already on file (the same file imported again?).")
    lines.append(f"Error report: {report}" + ("" if summary.rejected else " (no errors)"))
    return "\n".join(lines)

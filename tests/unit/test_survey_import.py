"""The survey import (摸底排查): CSV and XLSX rosters, row validation and the error report, idempotent re-import,
duplicates through the same matching, the file refused as a whole, the API upload and the CLI command."""

from __future__ import annotations

import csv
import gc
import hashlib
import io
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from faker import Faker
from fastapi.testclient import TestClient
from openpyxl import Workbook

from huhang import cli
from huhang.bootstrap import service_api
from huhang.problems import Unprocessable
from huhang.settings import Settings
from services.intake.application import ChildFacts
from services.intake.categories import add_months
from services.intake.main import IntakeService, build
from services.intake.survey import (
    IMPORT_GC_THRESHOLDS,
    CollectedErrors,
    ImportedRow,
    ImportSummary,
    RowError,
    RowProblem,
    SurveyImport,
    column_for,
    id_card_check_digit,
    import_gc_settings,
    parse_date,
    parse_id_card,
    scan,
)
from tests.support.auth import client_for

TODAY = date(2026, 6, 15)
"""The import's "today" in these tests (pinned below): mid-month, so that "three months ago, and a day less" are
two different ages (from 30 November, 30 and 31 August both reach three months on the 30th), and the same day
however long the suite runs (it was collected on one day and ran into the next once)."""


@pytest.fixture(autouse=True)
def _pinned_today(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.intake import facts, schemas, survey

    monkeypatch.setattr(survey, "today_utc", lambda: TODAY)
    monkeypatch.setattr(schemas, "_today", lambda: TODAY)
    monkeypatch.setattr(facts, "_today", lambda: TODAY)
HEADER = ["姓名", "性别", "出生日期", "身份证号", "乡镇", "村", "父亲状况", "父亲外出时间", "父亲是否县外",
          "母亲状况", "照护人关系", "学校", "是否残疾"]


@pytest.fixture
def fake() -> Faker:
    faker = Faker("zh_CN")
    faker.seed_instance(20261129)
    return faker


@pytest.fixture
def service() -> Iterator[IntakeService]:
    built = build(Settings(storage="memory"))
    built.application._today = lambda: TODAY  # the categories' "today" (three months away), as the import's
    yield built
    built.application.close()


def id_card(fake: Faker, birth_date: date, sex: str) -> str:
    """A synthetic number of the right shape: area, birth date, sequence (sex in its parity), check digit."""
    sequence = int(fake.numerify("##")) * 10 + (int(fake.numerify("#")) // 2 * 2 + (1 if sex == "male" else 0))
    body = f"{fake.numerify('3303##')}{birth_date:%Y%m%d}{sequence:03d}"
    return body + id_card_check_digit(body)


def a_row(fake: Faker, **changes: str) -> dict[str, str]:
    """A valid roster row (Chinese headers and values): father away outside the county, mother at home."""
    born = fake.date_of_birth(minimum_age=4, maximum_age=14)
    row = {
        "姓名": fake.name(), "性别": "女", "出生日期": f"{born.year}/{born.month}/{born.day}",
        "身份证号": id_card(fake, born, "female"), "乡镇": "虹桥镇", "村": f"{fake.last_name()}家村",
        "父亲状况": "外出务工", "父亲外出时间": (TODAY - timedelta(days=400)).isoformat(), "父亲是否县外": "是",
        "母亲状况": "在家", "照护人关系": "", "学校": "乐清市虹桥镇第一小学", "是否残疾": "否",
    }
    row.update(changes)
    return row


def csv_bytes(rows: Sequence[dict[str, str]], header: Sequence[str] = HEADER, encoding: str = "utf-8-sig") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header])
    return out.getvalue().encode(encoding)


def run_import(
    service: IntakeService, data: bytes, agency: str = "civil_affairs"
) -> tuple[ImportSummary, list[RowProblem], list[ImportedRow]]:
    errors = CollectedErrors()
    imported: list[ImportedRow] = []
    job = SurveyImport(service.application.register_children, agency=agency, on_batch=imported.extend)
    summary = job.run(io.BytesIO(data), errors)
    return summary, errors.problems, imported


def notifications(service: IntakeService) -> int:
    return service.application.recorder.max_notification_id() or 0


def child_id(service: IntakeService, row: dict[str, str], born: date) -> Any:
    return service.application.child_id_for(ChildFacts(
        name=row["姓名"], sex="female" if row["性别"] == "女" else "male", birth_date=born,
        id_card_number=row["身份证号"] or None, township=row["乡镇"], village=row["村"], categories=(),
    ))


# ----------------------------------------------------------------------------------------------------- CSV rows


def test_good_rows_import_and_bad_rows_come_back_with_row_field_column_and_reason(service, fake):
    good = [a_row(fake) for _ in range(3)]
    bad_date = a_row(fake, 出生日期="2016-02-30")
    bad_sex_and_name = a_row(fake, 性别="男孩", 姓名="")
    bad_id = a_row(fake)
    bad_id["身份证号"] = bad_id["身份证号"][:17] + ("0" if bad_id["身份证号"][17] != "0" else "1")
    away_but_home = a_row(fake, 父亲状况="在家")
    rows = [good[0], bad_date, good[1], bad_sex_and_name, bad_id, away_but_home, good[2]]

    summary, problems, _ = run_import(service, csv_bytes(rows))

    assert (summary.rows, summary.imported_new, summary.updated, summary.unchanged, summary.rejected) == (7, 3, 0, 0, 4)
    assert problems == [
        RowProblem(3, "birth_date", "出生日期", "not a valid date (no such day)"),
        RowProblem(5, "name", "姓名", "required"),
        RowProblem(5, "sex", "性别", "unknown sex '男孩': one of female, male"),
        RowProblem(6, "id_card_number", "身份证号", "the check digit does not match (a typing error?)"),
        RowProblem(7, "father_away_since", "父亲外出时间", "only recorded for a parent away for work (外出务工)"),
        RowProblem(7, "father_outside_county", "父亲是否县外", "only recorded for a parent away for work (外出务工)"),
    ]


def test_a_row_is_registered_with_its_identity_and_the_facts_of_its_file(service, fake):
    born = date(2015, 3, 9)
    row = a_row(fake, 出生日期="2015年3月9日", 身份证号="", 母亲状况="死亡", 照护人关系="奶奶", 是否残疾="是")

    summary, problems, imported = run_import(service, csv_bytes([row]))

    assert (summary.imported_new, problems) == (1, [])
    child = service.application.get_child(child_id(service, row, born))
    assert (child.name, child.sex, child.birth_date, child.id_card_number) == (row["姓名"], "female", born, None)
    father, mother = child.facts["guardians"]
    assert (father["relation"], father["status"], father["works_outside_county"]) == ("father", "away_for_work", True)
    assert father["away_since"] == (TODAY - timedelta(days=400)).isoformat()
    assert (mother["relation"], mother["status"]) == ("mother", "deceased")
    assert child.facts["entrusted_caregiver"] == {"relation": "grandparent", "lives_with_child": True}
    assert child.facts["school"]["name"] == "乐清市虹桥镇第一小学"
    assert child.facts["disability"]["has_disability"] is True
    assert imported[0].registration.categories == ("left_behind", "single_parent", "disabled")


def test_left_behind_is_derived_from_the_rows_facts_at_exactly_three_months_and_not_a_day_less(service, fake):
    three_months_ago = add_months(TODAY, -3)
    at_three = a_row(fake, 父亲外出时间=three_months_ago.isoformat(), 母亲状况="外出务工", 照护人关系="外婆")
    at_three.update({"母亲外出时间": three_months_ago.isoformat(), "母亲是否县外": "县外"})
    day_short = dict(at_three, 姓名=fake.name(), 身份证号="", 村="另一村")
    day_short["父亲外出时间"] = day_short["母亲外出时间"] = (three_months_ago + timedelta(days=1)).isoformat()
    header = [*HEADER, "母亲外出时间", "母亲是否县外"]

    _, problems, imported = run_import(service, csv_bytes([at_three, day_short], header=header))

    assert problems == []
    assert "left_behind" in imported[0].registration.categories
    assert "left_behind" not in imported[1].registration.categories


def test_blank_rows_are_skipped_and_title_rows_above_the_header_are_counted_in_row_numbers(service, fake):
    body = csv_bytes([a_row(fake), {}, a_row(fake, 性别="?")]).decode("utf-8-sig")
    data = ("乐清市虹桥镇留守儿童摸底排查表\n\n" + body).encode("utf-8-sig")

    summary, problems, _ = run_import(service, data)

    assert (summary.header_row, summary.rows, summary.imported_new) == (3, 2, 1)
    assert [(p.row, p.field) for p in problems] == [(6, "sex")]


def test_a_row_naming_two_columns_above_the_header_is_not_taken_for_it(service, fake):
    body = csv_bytes([a_row(fake)]).decode("utf-8-sig")
    data = ("乡镇,虹桥镇,村,溪西村\n" + body).encode("utf-8-sig")

    summary, problems, _ = run_import(service, data)

    assert (summary.header_row, summary.imported_new, problems) == (2, 1, [])


def test_names_and_places_with_line_breaks_or_control_characters_are_rejected_notes_may_break_lines(service, fake):
    header = [*HEADER, "健康状况"]
    rows = [a_row(fake, 姓名="李\0雨"), a_row(fake, 村="溪西\n村"), a_row(fake, 健康状况="哮喘。\n需随身带药。")]

    summary, problems, _ = run_import(service, csv_bytes(rows, header=header))

    assert problems == [
        RowProblem(2, "name", "姓名", "contains a line break or control character"),
        RowProblem(3, "village", "村", "contains a line break or control character"),
    ]
    assert summary.imported_new == 1


def test_a_file_that_is_not_valid_csv_further_down_is_refused_before_anything_is_imported(service, fake):
    good = csv_bytes([a_row(fake)])
    data = good + ('"' + "长" * 140_000 + '",女,2016-01-01\n').encode()

    with pytest.raises(Unprocessable) as refused:
        run_import(service, data)

    assert [(e.field, e.reason) for e in refused.value.errors] == [
        ("file", "row 3 is not valid CSV (field larger than field limit (131072))")
    ]
    assert notifications(service) == 0


def test_the_error_report_kept_in_memory_counts_what_it_leaves_out():
    errors = CollectedErrors(limit=2)
    for row in range(2, 7):
        errors.add(RowProblem(row, "sex", "性别", "required"))

    assert ([p.row for p in errors.problems], errors.left_out) == ([2, 3], 3)


def test_a_gb18030_csv_as_excel_saves_it_in_china_imports_like_utf8(service, fake):
    rows = [a_row(fake), a_row(fake)]

    summary, problems, _ = run_import(service, csv_bytes(rows, encoding="gb18030"))

    assert (summary.imported_new, problems) == (2, [])
    assert service.application.get_child(child_id(service, rows[0], _born(rows[0]))).name == rows[0]["姓名"]


def test_english_keys_and_codes_are_accepted_as_well_as_chinese(service, fake):
    row = a_row(fake)
    english = {
        "name": row["姓名"], "sex": "female", "birth_date": _born(row).isoformat(),
        "id_card_number": row["身份证号"].lower(), "township": row["乡镇"], "village": row["村"],
        "father_status": "away_for_work", "father_away_since": row["父亲外出时间"],
        "father_works_outside_county": "true", "mother_status": "at_home", "disability": "false",
    }

    summary, problems, _ = run_import(service, csv_bytes([english], header=list(english)))

    assert (summary.imported_new, problems) == (1, [])
    assert service.application.get_child(child_id(service, row, _born(row))).id_card_number == row["身份证号"]


def test_the_same_identity_card_number_twice_in_a_file_rejects_the_later_row(service, fake):
    first = a_row(fake)
    again = a_row(fake, 身份证号=first["身份证号"], 出生日期=first["出生日期"], 村="别的村")

    summary, problems, _ = run_import(service, csv_bytes([first, again]))

    assert (summary.imported_new, summary.rejected) == (1, 1)
    assert problems == [RowProblem(3, "id_card_number", "身份证号", "the same identity card number as row 2")]


def _born(row: dict[str, str]) -> date:
    return parse_date(row["出生日期"])


# --------------------------------------------------------------------------------------------------------- XLSX


def xlsx_bytes(rows: Sequence[Sequence[Any]], title: str | None = None) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    if title:
        sheet.append([title])
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_xlsx_roster_with_excel_date_cells_a_title_row_and_bad_cells(service, fake):
    header = ["姓名", "性别", "出生日期", "身份证号", "乡镇", "村", "父亲状况", "父亲外出时间", "父亲是否县外", "备注"]
    born = date(2014, 7, 1)
    number = id_card(fake, born, "male")
    rows = [
        header,
        [fake.name(), "男", datetime(2014, 7, 1), number, "柳市镇", "东风村", "外出务工", datetime(2025, 1, 2), "省外",
         "x"],
        [fake.name(), "女", 41640, None, "柳市镇", "东风村", None, None, None, None],  # an Excel serial: 2014-01-01
        [fake.name(), "女", datetime(2013, 5, 5), 330382201305051234, "柳市镇", "东风村", None, None, None, None],
        [fake.name(), "女", TODAY + timedelta(days=1), None, "柳市镇", "东风村", None, None, None, None],
        [fake.name(), "女", "2012-05-05", None, "柳市镇", "东风村", "外出务工", TODAY + timedelta(days=1), "是",
         None],
    ]

    summary, problems, imported = run_import(service, xlsx_bytes(rows, title="柳市镇摸底排查"))

    assert (summary.file_format, summary.header_row, summary.rows) == ("xlsx", 2, 5)
    assert (summary.imported_new, summary.rejected, summary.ignored_columns) == (2, 3, ("备注",))
    assert problems == [
        RowProblem(5, "id_card_number", "身份证号",
                   "stored as a number, which loses digits: format the column as text and type it again"),
        RowProblem(6, "birth_date", "出生日期", "must not be in the future"),
        RowProblem(7, "father_away_since", "父亲外出时间", "must not be in the future"),
    ]
    serial_child = service.application.get_child(imported[1].registration.child_id)
    assert serial_child.birth_date == date(2014, 1, 1)
    first = service.application.get_child(imported[0].registration.child_id)
    assert first.facts["guardians"][0]["away_since"] == "2025-01-02"


# ---------------------------------------------------------------------------------------------- re-import, changes


def test_importing_the_same_file_again_changes_nothing_and_says_so(any_storage_settings, fake):
    service = build(any_storage_settings)
    try:
        data = csv_bytes([a_row(fake) for _ in range(5)] + [a_row(fake, 性别="?")])
        first, _, _ = run_import(service, data)
        events = notifications(service)

        again, problems, _ = run_import(service, data)

        assert (first.imported_new, first.changed) == (5, True)
        assert (again.imported_new, again.updated, again.unchanged, again.rejected) == (0, 0, 5, 1)
        assert again.changed is False
        assert again.import_id == first.import_id
        assert notifications(service) == events
        assert [p.row for p in problems] == [7]
    finally:
        service.application.close()


def test_a_later_roster_with_changed_facts_updates_only_those_children(service, fake):
    rows = [a_row(fake) for _ in range(3)]
    run_import(service, csv_bytes(rows))
    rows[1] = dict(rows[1], 是否残疾="是")

    summary, _, imported = run_import(service, csv_bytes(rows))

    assert (summary.imported_new, summary.updated, summary.unchanged) == (0, 1, 2)
    assert "disabled" in imported[1].registration.categories


def test_a_probable_duplicate_goes_through_the_same_matching_and_is_flagged(service, fake):
    original = a_row(fake, 姓名="王诗涵", 出生日期="2016-03-08")
    original["身份证号"] = id_card(fake, date(2016, 3, 8), "female")
    run_import(service, csv_bytes([original]))
    variant = dict(original, 姓名="王诗寒", 出生日期="2016-08-03", 身份证号="")  # homophone, day and month swapped

    summary, _, imported = run_import(service, csv_bytes([variant]))

    original_id = child_id(service, original, date(2016, 3, 8))
    assert (summary.imported_new, summary.duplicates_flagged) == (1, 1)
    assert [m.child_id for m in imported[0].registration.duplicates] == [original_id]


# ------------------------------------------------------------------------------------------- the file as a whole


def test_a_header_without_a_required_column_refuses_the_file_naming_the_column(service, fake):
    header = [h for h in HEADER if h != "出生日期"]

    with pytest.raises(Unprocessable) as refused:
        run_import(service, csv_bytes([a_row(fake)], header=header))

    assert [(e.field, e.reason) for e in refused.value.errors] == [
        ("birth_date", "required column missing: 出生日期 (birth_date)")
    ]
    assert notifications(service) == 0


def test_a_column_named_twice_refuses_the_file(service, fake):
    with pytest.raises(Unprocessable) as refused:
        run_import(service, csv_bytes([a_row(fake)], header=[*HEADER, "name"]))

    assert [(e.field, e.reason) for e in refused.value.errors] == [("name", "column named twice (姓名 and name)")]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "an old Excel .xls workbook: save it as .xlsx or .csv"),
        (b"\xff\xfe\x00\x00\xff" * 10, "neither an XLSX workbook nor CSV text in UTF-8 or GB18030"),
        (b"PK\x03\x04 not really a zip", "not a readable XLSX workbook"),
    ],
)
def test_a_file_that_is_not_a_roster_is_refused(service, data, reason):
    with pytest.raises(Unprocessable) as refused:
        run_import(service, data)

    assert [(e.field, e.reason) for e in refused.value.errors] == [("file", reason)]


def test_an_unknown_agency_is_refused(service):
    with pytest.raises(Unprocessable) as refused:
        SurveyImport(service.application.register_children, agency="mafia")

    assert [e.field for e in refused.value.errors] == ["agency"]


# ------------------------------------------------------------------------------------------------- cell values


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2016-05-12", date(2016, 5, 12)),
        ("2016/5/2", date(2016, 5, 2)),
        ("2016.05.12", date(2016, 5, 12)),
        ("2016年5月12日", date(2016, 5, 12)),
        ("20160512", date(2016, 5, 12)),
        (20160512, date(2016, 5, 12)),
        ("2016-05-12 00:00:00", date(2016, 5, 12)),
        (datetime(2016, 5, 12, 0, 0), date(2016, 5, 12)),
        (42502, date(2016, 5, 12)),
        ("2024-02-29", date(2024, 2, 29)),
    ],
)
def test_dates_are_read_in_the_forms_rosters_use(value, expected):
    assert parse_date(value) == expected


@pytest.mark.parametrize("value", ["2023-02-29", "2016-13-01", "12/05/2016", "去年", 42502.5])
def test_what_is_not_a_date_is_refused(value):
    with pytest.raises(RowError):
        parse_date(value)


def test_birth_date_edges_born_today_ok_eighteen_today_refused(service, fake):
    eighteen_today = TODAY.replace(year=TODAY.year - 18) if not (TODAY.month == 2 and TODAY.day == 29) else None
    rows = [
        a_row(fake, 出生日期=TODAY.isoformat(), 身份证号=""),
        a_row(fake, 出生日期=(TODAY + timedelta(days=1)).isoformat(), 身份证号=""),
    ]
    if eighteen_today is not None:
        rows.append(a_row(fake, 出生日期=eighteen_today.isoformat(), 身份证号=""))
        rows.append(a_row(fake, 出生日期=(eighteen_today + timedelta(days=1)).isoformat(), 身份证号=""))

    summary, problems, _ = run_import(service, csv_bytes(rows))

    expected = [RowProblem(3, "birth_date", "出生日期", "must not be in the future")]
    if eighteen_today is not None:
        expected.append(RowProblem(4, "birth_date", "出生日期", "the child must be under 18"))
    assert problems == expected
    assert summary.imported_new == len(rows) - len(expected)


def test_identity_card_numbers_are_checked_against_check_digit_birth_date_and_sex(fake):
    born = date(2015, 6, 1)
    number = id_card(fake, born, "male")

    assert parse_id_card(number.lower(), born, "male") == number.upper()
    for other_born, sex, reason in [
        (date(2015, 1, 6), "male", "the birth date inside the number differs from birth_date"),
        (born, "female", "the sex digit of the number differs from sex"),
    ]:
        with pytest.raises(RowError, match=reason):
            parse_id_card(number, other_born, sex)
    with pytest.raises(RowError, match="18 characters"):
        parse_id_card(number[:17], born, "male")


def test_a_parent_with_a_date_of_leaving_but_no_status_counts_as_away_for_work(service, fake):
    row = a_row(fake, 父亲状况="")

    _, problems, imported = run_import(service, csv_bytes([row]))

    child = service.application.get_child(imported[0].registration.child_id)
    assert problems == []
    assert child.facts["guardians"][0]["status"] == "away_for_work"


@pytest.mark.parametrize(
    ("header", "key"),
    [("姓名", "name"), ("* 出生日期", "birth_date"), ("出生日期(YYYY-MM-DD)", "birth_date"),
     ("乡镇（街道）", "township"), ("Birth_Date", "birth_date"), ("备注", None), ("", None)],
)
def test_headers_are_recognised_in_chinese_english_with_marks_and_hints(header, key):
    assert column_for(header) == key


def test_the_import_id_is_the_sha256_of_the_file():
    data = "姓名,性别\n".encode()

    assert scan(io.BytesIO(data)).import_id == hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------------- the API


def api_client(service: IntakeService) -> TestClient:
    return client_for(service_api(service.settings, service))


def upload(client: TestClient, data: bytes, name: str = "roster.csv", **form: str) -> Any:
    return client.post("/v1/survey-imports", files={"file": (name, data, "text/csv")}, data=form)


def test_the_api_imports_an_upload_201_then_200_when_the_same_file_comes_again(service, fake):
    client = api_client(service)
    data = csv_bytes([a_row(fake), a_row(fake, 出生日期="明年")])

    first = upload(client, data, agency="township")
    again = upload(client, data, agency="township")

    assert first.status_code == 201
    body = first.json()
    assert {k: body[k] for k in ("rows", "imported_new", "updated", "unchanged", "rejected", "changed", "agency")} == {
        "rows": 2, "imported_new": 1, "updated": 0, "unchanged": 0, "rejected": 1, "changed": True,
        "agency": "township",
    }
    assert body["errors"] == [{"row": 3, "field": "birth_date", "column": "出生日期",
                               "reason": "not a date: write YYYY-MM-DD, YYYY/M/D or YYYY年M月D日"}]
    assert body["import_id"] == hashlib.sha256(data).hexdigest()
    assert again.status_code == 200
    assert (again.json()["changed"], again.json()["unchanged"]) == (False, 1)


def test_the_api_refuses_a_wrong_header_with_a_problem_naming_the_column(service, fake):
    response = upload(api_client(service), csv_bytes([a_row(fake)], header=[h for h in HEADER if h != "村"]))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [{"field": "village", "reason": "required column missing: 村 (village)"}]


def test_the_api_takes_an_xlsx_upload(service, fake):
    row = a_row(fake)
    data = xlsx_bytes([list(row), list(row.values())])

    response = upload(api_client(service), data, name="roster.xlsx")

    assert response.status_code == 201
    assert (response.json()["file_format"], response.json()["imported_new"]) == ("xlsx", 1)


def test_uploads_may_exceed_the_json_body_limit_up_to_the_upload_limit_then_413(fake):
    settings = Settings(storage="memory", max_body_bytes=1024, max_upload_bytes=64 * 1024)
    service = build(settings)
    client = api_client(service)
    data = csv_bytes([a_row(fake) for _ in range(20)])  # about 4 KB: over the JSON limit, under the upload limit
    too_big = data + b"\n" * (64 * 1024)

    accepted = upload(client, data)
    refused = upload(client, too_big)
    report = client.post("/v1/reports", content=b"{" + b" " * 2048 + b"}", headers={"content-type": "application/json"})

    assert len(data) > 1024
    assert (accepted.status_code, accepted.json()["imported_new"]) == (201, 20)
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"] == [{"field": "body", "reason": f"larger than {64 * 1024} bytes"}]
    assert report.status_code == 413  # the other routes keep the general limit


def test_the_api_refuses_an_unknown_agency_and_a_missing_file(service, fake):
    client = api_client(service)

    unknown = upload(client, csv_bytes([a_row(fake)]), agency="mafia")
    no_file = client.post("/v1/survey-imports", data={"agency": "township"})

    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["agency"]
    assert no_file.status_code == 422
    assert [e["field"] for e in no_file.json()["errors"]] == ["file"]


# ------------------------------------------------------------------------------------------------------- the CLI


def test_the_cli_imports_a_roster_writes_the_error_report_and_says_when_nothing_changed(tmp_path, monkeypatch, capsys,
                                                                                        fake):
    monkeypatch.setenv("HUHANG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HUHANG_STORAGE", "sqlite")
    roster = tmp_path / "虹桥镇.csv"
    good = a_row(fake)
    roster.write_bytes(csv_bytes([good, a_row(fake, 性别="?"), a_row(fake)]))

    first = cli.main(["import-survey", str(roster), "--agency", "township"])
    first_out = capsys.readouterr().err
    again = cli.main(["import-survey", str(roster), "--errors", str(tmp_path / "out" / "errors.csv")])
    again_out = capsys.readouterr().err

    assert (first, again) == (1, 1)  # a row rejected both times
    assert "new files:                   2" in first_out
    assert "rows/s" in first_out
    report = (tmp_path / "虹桥镇.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert report == ["row,field,column,reason", "3,sex,性别,\"unknown sex '?': one of female, male\""]
    assert (tmp_path / "out" / "errors.csv").read_text(encoding="utf-8-sig").splitlines() == report
    assert "Nothing changed" not in first_out
    assert "unchanged:                   2" in again_out
    assert "Nothing changed" in again_out
    stored = build(Settings(storage="sqlite", data_dir=tmp_path / "data"))
    try:
        assert stored.application.get_child(child_id(stored, good, _born(good))).registered_by == "township"
    finally:
        stored.application.close()


def test_the_cli_refuses_a_wrong_file_with_status_2_and_writes_no_report(tmp_path, monkeypatch, capsys, fake):
    monkeypatch.setenv("HUHANG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HUHANG_STORAGE", "sqlite")
    roster = tmp_path / "roster.csv"
    roster.write_bytes(csv_bytes([a_row(fake)], header=[h for h in HEADER if h != "性别"]))

    status = cli.main(["import-survey", str(roster)])

    assert status == 2
    assert "sex: required column missing: 性别 (sex)" in capsys.readouterr().err
    assert not (tmp_path / "roster.errors.csv").exists()


def test_the_cli_exits_0_when_every_row_imports(tmp_path, monkeypatch, capsys, fake):
    monkeypatch.setenv("HUHANG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HUHANG_STORAGE", "sqlite")
    roster = tmp_path / "roster.xlsx"
    rows = [a_row(fake) for _ in range(3)]
    roster.write_bytes(xlsx_bytes([list(rows[0]), *[list(r.values()) for r in rows]]))

    assert cli.main(["import-survey", str(roster)]) == 0
    assert "new files:                   3" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- the collector's settings


def test_while_imports_run_the_collector_runs_less_often_and_its_settings_come_back_after_the_last(service, fake):
    before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    seen: list[tuple[tuple[int, int, int], int]] = []

    def register(commands: Any) -> Any:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        return service.application.register_children(commands)

    with import_gc_settings():
        assert gc.get_threshold() == IMPORT_GC_THRESHOLDS
        SurveyImport(register, agency="township").run(io.BytesIO(csv_bytes([a_row(fake)])), CollectedErrors())
        assert gc.get_threshold() == IMPORT_GC_THRESHOLDS  # an import ending while another runs changes nothing
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen_before)

    with pytest.raises(Unprocessable):  # refused when its header is read: the settings come back all the same
        SurveyImport(register, agency="township").run(io.BytesIO(csv_bytes([], header=["姓名"])), CollectedErrors())
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen_before)
    SurveyImport(register, agency="township").run(io.BytesIO(csv_bytes([a_row(fake)])), CollectedErrors())

    assert len(seen) == 2
    assert all(threshold == IMPORT_GC_THRESHOLDS and frozen > frozen_before for threshold, frozen in seen)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen_before)

"""Monthly and annual indicator reports over HTTP, as HTML, PDF, JSON and CSV (issue 8).

``GET /v1/reports/indicators/monthly?unit_kind=county|township&unit=&month=YYYY-MM&format=html|pdf|json|csv`` and
``.../annual?year=YYYY``. One ``Report`` (services/indicators/reports.py) is computed per request and rendered:
HTML from a Jinja2 template with inline SVG charts (report_charts.py), PDF with reportlab (its built-in CID font
STSong-Light for Chinese: no font files needed), JSON and CSV as the figures themselves.

Readers: civil affairs, the working committee office, auditors and the platform for any unit; a township's own
principals for their township's report.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from huhang.access.guards import FORBIDDEN_DOC, PrincipalDep, indicator_report_reader
from huhang.auth.principal import Principal
from huhang.problems import PROBLEM_RESPONSES
from services.indicators.model import IndicatorQueries
from services.indicators.report_charts import (
    FILL,
    PDF_FONT,
    agency_bars_drawing,
    agency_bars_svg,
    tile_map_drawing,
    tile_map_svg,
    trend_drawing,
    trend_svg,
)
from services.indicators.reports import (
    CHINA,
    COLOUR_ZH,
    TREND_MONTHS,
    Report,
    ReportKind,
    build_report,
    format_value,
    report_csv,
    report_json,
)

Format = Literal["html", "pdf", "json", "csv"]
UnitKindParam = Literal["county", "township"]
FORMAT_DOC: dict[int | str, dict[str, Any]] = {200: {
    "description": "The report: HTML (default), PDF, JSON or CSV (`format`)",
    "content": {"text/html": {}, "application/pdf": {}, "application/json": {}, "text/csv": {}},
}}
RESPONSES = {**PROBLEM_RESPONSES, **FORBIDDEN_DOC, **FORMAT_DOC}


def install(api: FastAPI, queries: IndicatorQueries) -> None:
    """Put the read models the reports ask into ``api.state`` (called by the indicators service's ``bind``)."""
    api.state.report_queries = queries


def get_queries(request: Request) -> IndicatorQueries:
    return request.app.state.report_queries


def report_reader(request: Request, principal: PrincipalDep) -> Principal:
    """Who reads the report asked for: the unit is read from the query here, before the route validates it (a
    refused caller learns nothing from validation errors; the route's own validation answers 422 to the rest)."""
    township = request.query_params.get("unit") if request.query_params.get("unit_kind") == "township" else None
    indicator_report_reader(principal, township.strip() if township else None)
    return principal


QueriesDep = Annotated[IndicatorQueries, Depends(get_queries)]
ReportReader = Annotated[Principal, Depends(report_reader)]
router = APIRouter(prefix="/v1/reports/indicators", tags=["indicator reports"])

UnitKindQ = Annotated[UnitKindParam, Query(description="`county` (the whole county) or `township`")]
UnitQ = Annotated[str | None, Query(max_length=50, description="The township's name (a township report)")]
FormatQ = Annotated[Format, Query(description="html (default), pdf, json or csv")]


@router.get("/monthly", responses=RESPONSES, response_class=Response,
            summary="The monthly indicator report of the county or a township (HTML, PDF, JSON, CSV)")
def monthly_report(
    queries: QueriesDep, _: ReportReader,
    month: Annotated[str, Query(description="YYYY-MM", max_length=7)],
    unit_kind: UnitKindQ = "county", unit: UnitQ = None, format: FormatQ = "html",
) -> Response:
    return _answer(queries, "monthly", unit_kind, unit, month, format)


@router.get("/annual", responses=RESPONSES, response_class=Response,
            summary="The annual indicator report of the county or a township (HTML, PDF, JSON, CSV)")
def annual_report(
    queries: QueriesDep, _: ReportReader,
    year: Annotated[str, Query(description="YYYY", max_length=4)],
    unit_kind: UnitKindQ = "county", unit: UnitQ = None, format: FormatQ = "html",
) -> Response:
    return _answer(queries, "annual", unit_kind, unit, year, format)


def _answer(queries: IndicatorQueries, kind: ReportKind, unit_kind: UnitKindParam, unit: str | None, period: str,
            format: Format) -> Response:
    unit = unit.strip() if unit else None
    report = build_report(queries, kind, unit_kind, unit, period, datetime.now(UTC))
    name = f"indicators-{kind}-{'county' if unit_kind == 'county' else 'township'}-{period}"
    if format == "json":
        return JSONResponse(report_json(report))
    if format == "csv":
        return Response(report_csv(report), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if format == "pdf":
        return Response(render_pdf(report), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})
    return HTMLResponse(render_html(report))


# --- HTML ----------------------------------------------------------------------------------------------------------

_environment: Environment | None = None


def _templates() -> Environment:
    global _environment  # built on first use, not at import
    if _environment is None:
        _environment = Environment(loader=PackageLoader("services.indicators", "templates"),
                                   autoescape=select_autoescape(["html", "j2"]))
    return _environment


def _as_of_label(report: Report) -> str:
    return report.as_of.astimezone(CHINA).strftime("%Y年%m月%d日 %H:%M")


def render_html(report: Report) -> str:
    measures = {t.code: t.measure for t in report.tables}
    return _templates().get_template("indicator_report.html.j2").render(
        report=report, as_of_label=_as_of_label(report), colour_zh=COLOUR_ZH, trend_months=TREND_MONTHS,
        fmt=format_value, count=lambda n, hidden: "*" if hidden else ("—" if n is None else str(n)),
        maps=[{"map": m, "svg": tile_map_svg(m, f"map{i}"), "measure": measures.get(m.indicator or "", "share")}
              for i, m in enumerate(report.maps)],
        trends=[{"trend": t, "svg": trend_svg(t, f"trend{i}")} for i, t in enumerate(report.trends)],
        agency_svg=agency_bars_svg(report.agency_times, "agencies") if report.agency_times else "",
    )


# --- PDF -----------------------------------------------------------------------------------------------------------


def _font() -> str:
    if PDF_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(PDF_FONT))
    return PDF_FONT


def render_pdf(report: Report) -> bytes:
    font = _font()
    title = ParagraphStyle("title", fontName=font, fontSize=16, leading=22, spaceAfter=4)
    heading = ParagraphStyle("heading", fontName=font, fontSize=12, leading=16, spaceBefore=8, spaceAfter=4)
    body = ParagraphStyle("body", fontName=font, fontSize=9, leading=13)
    small = ParagraphStyle("small", fontName=font, fontSize=8, leading=11, textColor=colors.HexColor("#555555"))
    story: list[Any] = [
        Paragraph(report.title, title),
        Paragraph(f"统计期间：{report.period_label}　数据截至：{_as_of_label(report)}", body),
        Paragraph("赋色概览：" + "　".join(f"{COLOUR_ZH[c]}色 {report.colour_summary[c]} 项"
                                        for c in ("green", "yellow", "red")), body),
    ]
    for tile_map in report.maps:
        story += [Spacer(1, 4 * mm), tile_map_drawing(tile_map)]
    if report.trends:
        story.append(Paragraph(f"近{TREND_MONTHS}个月趋势", heading))
        story += [trend_drawing(t) for t in report.trends]
    story.append(Paragraph("分项指标", heading))
    for table in report.tables:
        story.append(Paragraph(f"{table.name_zh}" + (f"（{table.month}）" if table.month else ""), body))
        story.append(_pdf_table(table.measure, [table.total, *table.breakdown, *table.rows], font))
    if report.agency_times:
        month = f"（{report.agency_times_month}）" if report.agency_times_month else ""
        story += [Paragraph(f"各部门转介响应时长{month}", heading), agency_bars_drawing(report.agency_times)]
        rows = [["部门", "受理", "办结"]] + [
            [a.label, format_value("hours", a.accept_hours, False), format_value("hours", a.complete_hours, False)]
            for a in report.agency_times]
        story.append(_styled(Table(rows, hAlign="LEFT"), font))
    story += [Spacer(1, 4 * mm)] + [Paragraph(n, small) for n in report.notes]
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, title=report.title, author="Huhang (护航)", leftMargin=16 * mm,
                      rightMargin=16 * mm, topMargin=16 * mm, bottomMargin=16 * mm).build(story)
    return out.getvalue()


def _pdf_table(measure: str, cells: list[Any], font: str) -> Table:
    rows = [["单位", "数值", "分子", "分母", "颜色"]]
    for i, c in enumerate(cells):
        rows.append([
            f"{c.label}（合计）" if i == 0 else c.label, format_value(measure, c.value, c.suppressed),
            "*" if c.suppressed else ("—" if c.numerator is None else str(c.numerator)),
            "*" if c.suppressed else ("—" if c.denominator is None else str(c.denominator)),
            COLOUR_ZH.get(None if c.suppressed else c.colour, "—"),
        ])
    table = _styled(Table(rows, hAlign="LEFT", repeatRows=1), font)
    for i, c in enumerate(cells, start=1):
        colour = None if c.suppressed else c.colour
        if colour:
            table.setStyle(TableStyle([("BACKGROUND", (4, i), (4, i), colors.HexColor(FILL[colour])),
                                       ("TEXTCOLOR", (4, i), (4, i), colors.white if colour != "yellow"
                                        else colors.black)]))
    return table


def _styled(table: Table, font: str) -> Table:
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), font), ("FONTSIZE", (0, 0), (-1, -1), 8),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bdbdbd")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")), ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
    ]))
    return table

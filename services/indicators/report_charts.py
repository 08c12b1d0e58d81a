"""The report's charts, drawn from the report's content (services/indicators/reports.py), twice: inline SVG for
the HTML report and reportlab drawings for the PDF.

SVG is written here as text: no JavaScript, no network, no chart library in the browser. Every chart has a
``<title>`` and a ``<desc>`` (its text alternative, read by screen readers) and the HTML puts a table of the same
figures beside it. Colours are the plan's three (赋色管理) with a grey for figures not shown; a tile's colour is
never the only cue: its label and the table say the same in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from reportlab.graphics.charts.barcharts import HorizontalBarChart
from reportlab.graphics.shapes import Circle, Drawing, Line, PolyLine, Rect, String
from reportlab.lib import colors

from services.indicators.reports import COLOUR_ZH, AgencyTime, TileMap, Trend, format_value

FILL = {"green": "#2e7d32", "yellow": "#f9a825", "red": "#c62828", None: "#9e9e9e"}
INK = {"green": "#ffffff", "yellow": "#000000", "red": "#ffffff", None: "#000000"}
ACCEPT_FILL, COMPLETE_FILL = "#1565c0", "#6a1b9a"
PDF_FONT = "STSong-Light"


def _svg(width: int, height: int, title: str, desc: str, body: str, chart_id: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-labelledby="{chart_id}-t {chart_id}-d">'
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(desc)}</desc>'
        f"{body}</svg>"
    )


# --- trend lines ---------------------------------------------------------------------------------------------------


def trend_svg(trend: Trend, chart_id: str, width: int = 640, height: int = 220) -> str:
    """A line over the months (a share, 0 to 100 %); a month not shown (suppressed or nothing to measure) breaks
    the line. Points are coloured as their figure."""
    left, right, top, bottom = 48, 12, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(trend.points), 1)
    step = plot_w / max(n - 1, 1)

    def x(i: int) -> float:
        return left + i * step

    def y(value: float) -> float:
        return top + plot_h * (1 - max(0.0, min(1.0, value)))

    parts = []
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     f'stroke="#e0e0e0"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{tick * 100:.0f}%</text>')
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, p in enumerate(trend.points):
        if p.value is None or p.suppressed:
            if segment:
                segments.append(segment)
            segment = []
            continue
        segment.append(f"{x(i):.1f},{y(p.value):.1f}")
    if segment:
        segments.append(segment)
    for seg in segments:
        parts.append(f'<polyline fill="none" stroke="#37474f" stroke-width="2" points="{" ".join(seg)}"/>')
    for i, p in enumerate(trend.points):
        label = p.month[2:].replace("-", "/")
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" font-size="10" '
                     f'text-anchor="middle">{escape(label)}</text>')
        if p.value is not None and not p.suppressed:
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="4" fill="{FILL.get(p.colour, FILL[None])}"'
                         f' stroke="#263238"><title>{escape(p.month)}: {format_value("share", p.value, False)}'
                         f"</title></circle>")
    shown = [p for p in trend.points if p.value is not None and not p.suppressed]
    desc = (f"{trend.name_zh}，近{len(trend.points)}个月：" + "；".join(
        f"{p.month} {format_value(trend.measure, p.value, p.suppressed)}" for p in trend.points)) if shown else \
        f"{trend.name_zh}：近{len(trend.points)}个月均无可公开的数据。"
    return _svg(width, height, f"{trend.name_zh}趋势", desc, "".join(parts), chart_id)


# --- the tile map --------------------------------------------------------------------------------------------------


def _grid(count: int) -> int:
    return max(1, math.ceil(math.sqrt(count)))


def tile_map_svg(tile_map: TileMap, chart_id: str, tile: int = 96) -> str:
    """The townships (or villages) as a grid of tiles in name order, each in its colour with its name and colour
    written on it."""
    cols = _grid(len(tile_map.tiles))
    rows = max(1, math.ceil(len(tile_map.tiles) / cols))
    parts = []
    for i, cell in enumerate(tile_map.tiles):
        cx, cy = (i % cols) * (tile + 6), (i // cols) * (tile + 6)
        colour = None if cell.suppressed else cell.colour
        parts.append(
            f'<g><rect x="{cx}" y="{cy}" width="{tile}" height="{tile}" rx="6" fill="{FILL.get(colour, FILL[None])}"/>'
            f'<text x="{cx + tile / 2}" y="{cy + tile / 2 - 4}" font-size="13" text-anchor="middle" '
            f'fill="{INK.get(colour, "#000")}">{escape(cell.label)}</text>'
            f'<text x="{cx + tile / 2}" y="{cy + tile / 2 + 16}" font-size="12" text-anchor="middle" '
            f'fill="{INK.get(colour, "#000")}">{COLOUR_ZH.get(colour, "—")}</text></g>'
        )
    desc = "；".join(f"{c.label}：{COLOUR_ZH.get(None if c.suppressed else c.colour, '—')}" for c in tile_map.tiles)
    return _svg(cols * (tile + 6), rows * (tile + 6), tile_map.title, desc or "无数据", "".join(parts), chart_id)


# --- agency response times ------------------------------------------------------------------------------------------


def agency_bars_svg(times: Sequence[AgencyTime], chart_id: str, width: int = 640) -> str:
    """Two bars per agency: median hours to accept and to complete a referral."""
    label_w, bar_h, gap = 200, 12, 10
    height = max(1, len(times)) * (2 * bar_h + gap) + 30
    top = max([t.accept_hours or 0 for t in times] + [t.complete_hours or 0 for t in times] + [1.0])
    scale = (width - label_w - 80) / top
    parts = [f'<rect x="{label_w}" y="2" width="12" height="10" fill="{ACCEPT_FILL}"/>'
             f'<text x="{label_w + 16}" y="11" font-size="11">受理</text>'
             f'<rect x="{label_w + 60}" y="2" width="12" height="10" fill="{COMPLETE_FILL}"/>'
             f'<text x="{label_w + 76}" y="11" font-size="11">办结</text>']
    for i, t in enumerate(times):
        y0 = 24 + i * (2 * bar_h + gap)
        parts.append(f'<text x="{label_w - 6}" y="{y0 + bar_h + 4}" font-size="12" text-anchor="end">'
                     f"{escape(t.label)}</text>")
        for j, (value, fill) in enumerate(((t.accept_hours, ACCEPT_FILL), (t.complete_hours, COMPLETE_FILL))):
            yy = y0 + j * bar_h
            w = (value or 0) * scale
            parts.append(f'<rect x="{label_w}" y="{yy}" width="{w:.1f}" height="{bar_h - 2}" fill="{fill}"/>'
                         f'<text x="{label_w + w + 4:.1f}" y="{yy + bar_h - 3}" font-size="10">'
                         f'{format_value("hours", value, False)}</text>')
    desc = "；".join(f"{t.label}：受理 {format_value('hours', t.accept_hours, False)}，办结 "
                    f"{format_value('hours', t.complete_hours, False)}" for t in times) or "无数据"
    return _svg(width, height, "各部门转介响应时长（中位数）", desc, "".join(parts), chart_id)


# --- the same charts for the PDF (reportlab.graphics) ----------------------------------------------------------------


def trend_drawing(trend: Trend, width: float = 460, height: float = 150) -> Drawing:
    """The SVG trend's twin, drawn with shapes: reportlab's line charts join across gaps or fail on a lone point,
    and a month not shown must break the line."""
    left, right, top, bottom = 36, 10, 18, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(trend.points) - 1, 1)
    drawing = Drawing(width, height)
    drawing.add(String(left, height - 10, f"{trend.name_zh}（%）", fontName=PDF_FONT, fontSize=9))

    def y(value: float) -> float:
        return bottom + plot_h * max(0.0, min(1.0, value))

    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        drawing.add(Line(left, y(tick), width - right, y(tick), strokeColor=colors.HexColor("#e0e0e0"),
                         strokeWidth=0.5))
        drawing.add(String(left - 4, y(tick) - 3, f"{tick * 100:.0f}%", fontSize=6, textAnchor="end"))
    segment: list[float] = []
    for i, p in enumerate([*trend.points, None]):
        if p is None or p.value is None or p.suppressed:
            if len(segment) >= 4:
                drawing.add(PolyLine(segment, strokeColor=colors.HexColor("#37474f"), strokeWidth=1.5))
            segment = []
            continue
        segment += [left + i * step, y(p.value)]
    for i, p in enumerate(trend.points):
        drawing.add(String(left + i * step, bottom - 12, p.month[2:].replace("-", "/"), fontName=PDF_FONT,
                           fontSize=6, textAnchor="middle"))
        if p.value is not None and not p.suppressed:
            drawing.add(Circle(left + i * step, y(p.value), 2.5, fillColor=colors.HexColor(FILL.get(p.colour,
                               FILL[None])), strokeColor=colors.HexColor("#263238"), strokeWidth=0.5))
    return drawing


def tile_map_drawing(tile_map: TileMap, tile: float = 60) -> Drawing:
    cols = _grid(len(tile_map.tiles))
    rows = max(1, math.ceil(len(tile_map.tiles) / cols))
    height = rows * (tile + 4) + 16
    drawing = Drawing(cols * (tile + 4), height)
    drawing.add(String(0, height - 10, tile_map.title, fontName=PDF_FONT, fontSize=9))
    for i, cell in enumerate(tile_map.tiles):
        colour = None if cell.suppressed else cell.colour
        x, y = (i % cols) * (tile + 4), height - 16 - (i // cols + 1) * (tile + 4)
        drawing.add(Rect(x, y, tile, tile, rx=4, ry=4, fillColor=colors.HexColor(FILL.get(colour, FILL[None])),
                         strokeColor=None))
        ink = colors.HexColor(INK.get(colour, "#000000"))
        drawing.add(String(x + tile / 2, y + tile / 2 + 2, cell.label[:6], fontName=PDF_FONT, fontSize=8,
                           textAnchor="middle", fillColor=ink))
        drawing.add(String(x + tile / 2, y + tile / 2 - 10, COLOUR_ZH.get(colour, "—"), fontName=PDF_FONT,
                           fontSize=8, textAnchor="middle", fillColor=ink))
    return drawing


def agency_bars_drawing(times: Sequence[AgencyTime], width: float = 460) -> Drawing:
    height = max(1, len(times)) * 22 + 30
    drawing = Drawing(width, height)
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 130, 10, width - 160, height - 30
    # reportlab draws the first category at the bottom; reversed, the agencies read top-down as in the table
    ordered = list(reversed(times))
    chart.data = [[t.accept_hours or 0 for t in ordered], [t.complete_hours or 0 for t in ordered]]
    chart.categoryAxis.categoryNames = [t.label for t in ordered]
    chart.categoryAxis.labels.fontName = PDF_FONT
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontSize = 7
    chart.bars[0].fillColor = colors.HexColor(ACCEPT_FILL)
    chart.bars[1].fillColor = colors.HexColor(COMPLETE_FILL)
    drawing.add(chart)
    drawing.add(String(130, height - 12, "转介响应时长中位数（小时）：蓝 受理，紫 办结", fontName=PDF_FONT, fontSize=8))
    return drawing

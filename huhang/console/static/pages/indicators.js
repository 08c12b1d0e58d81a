// The lead agency's indicator pages (issue 9): a colour map of the units (county, townships, villages) for every
// indicator, drill-down from county to township to village to the children behind a figure (for those the API
// lets see them), and one unit's trend. Main content in one request: GET /v1/indicators/values; the indicators'
// names follow from the catalogue (GET /v1/indicators) when it answers.

import { api, query } from "../api.js";
import { h, replace } from "../dom.js";
import { formatDate, label, language, t } from "../i18n.js";

const KINDS = ["county", "township", "village", "agency"];

function params(search) {
  const p = new URLSearchParams((search || "").replace(/^\?/, ""));
  return { kind: KINDS.includes(p.get("kind")) ? p.get("kind") : "township", within: p.get("within") || "" };
}

function figure(row) {
  if (row.suppressed) return t("indicators.suppressed");
  if (row.value === null || row.value === undefined) return "—";
  return row.value <= 1 && row.denominator ? `${(row.value * 100).toFixed(1)}%` : String(Math.round(row.value * 10) / 10);
}

function cell(row, code) {
  if (!row) return h("td", {}, "—");
  const trend = `#/indicators/trend?${new URLSearchParams({ code, kind: row.unit_kind, unit: row.unit })}`;
  return h("td", { "data-label": code },
    h("a", { href: trend, class: `badge colour-${row.colour || "none"}` }, figure(row),
      h("span", { class: "visually-hidden" }, ` ${label("colour", row.colour || "none")}`)));
}

async function names() {
  try {
    const answer = await api("/v1/indicators");
    if (!answer.ok) return {};
    return Object.fromEntries(answer.body.map((i) => [i.code, language() === "en" ? i.name_en : i.name_zh]));
  } catch {
    return {};
  }
}

export async function indicatorsPage(main, search) {
  const wanted = params(search);
  const answer = await api(`/v1/indicators/values${query({ unit_kind: wanted.kind })}`);
  const title = h("h1", {}, t("indicators.title"), h("span", { class: "sub" }, label("unit_kind", wanted.kind)));
  const levels = h("p", { class: "actions" }, KINDS.map((k) => h("a", {
    href: `#/indicators?kind=${k}`, "aria-current": k === wanted.kind ? "page" : null, class: "button secondary",
  }, label("unit_kind", k))));
  if (!answer.ok) {
    replace(main, title, levels, h("div", { class: "error", role: "alert" }, answer.body?.detail || ""));
    return;
  }
  const rows = answer.body.filter((r) => !r.breakdown && (!wanted.within || r.unit.startsWith(`${wanted.within}/`)));
  const codes = [...new Set(rows.map((r) => r.indicator))].sort();
  const units = [...new Set(rows.map((r) => r.unit))].sort();
  const at = new Map(rows.map((r) => [`${r.indicator}|${r.unit}`, r]));
  const headers = codes.map((c) => h("th", { scope: "col", "data-code": c }, c));
  const body = units.map((unit) => h("tr", {},
    h("th", { scope: "row" }, wanted.kind === "township"
      ? h("a", { href: `#/indicators?${new URLSearchParams({ kind: "village", within: unit })}` }, unit) : unit),
    codes.map((c) => cell(at.get(`${c}|${unit}`), c))));
  replace(main, title, levels,
    wanted.within ? h("p", {}, t("indicators.within", { unit: wanted.within })) : null,
    rows.length ? h("div", { class: "scroll" }, h("table", { class: "list map", "data-testid": "indicator-map" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("indicators.unit")), headers)),
      h("tbody", {}, body))) : h("p", {}, t("indicators.empty")),
    rows.length ? h("p", { class: "muted" }, t("indicators.as_of", { when: formatDate(rows[0].as_of) })) : null);
  const named = await names();
  for (const th of headers) if (named[th.dataset.code]) th.textContent = named[th.dataset.code];
  for (const td of main.querySelectorAll("td[data-label]")) {
    if (named[td.dataset.label]) td.dataset.label = named[td.dataset.label];
  }
}

export async function trendPage(main, search) {
  const p = new URLSearchParams((search || "").replace(/^\?/, ""));
  const code = p.get("code") || "";
  const kind = p.get("kind") || "township";
  const unit = p.get("unit") || "";
  const answer = await api(`/v1/indicators/${encodeURIComponent(code)}/trend${query({ unit_kind: kind, unit })}`);
  const parts = [h("p", {}, h("a", { href: `#/indicators?kind=${kind}` }, t("indicators.back"))),
    h("h1", {}, code, h("span", { class: "sub" }, unit))];
  if (!answer.ok) {
    replace(main, parts, h("div", { class: "error", role: "alert" }, answer.body?.detail || ""));
    return;
  }
  parts.push(h("table", { class: "list", "data-testid": "indicator-trend" },
    h("thead", {}, h("tr", {}, [t("indicators.month"), t("indicators.figure"), t("indicators.colour")].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, answer.body.map((r) => h("tr", {},
      h("td", { "data-label": t("indicators.month") }, r.month || formatDate(r.as_of)),
      h("td", { "data-label": t("indicators.figure") }, figure(r)),
      h("td", { "data-label": t("indicators.colour") }, h("span", { class: `badge colour-${r.colour || "none"}` }, label("colour", r.colour || "none"))))))));
  if (kind === "village" || kind === "township") {
    const children = await api(`/v1/indicators/${encodeURIComponent(code)}/children${query({ unit_kind: kind, unit })}`);
    parts.push(h("h2", {}, t("indicators.children")));
    parts.push(children.ok
      ? (children.body.length ? h("ul", { "data-testid": "indicator-children" }, children.body.map((id) => h("li", {}, h("code", {}, id)))) : h("p", {}, t("indicators.no_children")))
      : h("p", { class: "muted" }, t("indicators.children_refused")));
  }
  replace(main, parts);
}

// The auditor's page: a case as it stood at any moment (GET /v1/cases/{id}/history?as_of=), with the events
// behind it, and the tamper check.

import { api, query } from "../api.js";
import { field, h, replace, showProblem } from "../dom.js";
import { formatDate, label, t } from "../i18n.js";

function asOf(local) {
  return local ? `${local.length === 16 ? `${local}:00` : local}+08:00` : "";
}

// The case as it stood: nested parts (reports, referrals per agency, assessments...) as nested lists, not JSON.
function valueView(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (Array.isArray(value)) {
    if (!value.length) return "—";
    if (value.every((v) => v === null || typeof v !== "object")) return value.join(", ");
    return h("ul", { class: "nested" }, value.map((v) => h("li", {}, valueView(v))));
  }
  if (typeof value === "object") {
    const rows = Object.entries(value).filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && !v.length));
    return h("dl", { class: "data" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, valueView(v))]));
  }
  return String(value);
}

function caseState(state) {
  const view = valueView(state || {});
  if (view instanceof Element) {
    view.classList.add("card");
    view.dataset.testid = "case-state";
  }
  return view;
}

export async function auditPage(main, search) {
  const p = new URLSearchParams((search || "").replace(/^\?/, ""));
  const caseId = h("input", { name: "case_id", value: p.get("case_id") || "", required: true, pattern: "[0-9a-fA-F-]{36}", maxlength: 36 });
  const when = h("input", { name: "as_of", type: "datetime-local", value: p.get("as_of") || "", step: 1 });
  const form = h("form", { class: "card" },
    field(t("audit.case_id"), caseId), field(t("audit.as_of"), when, t("audit.as_of_hint")),
    h("button", { type: "submit", class: "primary" }, t("audit.show")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams({ case_id: caseId.value.trim() });
    if (when.value) next.set("as_of", when.value);
    location.hash = `#/audit?${next}`;
  });
  const parts = [h("h1", {}, t("audit.title")), form];
  if (p.get("case_id")) {
    const answer = await api(`/v1/cases/${encodeURIComponent(p.get("case_id"))}/history${query({ as_of: asOf(p.get("as_of")) })}`);
    if (!answer.ok) {
      replace(main, parts);
      showProblem(form, answer.body);
      return;
    }
    const body = answer.body;
    parts.push(
      h("h2", {}, t("audit.state", { when: formatDate(body.as_of) })), caseState(body.case),
      h("h2", {}, t("audit.events", { n: body.events.length })),
      h("table", { class: "list", "data-testid": "history-events" },
        h("thead", {}, h("tr", {}, [t("audit.time"), t("audit.type"), t("audit.service"), t("audit.actor"), t("audit.reason"), t("audit.rule")].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, body.events.map((e) => h("tr", {},
          h("td", { "data-label": t("audit.time") }, formatDate(e.time)),
          h("td", { "data-label": t("audit.type") }, label("event", e.type)),
          h("td", { "data-label": t("audit.service") }, e.service),
          h("td", { "data-label": t("audit.actor") }, label("agency", e.actor_agency), e.actor ? ` (${e.actor})` : ""),
          h("td", { "data-label": t("audit.reason") }, e.reason || "—"),
          h("td", { "data-label": t("audit.rule") }, e.rule_id ? `${e.rule_id} ${e.rule_version || ""}` : "—"))))));
  }
  if (p.get("case_id")) parts.push(await tamperCheck(p.get("case_id")));
  replace(main, parts);
}

// The tamper check of the case now (GET /v1/cases/{id}/integrity): the status in words and colour, the signed
// checkpoints the case's stored events were checked against, what is not yet covered, and each problem found.
async function tamperCheck(caseId) {
  const section = (...children) => h("section", { class: "card", "data-testid": "tamper-check" },
    h("h2", {}, t("audit.tamper")), children);
  const answer = await api(`/v1/cases/${encodeURIComponent(caseId)}/integrity`);
  if (!answer.ok) {
    const problem = answer.body || {};
    return section(h("p", { class: "error", role: "alert" }, t("audit.tamper_failed"), " ", problem.detail || problem.title || String(answer.status)));
  }
  const body = answer.body;
  const ok = body.verified;
  const status = h("p", { "data-testid": "tamper-status", "data-verified": String(ok) },
    h("span", { class: `badge ${ok ? "colour-green" : "colour-red"}` }, ok ? t("audit.tamper_verified") : t("audit.tamper_problems", { n: body.problems.length })),
    " ", ok ? t("audit.tamper_verified_hint") : t("audit.tamper_problems_hint"));
  const notes = [];
  if (body.pending) notes.push(h("p", { class: "notice", "data-testid": "tamper-pending" }, t("audit.tamper_pending_events", { n: body.pending })));
  if (body.capped) notes.push(h("p", { class: "notice" }, t("audit.tamper_capped", { n: body.max_records })));
  const services = h("table", { class: "list", "data-testid": "tamper-services" },
    h("thead", {}, h("tr", {}, [t("audit.service"), t("audit.tamper_records"), t("audit.tamper_checkpoint"), t("audit.tamper_key")].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, body.services.map((s) => h("tr", {},
      h("td", { "data-label": t("audit.service") }, s.service),
      h("td", { "data-label": t("audit.tamper_records") }, t("audit.tamper_records_of", { verified: s.records_verified, n: s.records }),
        s.not_covered.length + s.not_chained.length ? ` ${t("audit.tamper_records_pending", { n: s.not_covered.length + s.not_chained.length })}` : ""),
      h("td", { "data-label": t("audit.tamper_checkpoint") }, s.checkpoint ? t("audit.tamper_checkpoint_at", { when: formatDate(s.checkpoint.time), position: s.checkpoint.position }) : t("audit.tamper_no_checkpoint")),
      h("td", { "data-label": t("audit.tamper_key") }, s.checkpoint ? s.checkpoint.key_id : "—")))));
  const problems = body.problems.length ? h("ul", { "data-testid": "tamper-problems" }, body.problems.map((f) => h("li", { "data-kind": f.kind },
    h("strong", {}, label("integrity", f.kind)), ` (${f.kind}) — `,
    t("audit.tamper_where", { service: f.service, position: f.position ?? "—", type: f.event_type || "—" }),
    f.originator_version !== null && f.originator_version !== undefined ? `, v${f.originator_version}` : ""))) : null;
  return section(status, notes, services, problems, h("p", { class: "hint" }, t("audit.tamper_checked_at", { when: formatDate(body.checked_at) })));
}

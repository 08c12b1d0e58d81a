// The agency officer's pages: the inbox with the API's filters, a referral with its history and actions, and the
// case timeline across departments (redacted by the API for this agency; what was left out is listed).

import { api, query, session } from "../api.js";
import { choices, field, h, replace, select, showProblem } from "../dom.js";
import { formatDate, label, options, t } from "../i18n.js";

const STATUSES = ["requested", "received", "accepted", "rejected", "in-progress", "on-hold", "completed", "failed",
  "cancelled", "entered-in-error"];
const PRIORITIES = ["routine", "urgent", "asap", "stat"];
const REJECTIONS = ["not_responsible", "out_of_area", "insufficient_information", "duplicate", "already_handled", "other"];
const FAILURES = ["family_unreachable", "family_refused", "child_moved_away", "lacking_resources", "other"];
const OUTCOMES = ["resolved", "service_delivered", "referred_onward", "no_action_needed"];
const AGENCIES = ["civil_affairs", "cac", "education", "police", "justice", "finance", "hrss", "health", "emergency",
  "court", "procuratorate", "wcwc", "youth_league", "womens_federation", "dpf", "township", "village"];
// What the owner may do next (contracts/lifecycle.py, TRANSITIONS ∩ OWNER_ACTIONS); the server decides.
const NEXT = {
  requested: ["received", "accepted", "rejected"],
  received: ["accepted", "rejected"],
  accepted: ["in-progress"],
  "in-progress": ["on-hold", "completed", "failed"],
  "on-hold": ["in-progress", "failed"],
};

function params(search) {
  const p = new URLSearchParams((search || "").replace(/^\?/, ""));
  return {
    status: p.getAll("status"), priority: p.getAll("priority"), overdue: p.get("overdue") === "true",
    township: p.get("township") || "", requested_from: p.get("requested_from") || "",
    requested_to: p.get("requested_to") || "", cursor: p.get("cursor") || "",
  };
}

function dayStart(value, end) {
  return value ? `${value}T${end ? "23:59:59" : "00:00:00"}+08:00` : "";
}

export async function inboxPage(main, search) {
  const agency = session.claims.agency;
  const wanted = params(search);
  const answer = await api(`/v1/agencies/${agency}/referrals${query({
    status: wanted.status, priority: wanted.priority, overdue: wanted.overdue ? "true" : "", township: wanted.township,
    requested_from: dayStart(wanted.requested_from), requested_to: dayStart(wanted.requested_to, true),
    cursor: wanted.cursor, limit: 50,
  })}`);
  const township = h("input", { name: "township", value: wanted.township, maxlength: 50 });
  const from = h("input", { name: "requested_from", type: "date", value: wanted.requested_from });
  const to = h("input", { name: "requested_to", type: "date", value: wanted.requested_to });
  const overdue = h("input", { type: "checkbox", name: "overdue", id: "f-overdue", checked: wanted.overdue });
  const filters = h("form", { class: "filters card", "aria-label": t("inbox.filters") },
    h("details", { open: wanted.status.length || wanted.priority.length || wanted.overdue || wanted.township ? true : null },
      h("summary", {}, t("inbox.filters")),
      choices(t("inbox.status"), "status", options("status", STATUSES), { checked: wanted.status }),
      choices(t("inbox.priority"), "priority", options("priority", PRIORITIES), { checked: wanted.priority }),
      h("div", { class: "choice" }, overdue, h("label", { for: "f-overdue" }, t("inbox.overdue"))),
      field(t("inbox.township"), township), field(t("inbox.requested_from"), from), field(t("inbox.requested_to"), to),
      h("button", { type: "submit" }, t("inbox.apply"))));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(filters);
    const next = new URLSearchParams();
    for (const [name, value] of data.entries()) if (value) next.append(name, name === "overdue" ? "true" : value);
    location.hash = `#/inbox${next.toString() ? `?${next}` : ""}`;
  });
  if (!answer.ok) {
    replace(main, h("h1", {}, t("inbox.title")), filters, h("div", { class: "error", role: "alert" }, answer.body?.detail || ""));
    return;
  }
  const body = answer.body;
  const counts = Object.entries(body.counts_by_status || {}).map(([s, n]) => h("li", {}, `${label("status", s)} ${n}`));
  const rows = body.items.map((r) => h("tr", { "data-referral-id": r.referral_id, "data-child-id": r.child_id },
    h("td", { "data-label": t("inbox.referral") }, h("a", { href: `#/referral/${r.referral_id}` }, label("referral_type", r.referral_type))),
    h("td", { "data-label": t("inbox.status") }, label("status", r.status)),
    h("td", { "data-label": t("inbox.priority") }, label("priority", r.priority)),
    h("td", { "data-label": t("inbox.place") }, `${r.township} ${r.village}`),
    h("td", { "data-label": t("inbox.due") }, formatDate(r.due_at)),
    h("td", { "data-label": t("inbox.requested") }, formatDate(r.requested_at))));
  let more = null;
  if (body.next_cursor) {
    const next = new URLSearchParams((search || "").replace(/^\?/, ""));
    next.set("cursor", body.next_cursor);
    more = h("p", {}, h("a", { href: `#/inbox?${next}` }, t("inbox.more")));
  }
  replace(main,
    h("h1", {}, t("inbox.title"), h("span", { class: "sub" }, label("agency", agency))),
    h("ul", { class: "counts", "aria-label": t("inbox.counts") }, counts),
    filters,
    rows.length ? h("table", { class: "list", "data-testid": "inbox" },
      h("caption", { class: "visually-hidden" }, t("inbox.title")),
      h("thead", {}, h("tr", {}, [t("inbox.referral"), t("inbox.status"), t("inbox.priority"), t("inbox.place"), t("inbox.due"), t("inbox.requested")].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows)) : h("p", {}, t("inbox.empty")),
    more);
}

function historyList(history) {
  return h("ol", { class: "history" }, history.map((e) => h("li", {},
    h("time", { datetime: e.time }, formatDate(e.time)), " ",
    h("strong", {}, label("step", e.step)), " ",
    label("agency", e.actor_agency),
    e.status ? ` → ${label("status", e.status)}` : "",
    e.reason_code ? ` (${label("reason", e.reason_code)})` : "",
    e.outcome ? ` (${label("outcome", e.outcome)})` : "",
    e.to_agency ? ` → ${label("agency", e.to_agency)}` : "",
    e.note ? h("p", { class: "note" }, e.note) : null)));
}

function statusForm(referral, etag, reload) {
  const mine = session.claims.agency;
  const next = referral.owner_agency === mine ? NEXT[referral.status] || [] : [];
  if (!next.length) return null;
  const status = select("status", options("action", next), { value: next[0] });
  const reason = select("reason_code", [], {});
  const outcome = select("outcome", options("outcome", OUTCOMES), { value: "resolved" });
  const note = h("textarea", { name: "note", rows: 2, maxlength: 500 });
  const reasonField = field(t("referral.reason"), reason);
  const outcomeField = field(t("referral.outcome"), outcome);
  function shape() {
    const s = status.value;
    const codes = s === "rejected" ? REJECTIONS : s === "failed" ? FAILURES : [];
    replace(reason, options("reason", codes).map(([v, text]) => h("option", { value: v }, text)));
    reasonField.hidden = !codes.length;
    outcomeField.hidden = s !== "completed";
  }
  status.addEventListener("change", shape);
  shape();
  const form = h("form", { class: "card", "data-testid": "status-form" },
    h("h2", {}, t("referral.act")), field(t("referral.action"), status), reasonField, outcomeField,
    field(t("referral.note"), note), h("button", { type: "submit", class: "primary" }, t("referral.submit")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { status: status.value, agency: mine };
    if (!reasonField.hidden) body.reason_code = reason.value;
    if (!outcomeField.hidden) body.outcome = outcome.value;
    if (note.value.trim()) body.note = note.value.trim();
    const answer = await api(`/v1/referrals/${referral.referral_id}/status`, { method: "POST", body, headers: etag ? { "If-Match": etag } : {} });
    if (answer.ok) reload();
    else showProblem(form, answer.body);
  });
  return form;
}

function transferForm(referral, reload) {
  const mine = session.claims.agency;
  if (referral.owner_agency !== mine || ["rejected", "completed", "failed", "cancelled", "entered-in-error"].includes(referral.status)) return null;
  const to = select("to_agency", options("agency", AGENCIES.filter((a) => a !== mine)), { required: true });
  const note = h("textarea", { name: "note", rows: 2, maxlength: 500 });
  const form = h("form", { class: "card" }, h("h2", {}, t("referral.transfer")),
    field(t("referral.to_agency"), to), field(t("referral.note"), note),
    h("button", { type: "submit" }, t("referral.transfer_submit")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { agency: mine, to_agency: to.value };
    if (note.value.trim()) body.note = note.value.trim();
    const answer = await api(`/v1/referrals/${referral.referral_id}/transfer`, { method: "POST", body });
    if (answer.ok) reload();
    else showProblem(form, answer.body);
  });
  return form;
}

function transferAnswer(referral, reload) {
  const mine = session.claims.agency;
  if (referral.pending_owner !== mine) return null;
  const form = h("form", { class: "card" }, h("h2", {}, t("referral.transfer_offered")));
  for (const accept of [true, false]) {
    form.append(h("button", { type: "button", class: accept ? "primary" : "", onclick: async () => {
      const answer = await api(`/v1/referrals/${referral.referral_id}/transfer/answer`, { method: "POST", body: { agency: mine, accept } });
      if (answer.ok) reload();
      else showProblem(form, answer.body);
    } }, accept ? t("referral.transfer_accept") : t("referral.transfer_decline")), " ");
  }
  return form;
}

export async function referralPage(main, referralId) {
  const reload = () => referralPage(main, referralId);
  const answer = await api(`/v1/referrals/${referralId}`);
  if (!answer.ok) {
    replace(main, h("h1", {}, t("referral.title")), h("div", { class: "error", role: "alert" }, answer.body?.detail || ""));
    return;
  }
  const r = answer.body;
  replace(main,
    h("p", {}, h("a", { href: "#/inbox" }, t("common.back_to_inbox"))),
    h("h1", {}, label("referral_type", r.referral_type), h("span", { class: "sub", "data-testid": "referral-status" }, label("status", r.status))),
    h("dl", { class: "facts card" },
      h("dt", {}, t("referral.owner")), h("dd", {}, label("agency", r.owner_agency)),
      h("dt", {}, t("referral.requester")), h("dd", {}, label("agency", r.requester_agency)),
      h("dt", {}, t("inbox.priority")), h("dd", {}, label("priority", r.priority)),
      h("dt", {}, t("inbox.due")), h("dd", {}, formatDate(r.due_at)),
      h("dt", {}, t("referral.complete_by")), h("dd", {}, formatDate(r.complete_by)),
      h("dt", {}, t("referral.rules")), h("dd", {}, `${r.rule_ids.join(", ")} (${r.rules_version})`),
      h("dt", {}, t("referral.case")), h("dd", {}, h("a", { href: `#/case/${r.case_id}`, "data-testid": "case-link" }, t("referral.timeline")))),
    statusForm(r, answer.etag, reload),
    transferAnswer(r, reload),
    transferForm(r, reload),
    h("h2", {}, t("referral.history")),
    historyList(r.history));
}

// What an event says, in words: coded values through the catalogue, ids and routing internals left out (the
// audit page shows every event with its ids).
const FIELD_KINDS = {
  owner_agency: "agency", requester_agency: "agency", reporter_agency: "agency", agency: "agency", to_agency: "agency",
  from_agency: "agency", referral_type: "referral_type", priority: "priority", status: "status",
  concern_category: "concern", urgency: "urgency", outcome: "outcome", reason_code: "reason", colour: "colour",
};
const HIDDEN_FIELDS = /(_id|_ids)$|^(rule_id|rules_version|due_at|complete_by|correlation_id)$/;

function dataList(data) {
  const entries = Object.entries(data || {}).filter(([k, v]) => v !== null && v !== undefined && v !== ""
    && typeof v !== "object" && !HIDDEN_FIELDS.test(k));
  if (!entries.length) return null;
  return h("dl", { class: "data" }, entries.map(([k, v]) => [
    h("dt", {}, label("field", k)), h("dd", {}, FIELD_KINDS[k] ? label(FIELD_KINDS[k], v) : String(v))]));
}

export async function timelinePage(main, caseId) {
  const answer = await api(`/v1/cases/${caseId}/timeline`);
  if (!answer.ok) {
    replace(main, h("h1", {}, t("timeline.title")), h("div", { class: "error", role: "alert" }, answer.body?.detail || ""));
    return;
  }
  const body = answer.body;
  const redacted = body.redacted || [];
  replace(main,
    h("h1", {}, t("timeline.title")),
    redacted.length ? h("p", { class: "notice" }, t("timeline.redacted", { fields: redacted.join(", ") })) : null,
    h("ol", { class: "timeline", "data-testid": "timeline" }, body.events.map((e) => h("li", { "data-type": e.type },
      h("time", { datetime: e.time }, formatDate(e.time)), " ",
      h("strong", {}, label("event", e.type)), " · ", label("agency", e.actor_agency),
      dataList(e.data)))));
}

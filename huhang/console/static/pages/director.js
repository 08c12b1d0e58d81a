// The child director's pages (儿童主任), for a phone: the worklist, the visit form and the parent-contact form.
// The forms save to the outbox first (queue.js): they work offline and send when the network returns.

import { api, session, Unauthorized } from "../api.js";
import { choices, field, h, replace, select, showProblem } from "../dom.js";
import { formatDate, label, options, t } from "../i18n.js";
import { enqueue } from "../queue.js";
import { answers } from "../store.js";

const FINDINGS = ["all_well", "caregiver_unable", "caregiver_neglectful", "child_unwell", "child_absent",
  "unsafe_housing", "suspected_abuse", "other"];
const CONCERNS = ["guardian_neglect", "guardian_abuse", "domestic_violence", "sexual_abuse", "abandonment",
  "caregiver_unable", "school_dropout", "psychological_crisis", "online_harm", "bullying", "delinquency_risk",
  "injury_or_acute_illness", "basic_living_hardship", "disability_rehabilitation", "parents_need_local_work",
  "lack_of_care", "safety_hazard"];
const URGENCIES = ["routine", "urgent", "immediate_danger"];
const CHANNELS = ["phone", "video", "visit_home", "other"];
const PARENTS = ["father", "mother", "both"];
const NAME_REQUESTS_AT_ONCE = 4;

function today() {
  // The day in China (the API judges dates in China time).
  return new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
}

async function childName(childId) {
  const cached = await answers.get(`name:${childId}`);
  if (cached) return cached;
  const answer = await api(`/v1/children/${childId}`);
  if (!answer.ok || !answer.body || !answer.body.name) return null;
  await answers.put(`name:${childId}`, answer.body.name);
  return answer.body.name;
}

// Names come from each child's file (intake): filled in after the list shows, a few requests at a time, and kept
// with the cached answers (cleared at sign-out) for offline use.
async function fillNames(slots) {
  const queue = [...slots];
  async function worker() {
    while (queue.length) {
      const [childId, slot] = queue.shift();
      try {
        const name = await childName(childId);
        if (name) slot.textContent = name;
      } catch {
        // offline and not saved before: the short id stays
      }
    }
  }
  await Promise.all(Array.from({ length: NAME_REQUESTS_AT_ONCE }, worker));
}

function overdue(days) {
  return days > 0 ? h("strong", { class: "overdue" }, t("worklist.overdue_days", { n: days })) : null;
}

function colourBadge(colour) {
  return h("span", { class: `badge colour-${colour || "none"}` }, label("colour", colour || "none"));
}

export async function worklistPage(main) {
  let list;
  let offline = false;
  try {
    const answer = await api("/v1/care/worklist");
    if (!answer.ok) {
      replace(main, h("h1", {}, t("worklist.title")), h("p", { class: "error", role: "alert" }, answer.body?.detail || ""));
      return;
    }
    list = answer.body;
    await answers.put("worklist", list);
  } catch (error) {
    if (error instanceof Unauthorized) throw error;
    list = await answers.get("worklist");
    offline = true;
  }
  if (!list) {
    replace(main, h("h1", {}, t("worklist.title")), h("p", { class: "error", role: "alert" }, t("error.network")));
    return;
  }
  const slots = [];
  const items = list.items.map((item) => {
    const name = h("span", { class: "name" }, item.child_id.slice(0, 8));
    slots.push([item.child_id, name]);
    const late = Math.max(item.contact_overdue_days, item.home_visit_overdue_days) > 0;
    return h("li", { class: `card child${late ? " late" : ""}`, "data-child-id": item.child_id },
      h("h2", {}, name, " ", colourBadge(item.colour)),
      h("dl", {},
        h("dt", {}, t("worklist.next_contact")),
        h("dd", {}, formatDate(item.next_contact_due_on), " ", overdue(item.contact_overdue_days)),
        h("dt", {}, t("worklist.next_home_visit")),
        h("dd", {}, formatDate(item.next_home_visit_due_on), " ", overdue(item.home_visit_overdue_days)),
        item.parents_away ? [h("dt", {}, t("worklist.parent_contact")),
          h("dd", {}, item.parent_contact_missed ? h("strong", { class: "overdue" }, t("worklist.parent_missed")) : t("worklist.parent_ok"))] : null),
      h("p", { class: "actions" },
        h("a", { class: "button", href: `#/visit/${item.child_id}` }, t("worklist.record_visit")),
        item.parents_away ? h("a", { class: "button secondary", href: `#/contact/${item.child_id}` }, t("worklist.record_parent_contact")) : null));
  });
  replace(main,
    h("h1", {}, t("worklist.title")),
    h("p", { class: "muted" }, `${list.township} ${list.village} · ${t("worklist.as_of", { date: list.as_of })}`),
    offline ? h("p", { class: "notice", role: "status" }, t("worklist.offline")) : null,
    items.length ? h("ul", { class: "cards", "data-testid": "worklist" }, items) : h("p", {}, t("worklist.empty")));
  fillNames(slots); // offline: the names saved with the last answers
}

function back() {
  return h("p", {}, h("a", { href: "#/worklist" }, t("common.back_to_worklist")));
}

async function heading(main, titleKey, childId) {
  let name = childId.slice(0, 8);
  try {
    name = (await childName(childId)) || name;
  } catch {
    // offline: the short id
  }
  return h("h1", {}, t(titleKey), h("span", { class: "sub" }, name));
}

export async function visitPage(main, childId) {
  const kind = choices(t("visit.kind"), "kind", options("visit_kind", ["home_visit", "contact"]), { type: "radio", checked: ["home_visit"] });
  const visitedOn = h("input", { name: "visited_on", type: "date", required: true, value: today(), max: today() });
  const findings = choices(t("visit.findings"), "findings", options("finding", FINDINGS));
  const notes = h("textarea", { name: "notes", rows: 3, maxlength: 2000 });
  const fileReport = h("input", { type: "checkbox", name: "file_report", id: "file-report" });
  const concern = select("concern_category", options("concern", CONCERNS), { value: "guardian_neglect" });
  const urgency = select("urgency", options("urgency", URGENCIES), { value: "urgent" });
  const observations = h("textarea", { name: "observations", rows: 3, maxlength: 4000 });
  const reportPart = h("fieldset", { class: "report", hidden: true },
    h("legend", {}, t("visit.report")),
    field(t("visit.concern"), concern), field(t("visit.urgency"), urgency),
    field(t("visit.observations"), observations, t("visit.observations_hint")));
  fileReport.addEventListener("change", () => {
    reportPart.hidden = !fileReport.checked;
  });
  const form = h("form", { class: "card", novalidate: true, "data-testid": "visit-form" },
    kind, field(t("visit.visited_on"), visitedOn), findings, field(t("visit.notes"), notes, t("visit.notes_hint")),
    h("div", { class: "choice" }, fileReport, h("label", { for: "file-report" }, t("visit.file_report"))),
    reportPart,
    h("button", { type: "submit", class: "primary" }, t("visit.save")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = [...form.querySelectorAll("input[name=findings]:checked")].map((i) => i.value);
    const problems = [];
    if (!visitedOn.value) problems.push({ field: "visited_on", reason: t("form.required") });
    if (!chosen.length) problems.push({ field: "findings", reason: t("visit.findings_required") });
    if (fileReport.checked && !observations.value.trim()) problems.push({ field: "observations", reason: t("form.required") });
    if (problems.length) {
      showProblem(form, { detail: t("form.fix"), errors: problems });
      return;
    }
    const body = {
      kind: form.querySelector("input[name=kind]:checked").value, visited_on: visitedOn.value,
      agency: session.claims.agency, findings: chosen,
    };
    if (notes.value.trim()) body.notes = notes.value.trim();
    if (fileReport.checked) {
      body.report = { concern_category: concern.value, urgency: urgency.value, observations: observations.value.trim() };
    }
    await enqueue({ path: `/v1/children/${childId}/visits`, body, kind: "visit", childId }).catch(() => {});
    location.hash = "#/worklist";
  });
  replace(main, await heading(main, "visit.title", childId), back(), form);
}

export async function contactPage(main, childId) {
  const contactedOn = h("input", { name: "contacted_on", type: "date", required: true, value: today(), max: today() });
  const channel = select("channel", options("channel", CHANNELS), { value: "phone" });
  const parent = select("parent", options("parent", PARENTS), { value: "both" });
  const form = h("form", { class: "card", novalidate: true, "data-testid": "contact-form" },
    field(t("contact.contacted_on"), contactedOn), field(t("contact.channel"), channel),
    field(t("contact.parent"), parent),
    h("button", { type: "submit", class: "primary" }, t("contact.save")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { contacted_on: contactedOn.value, channel: channel.value, parent: parent.value, recorded_by: session.claims.agency };
    await enqueue({ path: `/v1/children/${childId}/parent-contacts`, body, kind: "parent_contact", childId }).catch(() => {});
    location.hash = "#/worklist";
  });
  replace(main, await heading(main, "contact.title", childId), back(), form);
}

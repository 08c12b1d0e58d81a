// The console's shell: sign-in, the navigation for the person's roles, the queue's banner and hash routing.
// Every page asks the API for what it shows (one request for its main content); pages live in pages/*.js.

import { session, Unauthorized } from "./api.js";
import { h, replace } from "./dom.js";
import { loadLanguage, otherLanguage, t } from "./i18n.js";
import { discard, onChange, pending, startSync, sync } from "./queue.js";
import { answers } from "./store.js";
import { signInPage } from "./pages/signin.js";
import { worklistPage, visitPage, contactPage } from "./pages/director.js";
import { inboxPage, referralPage, timelinePage } from "./pages/officer.js";
import { auditPage } from "./pages/audit.js";
import { indicatorsPage, trendPage } from "./pages/indicators.js";

const ROUTES = [
  [/^#\/worklist$/, worklistPage],
  [/^#\/visit\/([0-9a-f-]{36})$/, visitPage],
  [/^#\/contact\/([0-9a-f-]{36})$/, contactPage],
  [/^#\/inbox(\?.*)?$/, inboxPage],
  [/^#\/referral\/([0-9a-f-]{36})$/, referralPage],
  [/^#\/case\/([0-9a-f-]{36})$/, timelinePage],
  [/^#\/audit(\?.*)?$/, auditPage],
  [/^#\/indicators\/trend(\?.*)?$/, trendPage],
  [/^#\/indicators(\?.*)?$/, indicatorsPage],
];

export function home() {
  if (session.has("child_director")) return "#/worklist";
  if (session.has("auditor")) return "#/audit";
  return "#/inbox";
}

function navigation() {
  const claims = session.claims;
  const links = [];
  if (claims) {
    if (session.has("child_director")) links.push(["#/worklist", t("nav.worklist")]);
    if (!session.has("child_director") && !session.has("auditor")) links.push(["#/inbox", t("nav.inbox")]);
    if (session.has("auditor") || claims.agency === "civil_affairs") links.push(["#/audit", t("nav.audit")]);
    if (session.has("auditor") || ["civil_affairs", "wcwc", "township"].includes(claims.agency)) links.push(["#/indicators", t("nav.indicators")]);
  }
  const here = location.hash.split("?")[0];
  replace(document.getElementById("nav"), links.map(([href, text]) =>
    h("a", { href, "aria-current": here === href ? "page" : null }, text)));
  document.getElementById("signout").hidden = !claims;
  document.getElementById("signout").textContent = t("nav.signout");
  document.getElementById("lang").textContent = t("nav.language");
  document.getElementById("brand").textContent = t("app.name");
  document.getElementById("skip").textContent = t("nav.skip");
  document.getElementById("nav").setAttribute("aria-label", t("nav.label"));
  document.title = `${t("app.name")} · Huhang`;
}

async function showQueue(items, event) {
  const box = document.getElementById("queue");
  const waiting = items.filter((i) => i.state === "waiting");
  const failed = items.filter((i) => i.state === "failed");
  const parts = [];
  if (waiting.length) parts.push(h("p", { class: "waiting", "data-testid": "queue-waiting" }, t("queue.waiting", { n: waiting.length })));
  for (const item of failed) {
    parts.push(h("div", { class: "failed", "data-testid": "queue-failed" },
      h("p", {}, t("queue.failed", { what: t(`queue.kind.${item.kind}`) })),
      h("ul", {}, ((item.problem && item.problem.errors) || []).map((e) => h("li", {}, `${e.field}: ${e.reason}`))),
      h("button", { type: "button", onclick: () => discard(item.seq) }, t("queue.discard"))));
  }
  if (event && event.sent) {
    const report = event.answer && event.answer.report;
    parts.push(h("p", { class: "sent", "data-testid": "queue-sent" },
      t("queue.sent", { what: t(`queue.kind.${event.sent.kind}`) }),
      report ? ` ${t("queue.report_filed")}` : ""));
  }
  replace(box, parts);
  box.hidden = parts.length === 0;
}

async function signOut() {
  session.clear();
  await answers.clear(); // the worklist and the names cached for offline use
  location.hash = "#/signin";
}

// Each render draws into a view of its own: a page still waiting for its answer when the person moves on draws
// into a view no longer shown, never over the page that replaced it.
async function render() {
  navigation();
  const main = document.getElementById("main");
  const view = h("div", { class: "view" });
  replace(main, view);
  if (!session.claims) {
    if (location.hash !== "#/signin") {
      location.hash = "#/signin";
      return;
    }
    return signInPage(view, () => {
      location.hash = home();
      sync(); // what was recorded before the last sign-out (or while the token had lapsed) goes now
    });
  }
  const route = ROUTES.find(([pattern]) => pattern.test(location.hash));
  if (!route) {
    location.hash = home();
    return;
  }
  const match = location.hash.match(route[0]);
  try {
    await route[1](view, ...match.slice(1));
  } catch (error) {
    if (error instanceof Unauthorized) {
      location.hash = "#/signin";
      return;
    }
    replace(view, h("div", { class: "error", role: "alert" }, h("p", {}, t("error.network"))));
  }
  if (view.isConnected) main.focus({ preventScroll: true });
}

async function start() {
  await loadLanguage();
  document.getElementById("lang").addEventListener("click", async () => {
    await loadLanguage(otherLanguage());
    render();
  });
  document.getElementById("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", render);
  onChange(showQueue);
  showQueue(await pending(), null);
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js", { scope: "./" }).catch(() => {});
  }
  await render();
  startSync(); // sends only while signed in: the outbox waits for the next sign-in otherwise
}

start();

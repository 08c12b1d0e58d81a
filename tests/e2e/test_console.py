"""End to end: the web console in Debian's Chromium (Playwright), against ``huhang run`` as a process.

A child director signs in on a 360-px phone, sees her village's child, records a visit whose finding files a report;
a police officer in a second browser context sees the referral, accepts it, and the case timeline shows both. The
visit form queues while the network is cut and sends exactly once when it returns. Pages are checked at phone width
(no horizontal scroll), for labels on every field and for text contrast (WCAG 2.1 AA, computed in the page).
Screenshots of each main page go to tests/.artifacts/console/ (not committed).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from faker import Faker

from huhang.auth.client import MintedTokenAuth
from services.intake.schemas import REPORT_EXAMPLE
from tests.support.auth import minted_auth, new_signing_key
from tests.support.processes import eventually, free_port, huhang_env, huhang_process, wait_http

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts" / "console"
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
SIGNING_KEY = new_signing_key()
TOWNSHIP, VILLAGE = "虹桥镇", "溪西村"  # the demo director's village

pytestmark = [
    pytest.mark.e2e, pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]

playwright_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Platform:
    url: str
    passwords: dict[str, str]
    system: MintedTokenAuth

    def api(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", auth=self.system, timeout=10, **kwargs)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    tmp = tmp_path_factory.mktemp("console")
    port = free_port()
    env = huhang_env(data_dir=str(tmp / "data"), auth_signing_key=SIGNING_KEY)
    env["PORT"] = str(port)
    log = tmp / "huhang.log"
    with huhang_process(["run"], env, log) as process:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/healthz", timeout_s=120, process=process)
            eventually(lambda: (tmp / "data" / "demo-credentials.json").exists(), timeout_s=60)
        except (TimeoutError, RuntimeError, AssertionError):
            raise AssertionError(log.read_text()) from None
        people = json.loads((tmp / "data" / "demo-credentials.json").read_text())["people"]
        yield Platform(url, {login: p["password"] for login, p in people.items()}, minted_auth(SIGNING_KEY))
        assert process.poll() is None, log.read_text()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


def new_child(platform: Platform) -> str:
    """A left-behind child of the director's village, known to guardianship (its worklist), with no police referral:
    reported by a school for basic living hardship (routed to civil affairs and others, not police)."""
    body = copy.deepcopy(REPORT_EXAMPLE)
    body["child"].update({"name": Faker("zh_CN").name(), "birth_date": "2015-03-08", "township": TOWNSHIP,
                          "village": VILLAGE})
    body.update({"concern_category": "basic_living_hardship", "urgency": "routine",
                 "observations": "家中经济困难，冬衣不足。", "observed_on": date.today().isoformat()})
    filed = httpx.post(f"{platform.url}/v1/reports", json=body, auth=platform.system, timeout=10,
                       headers={"Idempotency-Key": str(uuid.uuid4())})
    assert filed.status_code == 201, filed.text
    child_id = str(filed.json()["child_id"])
    eventually(lambda: platform.api(f"/v1/children/{child_id}/care").status_code == 200, timeout_s=30)
    return child_id


def visits_of(platform: Platform, child_id: str) -> int:
    answer = platform.api(f"/v1/children/{child_id}/care")
    assert answer.status_code == 200, answer.text
    return len(answer.json()["visits"])


def sign_in(page: Any, platform: Platform, login: str) -> None:
    page.goto(f"{platform.url}/console/")
    page.get_by_label("登录名").fill(login)
    page.get_by_label("密码").fill(platform.passwords[login])
    page.get_by_role("button", name="登录").click()
    page.locator("#signout").wait_for()  # signed in: the home page for the person's roles follows


def csp_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    return errors


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def director_page(browser: Any, platform: Platform) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    page = context.new_page()
    errors = csp_errors(page)
    sign_in(page, platform, "demo-director")
    page.wait_for_selector("main h1")
    return context, page, errors


def open_worklist_entry(page: Any, child_id: str) -> Any:
    def shown() -> bool:
        page.goto(page.url.split("#")[0] + "#/worklist")
        page.wait_for_selector("main h1")
        return page.locator(f"li[data-child-id='{child_id}']").count() == 1

    eventually(shown, timeout_s=30, interval_s=1.0)
    return page.locator(f"li[data-child-id='{child_id}']")


def test_a_visit_files_a_report_that_police_accept_and_the_timeline_shows_both(browser: Any, platform: Platform):
    child_id = new_child(platform)
    police_items = platform.api("/v1/agencies/police/referrals", params={"limit": 200}).json()["items"]
    assert not [r for r in police_items if r["child_id"] == child_id]

    director, page, director_csp = director_page(browser, platform)
    entry = open_worklist_entry(page, child_id)
    eventually(lambda: entry.locator(".name").inner_text() != child_id[:8], timeout_s=10)  # the child's file
    shot(page, "director-worklist-phone")
    entry.get_by_role("link", name="记录走访").click()
    page.wait_for_selector("[data-testid=visit-form]")
    page.get_by_label("受托照护人未尽职责").check()
    page.get_by_label("备注").fill("照护人外出打工，孩子独自在家两天。")
    page.get_by_label("同时提交强制报告").check()
    page.get_by_label("问题类别").select_option("guardian_neglect")
    page.get_by_label("所见情况").fill("孩子独自在家，家中无人照看。")
    shot(page, "director-visit-form-phone")
    page.get_by_role("button", name="保存").click()
    page.wait_for_selector("[data-testid=queue-sent]", timeout=20_000)
    assert "已同时提交强制报告" in page.inner_text("[data-testid=queue-sent]")
    assert visits_of(platform, child_id) == 1
    assert not director_csp

    police = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    officer = police.new_page()
    officer_csp = csp_errors(officer)
    sign_in(officer, platform, "demo-police-officer")
    officer.wait_for_selector("main h1")

    def police_referral() -> bool:  # the inbox is a read model: it follows the referral log within moments
        items = platform.api("/v1/agencies/police/referrals", params={"limit": 200}).json()["items"]
        return any(r["child_id"] == child_id for r in items)

    eventually(police_referral, timeout_s=60, interval_s=1.0)
    officer.goto(f"{platform.url}/console/#/inbox?status=requested")
    officer.reload()
    officer.wait_for_selector(f"tr[data-child-id='{child_id}']")
    shot(officer, "officer-inbox-desktop")
    officer.locator(f"tr[data-child-id='{child_id}'] a").first.click()
    officer.wait_for_selector("[data-testid=status-form]")
    officer.get_by_label("操作").select_option("accepted")
    officer.get_by_test_id("status-form").get_by_label("说明").fill("派出所已受理，当日走访核实。")
    officer.get_by_role("button", name="提交").click()
    eventually(lambda: officer.inner_text("[data-testid=referral-status]") == "已受理", timeout_s=15)
    shot(officer, "officer-referral-desktop")

    officer.get_by_test_id("case-link").click()

    def timeline_shows_both() -> bool:
        officer.wait_for_selector("[data-testid=timeline]")
        types = officer.locator("[data-testid=timeline] li").evaluate_all("(items) => items.map((i) => i.dataset.type)")
        if "cn.huhang.report.filed.v1" in types and "cn.huhang.referral.status-changed.v1" in types:
            return True
        officer.reload()
        return False

    eventually(timeline_shows_both, timeout_s=30, interval_s=1.0)
    text = officer.inner_text("[data-testid=timeline]")
    assert "收到强制报告" in text
    assert "市公安局" in text
    shot(officer, "officer-timeline-desktop")
    assert not officer_csp
    director.close()
    police.close()


def test_the_offline_visit_form_queues_and_sends_exactly_once(browser: Any, platform: Platform):
    child_id = new_child(platform)
    context, page, _ = director_page(browser, platform)
    open_worklist_entry(page, child_id)
    before = visits_of(platform, child_id)

    context.set_offline(True)
    page.locator(f"li[data-child-id='{child_id}']").get_by_role("link", name="记录走访").click()
    page.wait_for_selector("[data-testid=visit-form]")
    page.get_by_label("联系", exact=True).check()
    page.get_by_label("一切正常").check()
    page.get_by_role("button", name="保存").click()
    page.wait_for_selector("[data-testid=queue-waiting]")
    assert page.inner_text("[data-testid=queue-waiting]") == "待发送 1 条"
    page.wait_for_selector("main >> text=离线")  # the worklist from the last answer
    shot(page, "director-offline-waiting-phone")
    assert visits_of(platform, child_id) == before

    context.set_offline(False)
    page.wait_for_selector("[data-testid=queue-sent]", timeout=30_000)
    assert page.locator("[data-testid=queue-waiting]").count() == 0
    assert visits_of(platform, child_id) == before + 1
    # Another sync (the network event again, a reload) sends nothing more: the outbox is empty.
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.reload()
    page.wait_for_selector("[data-testid=worklist]")
    assert page.locator("[data-testid=queue-waiting]").count() == 0
    assert visits_of(platform, child_id) == before + 1
    context.close()


# A small accessibility check in the page (axe-core is not available offline): every field has a label, and every
# text's colour against its background meets WCAG 2.1 AA (4.5:1; 3:1 for large text).
ACCESSIBILITY_CHECK = """
() => {
  const problems = [];
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || el.closest('[hidden]')) continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) problems.push('no label: ' + el.name);
  }
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || el.closest('.skip')) continue;
    const fg = lum(rgb(style.color).slice(0, 3)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const sample = node.textContent.trim().slice(0, 20);
    if (ratio < needed) problems.push(`contrast ${ratio.toFixed(2)} < ${needed}: ${sample}`);
  }
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth) problems.push(`horizontal scroll: ${doc.scrollWidth} > ${doc.clientWidth}`);
  return problems;
}
"""


def test_pages_fit_a_phone_have_labels_and_enough_contrast(browser: Any, platform: Platform):
    child_id = new_child(platform)
    context = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{platform.url}/console/")
    page.wait_for_selector("form")
    assert page.evaluate(ACCESSIBILITY_CHECK) == [], "sign-in"
    shot(page, "signin-phone")
    sign_in(page, platform, "demo-director")
    open_worklist_entry(page, child_id)
    assert page.evaluate(ACCESSIBILITY_CHECK) == [], "worklist"
    page.locator(f"li[data-child-id='{child_id}']").get_by_role("link", name="记录走访").click()
    page.wait_for_selector("[data-testid=visit-form]")
    page.get_by_label("同时提交强制报告").check()
    assert page.evaluate(ACCESSIBILITY_CHECK) == [], "visit form"
    page.get_by_role("button", name="English").click()
    page.wait_for_selector("text=Record a visit")
    assert page.evaluate(ACCESSIBILITY_CHECK) == [], "visit form, English"
    shot(page, "director-visit-form-english-phone")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("text=Login name")
    assert page.evaluate("sessionStorage.getItem('huhang.token')") is None
    context.close()

    case_id = platform.api(f"/v1/children/{child_id}").json()["case_ids"][0]
    pages = (
        ("demo-police-officer", "#/inbox", "[data-testid=inbox], main >> text=没有符合条件的转介"),
        ("demo-auditor", f"#/audit?case_id={case_id}", "[data-testid=history-events]"),
        ("demo-civil-supervisor", "#/indicators", "[data-testid=indicator-map], main >> text=暂无指标数据"),
    )
    for login, hash_, ready in pages:
        context = browser.new_context(viewport=PHONE, locale="zh-CN")
        page = context.new_page()
        sign_in(page, platform, login)
        page.wait_for_selector("main h1")
        page.goto(f"{platform.url}/console/{hash_}")
        page.locator(ready.split(", ")[0]).or_(page.locator(ready.split(", ")[-1])).first.wait_for()
        assert page.locator("main div.error").count() == 0, (login, page.inner_text("main"))
        if login == "demo-auditor":  # the case's tamper check: intact, said in words as well as in colour
            status = page.locator("[data-testid=tamper-status]")
            status.wait_for(timeout=60_000)
            assert status.get_attribute("data-verified") == "true", page.inner_text("[data-testid=tamper-check]")
            assert "已通过校验" in status.inner_text()
            assert page.locator("[data-testid=tamper-services] tbody tr").count() >= 3
        assert page.evaluate(ACCESSIBILITY_CHECK) == [], login
        shot(page, f"{login}-phone")
        context.close()

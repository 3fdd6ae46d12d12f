"""The dashboard in a real browser (Debian's chromium, Playwright) against a real `opsmedic
run`: sign-in, every page in light, dark and on a phone with axe-core's accessibility check
and a screenshot, a live update without reload, acknowledging by clicking, a read-only
session refused, and an alert label that tries to run script."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fetch_axe import SHIPPED, VERSION
from playwright.sync_api import Browser, BrowserContext, Page, StorageState, expect
from ui_site import Site, launchable

from served import CHROMIUM, sign_in

# Every page of the dashboard: (name, path); the path may name the site's ids ({incident},
# {run}, {event}, {waiting}, {flag}, {deployment}: ui_site.py). A new page is one line here.
PAGES: list[tuple[str, str]] = [
    ("signin", "/ui/signin"),
    ("now", "/ui/"),
    ("incident", "/ui/incidents/{incident}"),
    ("runs", "/ui/runs"),
    ("run", "/ui/runs/{run}"),
    ("approvals", "/ui/approvals"),
    ("rules", "/ui/rules"),
    ("rules-test", "/ui/rules/test"),
    ("deployments", "/ui/deployments"),
    ("deployment", "/ui/deployments/{deployment}"),
    ("flags", "/ui/flags"),
    ("flag", "/ui/flags/{flag}"),
    ("slos", "/ui/slos"),
    ("silences", "/ui/silences"),
    ("silence-new", "/ui/silences/new?incident={incident}"),
]
# How each page is looked at: a desktop in light and dark mode, and a phone.
LOOKS: dict[str, dict[str, Any]] = {
    "light": {"color_scheme": "light", "viewport": {"width": 1280, "height": 800}},
    "dark": {"color_scheme": "dark", "viewport": {"width": 1280, "height": 800}},
    "phone": {
        "color_scheme": "light",
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}
AXE = (SHIPPED / "axe.min.js").read_text()
BLOCKING = ("serious", "critical")
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def operator_state(browser: Browser, site: Site) -> StorageState:
    """The cookies of an operator signed in through the form, for every look's context."""
    context = browser.new_context()
    sign_in(context.new_page(), site.url, site.tokens["alice"])
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def operator(browser: Browser, operator_state: StorageState) -> Iterator[BrowserContext]:
    context = browser.new_context(storage_state=operator_state)
    yield context
    context.close()


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now.

    Injected with `evaluate` (the DevTools protocol), not a <script> tag: the page's CSP
    (`script-src 'self'`) rightly refuses an inline script, and the page is checked with its
    real CSP in force rather than with `bypass_csp`."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(f"() => {{ {AXE}\n }}")
    assert page.evaluate("axe.version") == VERSION
    result: dict[str, Any] = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return list(result["violations"])


def watch(page: Page) -> list[str]:
    """Errors the page reports (a script failing, a CSP refusal): collected as they come."""
    seen: list[str] = []
    page.on("pageerror", lambda exc: seen.append(f"page error: {exc}"))
    page.on("console", lambda m: seen.append(m.text) if m.type == "error" else None)
    return seen


def test_a_missing_chromium_skips_here_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = str(tmp_path / "chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        launchable(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed"):
        launchable(missing)
    launchable(CHROMIUM)


def test_sign_in_by_typing_the_token(browser: Browser, site: Site) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site.url}/ui/")
    expect(page).to_have_url(f"{site.url}/ui/signin")  # not signed in: sent to the form
    page.get_by_label("API token").fill("om_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown or revoked token")
    sign_in(page, site.url, site.tokens["alice"])
    expect(page.get_by_role("heading", name="Now", exact=True)).to_be_visible()
    expect(page.locator(".who")).to_contain_text("alice · operate, read")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{site.url}/ui/signin")
    page.goto(f"{site.url}/ui/")
    expect(page).to_have_url(f"{site.url}/ui/signin")  # the session is gone
    context.close()


@pytest.mark.parametrize("look", LOOKS)
@pytest.mark.parametrize(("name", "path"), PAGES, ids=[name for name, _ in PAGES])
def test_each_page_renders_accessibly(
    browser: Browser, operator_state: StorageState, site: Site, artifacts: Path,
    name: str, path: str, look: str,
) -> None:  # fmt: skip
    if name == "slos":
        site.slo_measured()  # its budget and chart, not "no data"
    context = browser.new_context(storage_state=operator_state, **LOOKS[look])
    page = context.new_page()
    errors = watch(page)
    reply = page.goto(site.url + path.format(**site.ids))
    assert reply is not None and reply.status == 200, (path, reply and reply.status)
    # Folded parts (a run's steps, a draft) open: shown in the screenshot and checked by axe.
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    page.screenshot(path=artifacts / f"{name}-{look}.png", full_page=True)
    violations = axe_violations(page)
    (artifacts / f"axe-{name}-{look}.json").write_text(json.dumps(violations, indent=1))
    blocking = [f"{v['impact']} {v['id']}: {v['help']} ({len(v['nodes'])} elements: "
                f"{[n['target'] for n in v['nodes'][:3]]})"
                for v in violations if v["impact"] in BLOCKING]  # fmt: skip
    assert blocking == [], blocking
    # No horizontal scroll of the page itself: wide tables scroll in their own box.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert errors == []
    context.close()


def test_the_accessibility_check_finds_what_it_should(operator: BrowserContext, site: Site) -> None:
    """The harness itself: an image without a text alternative put on a real page (its CSP in
    force) is a critical violation, so an empty report means something."""
    page = operator.new_page()
    page.goto(f"{site.url}/ui/")
    page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', "
                  "'<img src=\"/ui/static/ui.css\">')")  # fmt: skip
    found = {(v["id"], v["impact"]) for v in axe_violations(page)}
    assert ("image-alt", "critical") in found, found


def test_a_new_event_shows_on_now_without_a_reload(operator: BrowserContext, site: Site) -> None:
    page = operator.new_page()
    errors = watch(page)
    page.goto(f"{site.url}/ui/")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("window.stillTheSameDocument = true")  # gone if the page reloads
    title = f"QueueBacklog{uuid.uuid4().hex[:6]}"
    site.post_event(kind=title, resource="queue", fingerprint=title, labels={"alertname": title})
    # The fragment is polled every 5 s: it shows within a couple of polls.
    expect(page.get_by_role("link", name=title)).to_be_visible(timeout=30_000)
    assert page.evaluate("window.stillTheSameDocument") is True
    assert navigations == [] and errors == []


def test_acknowledging_an_incident_by_clicking(operator: BrowserContext, site: Site) -> None:
    incident = site.post_event(kind="CertExpiring", resource="www", fingerprint="cert-www",
                               labels={"alertname": "CertExpiring"})["incident_id"]  # fmt: skip
    page = operator.new_page()
    page.goto(f"{site.url}/ui/incidents/{incident}")
    expect(page.locator("main ul.meta .st-open")).to_have_text("open")
    page.get_by_role("button", name="Acknowledge").click()
    page.wait_for_url(f"{site.url}/ui/incidents/{incident}")  # post, redirect, get
    expect(page.locator("main ul.meta")).to_contain_text("acknowledged by alice (dashboard)")
    expect(page.locator("ol.timeline")).to_contain_text("alice (dashboard)")


def test_the_incident_shows_what_automation_did(operator: BrowserContext, site: Site) -> None:
    page = operator.new_page()
    page.goto(f"{site.url}/ui/incidents/{site.ids['incident']}")
    runs = page.locator("details", has=page.locator("summary .run"))
    expect(runs).to_have_count(3)
    failed = runs.filter(has_text="rotate-logs")
    expect(failed.locator(".run")).to_have_text("failed")
    cleaned = runs.filter(has_text="clean-tmp")
    expect(cleaned.locator("pre")).not_to_be_visible()  # folded until asked for
    cleaned.locator("summary").click()
    expect(cleaned.locator("pre")).to_have_text("[stdout]\nremoved 412 files, freed 1.2G\n")
    # The hunt's headline once (its summary's first line), then each error with its count.
    hunt = page.locator("section", has=page.get_by_role("heading", name="Log hunt"))
    expect(hunt.locator("p").first).to_have_text(
        re.compile(r"^2 distinct errors, 7 occurrences in 1 file, since [-0-9]+ [:0-9]+ UTC$")
    )
    top = hunt.locator("tbody tr").first.locator("td")
    expect(top.nth(0)).to_have_text("6\N{MULTIPLICATION SIGN}")
    expect(top.nth(1)).to_have_text("ERROR write failed: No space left on device (fd <*>)")


def test_a_read_only_session_has_no_buttons_and_its_post_is_refused(
    browser: Browser, site: Site
) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, site.url, site.tokens["viewer"])
    url = f"{site.url}/ui/incidents/{site.ids['incident']}"
    page.goto(url)
    expect(page.get_by_role("heading", level=1)).to_contain_text("DiskFull")
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(page.get_by_role("button", name="Resolve")).to_have_count(0)
    # A POST crafted with the session's own cookie and CSRF value: refused all the same.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    refused = context.request.post(f"{url}/ack", form={"csrf": csrf or ""})
    assert refused.status == 403 and "operate" in refused.text()
    page.goto(url)
    expect(page.locator("main ul.meta")).not_to_contain_text("acknowledged")
    context.close()


def test_an_alert_label_with_script_is_shown_as_text(
    operator: BrowserContext, site: Site, artifacts: Path
) -> None:
    incident = site.post_event(kind=XSS, resource="web", fingerprint="xss",
                               labels={"alertname": XSS, "summary": XSS})["incident_id"]  # fmt: skip
    page = operator.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{site.url}/ui/")
    expect(page.get_by_role("link", name=XSS)).to_be_visible()
    page.goto(f"{site.url}/ui/incidents/{incident}")  # returns once loaded: a script ran by then
    expect(page.get_by_role("heading", level=1)).to_contain_text(XSS)
    # Text, not an element: the page's one script is its own (the CSP would stop another one
    # from running too, but escaping is what keeps it from being there at all).
    expect(page.locator("script")).to_have_count(1)
    page.screenshot(path=artifacts / "incident-xss.png", full_page=True)
    assert dialogs == []


def test_switching_a_flag_off_by_clicking(operator: BrowserContext, site: Site) -> None:
    key = site.flag(f"kill-{uuid.uuid4().hex[:6]}")  # its own: the pages' flag stays on
    page = operator.new_page()
    page.goto(f"{site.url}/ui/flags/{key}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"on {key}")
    switch = page.get_by_role("button", name="Switch off")
    switch.click()  # the box is not ticked: the browser holds the form back
    expect(page).to_have_url(f"{site.url}/ui/flags/{key}")
    assert site.api("GET", f"/api/v1/flags/{key}")["version"] == 1
    page.get_by_label(f"Switch {key} off (it is at version 1)").check()
    switch.click()
    page.wait_for_url(f"{site.url}/ui/flags/{key}")  # post, redirect, get
    expect(page.get_by_role("heading", level=1)).to_have_text(f"off {key}")
    expect(page.locator("main p.dim").first).to_contain_text("version 2 · changed by api alice")
    expect(page.locator("tbody tr").first).to_contain_text("api alice (dashboard)")
    expect(page.locator("tbody tr").first).to_contain_text("enabled true → false")
    found = site.api("GET", f"/api/v1/flags/{key}")
    assert (found["version"], found["flag"]["enabled"]) == (2, False), found
    assert found["updated_by"] == "api alice (dashboard)"


def test_a_read_only_session_cannot_switch_a_flag(browser: Browser, site: Site) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, site.url, site.tokens["viewer"])
    url = f"{site.url}/ui/flags/{site.ids['flag']}"
    page.goto(url)
    expect(page.get_by_role("heading", level=1)).to_contain_text(site.ids["flag"])
    expect(page.get_by_role("button", name=re.compile("Switch"))).to_have_count(0)
    version = site.api("GET", f"/api/v1/flags/{site.ids['flag']}")["version"]
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")  # sign-out's form
    refused = context.request.post(f"{url}/enabled", form={
        "csrf": csrf or "", "enabled": "off", "confirm": "yes", "expected_version": str(version)})  # fmt: skip
    assert refused.status == 403 and "operate" in refused.text()
    assert site.api("GET", f"/api/v1/flags/{site.ids['flag']}")["version"] == version
    context.close()


def test_approving_a_waiting_run_by_clicking(operator: BrowserContext, site: Site) -> None:
    host = f"scratch-{uuid.uuid4().hex[:6]}"
    run = site.wait_for_approval(host)  # its own: the pages' run stays waiting
    page = operator.new_page()
    page.goto(f"{site.url}/ui/approvals")
    asked = page.locator("article.ask", has=page.get_by_role("link", name=run))
    expect(asked.get_by_role("heading")).to_contain_text("Step 2: run_command · wipe-scratch")
    asked.get_by_label("Comment").first.fill("scratch holds nothing we keep")
    asked.get_by_label("I read what step 2 will do").check()
    asked.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{site.url}/ui/approvals")
    decided = page.locator("tbody tr", has=page.get_by_role("link", name=run))
    expect(decided).to_contain_text("approved")
    expect(decided).to_contain_text("alice (dashboard)")
    site.settled(f"/api/v1/runs/{run}", lambda found: found["finished_at"])
    page.reload()
    expect(page.locator("article.ask", has=page.get_by_role("link", name=run))).to_have_count(0)
    page.goto(f"{site.url}/ui/runs/{run}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("succeeded")
    steps = page.locator("section", has=page.get_by_role("heading", name="Steps")).locator(
        "tbody tr"
    )
    expect(steps).to_have_count(2)
    expect(steps.nth(1).locator("pre").first).to_have_text(f"[stdout]\nwiped {host}:/scratch\n")
    expect(page.locator("main")).to_contain_text("approved by alice (dashboard)")


def boxes(page: Page, selector: str) -> list[dict[str, float]]:
    """The drawn boxes (top, height, width) of what `selector` finds, in document order."""
    found: list[dict[str, float]] = page.evaluate(
        "s => [...document.querySelectorAll(s)].map(e => { const r = e.getBoundingClientRect();"
        " return {top: r.top, height: r.height, width: r.width}; })",
        selector,
    )
    return found


def test_the_pages_look_like_a_product(operator: BrowserContext, site: Site) -> None:
    """What looking at the screenshots found, kept from coming back."""
    page = operator.new_page()  # 1280 wide
    page.goto(f"{site.url}/ui/incidents/{site.ids['incident']}")
    # The actions are one row of buttons of one height, the link-button (Silence…) too.
    actions = boxes(page, ".actions button, .actions a.button")
    assert len(actions) >= 4 and len({(round(b["top"]), round(b["height"])) for b in actions}) == 1
    expect(page.locator("main ul.meta")).to_contain_text("alertmanager · 1 event")
    expect(page.locator("summary", has_text="1 step and its output")).to_have_count(2)
    # A rule's file and queue under its name: plain text, only the name bold.
    page.goto(f"{site.url}/ui/rules")
    weights = page.locator(".rules-table tbody th").first.evaluate(
        "th => [...th.children].map(e => getComputedStyle(e).fontWeight)")  # fmt: skip
    assert weights[0] == "700" and set(weights[1:]) == {"400"}, weights
    page.goto(f"{site.url}/ui/runs/{site.ids['run']}")
    # A step's rendered parameters get room: the log path is not broken a few letters a line.
    (params,) = boxes(page, "td.step-params")
    assert params["width"] >= 16 * 15, params
    took = page.locator("section", has_text="Steps").locator("tbody td").nth(3)
    assert took.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"  # "80 ms", one line
    # Its details are indented JSON, one key a line, not a one-line dump.
    page.locator("summary", has_text="details").click()
    expect(page.locator("details pre").first).to_contain_text('{\n  "summary": ')
    # A confirmation reads as one sentence on one line, its button as wide as its word.
    page.goto(f"{site.url}/ui/flags/{site.ids['flag']}")
    gap = page.locator("form.confirm .check strong").first.evaluate(
        "s => { const r = document.createRange(); r.selectNode(s.previousSibling);"
        " return s.getBoundingClientRect().left - r.getBoundingClientRect().right; }")  # fmt: skip
    assert abs(gap) < 2, gap  # a flex label set its words 8 px apart, as columns on a phone
    assert {round(b["width"]) < 200 for b in boxes(page, "form.confirm button")} == {True}
    # A filter's label beside its box sits on the box's middle (the SLOs, flags, deployments).
    page.goto(f"{site.url}/ui/deployments")
    label, box = boxes(page, ".filters label[for=dep-service], #dep-service")
    assert abs((label["top"] + label["height"] / 2) - (box["top"] + box["height"] / 2)) < 2
    # Every state word is the same pill: a run's, a deployment's, a flag's.
    pills = []
    for path, selector in ((f"/ui/runs/{site.ids['run']}", "h1 .run"),
                           ("/ui/deployments", "td .dep"), ("/ui/flags", "td .flag")):  # fmt: skip
        page.goto(site.url + path)
        pills.append(page.locator(selector).first.evaluate(
            "e => { const s = getComputedStyle(e); return [s.borderRadius, s.fontSize]; }"))  # fmt: skip
    assert pills[0] == pills[1] == pills[2], pills


def test_testing_the_rules_against_an_event(
    operator: BrowserContext, site: Site, artifacts: Path
) -> None:
    """The rules' test box with a real answer (a POST's page: not in PAGES), looked at too."""
    page = operator.new_page()
    errors = watch(page)
    page.goto(f"{site.url}/ui/rules/test")
    event = {"source": "alertmanager", "host": "db3", "labels": {"alertname": "DiskFull"}}
    page.get_by_label("The event as JSON").fill(json.dumps(event))
    page.get_by_role("button", name="Test").click()
    verdicts = page.locator("section", has=page.get_by_role("heading", name="Verdicts"))
    expect(verdicts.locator("tbody th")).to_have_text(
        ["hunt-disk-errors", "clean-tmp", "rotate-logs", "wipe-scratch"]
    )
    expect(verdicts.locator("tr", has_text="wipe-scratch").locator(".run")).to_have_text("no")
    expect(verdicts.locator("tr", has_text="clean-tmp").first.locator(".run")).to_have_text("yes")
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    page.screenshot(path=artifacts / "rules-test-result.png", full_page=True)
    blocking = [v["id"] for v in axe_violations(page) if v["impact"] in BLOCKING]
    assert blocking == [] and errors == []

#!/usr/bin/env python3
"""The usage dashboard in headless Chromium, driven by Selenium; run by tests/dashboard.rs.

Argument: one JSON object with the gateways' admin URLs, the admin token and the numbers
the test's traffic produced. Prints what it checks; on a failure prints why (with the page's
text and the browser console) and exits 1.
"""

import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 60  # seconds: generous, the box may be loaded


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)
    print(f"ok: {what}", flush=True)


def start_browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("SLUICE_CHROMIUM", "/usr/bin/chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1366,900",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("SLUICE_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(WAIT)
    return driver


def console(driver):
    """The console entries since the last call."""
    return driver.get_log("browser")


def loud(entries, allowed=()):
    """SEVERE and WARNING entries, except those containing one of `allowed`."""
    return [
        e
        for e in entries
        if e["level"] in ("SEVERE", "WARNING") and not any(a in e["message"] for a in allowed)
    ]


def wait_for(driver, cond, what):
    try:
        # A table redrawn while it is read leaves stale elements: read it again.
        return WebDriverWait(driver, WAIT, poll_frequency=0.2,
                             ignored_exceptions=(StaleElementReferenceException,)).until(cond)
    except TimeoutException:
        raise Failure(f"timed out waiting for {what}") from None


def state_is(state):
    return lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == state


def text(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css).text.strip()


def rows(driver, table_id):
    """The table's body rows as lists of cell texts."""
    out = []
    for tr in driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr"):
        out.append([td.text.strip() for td in tr.find_elements(By.TAG_NAME, "td")])
    return out


def shows_login(driver, base, keys):
    """The login form, and none of the data: no totals, no key names."""
    wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "form#login input[name=token]")), "the login form")
    check(not driver.find_elements(By.ID, "total-requests"), "the login page has no totals")
    source = driver.page_source
    check(all(k not in source for k in keys), "the login page names no key")


def login(driver, base, token):
    driver.get(base + "/ui/")
    field = wait_for(driver, EC.element_to_be_clickable((By.NAME, "token")), "the token field")
    # The login page's own 401 is logged as a failed load: expected, and left behind here.
    noise = loud(console(driver), allowed=("/ui/ - Failed to load resource: the server responded with a status of 401",))
    check(not noise, f"no console errors on the login page: {noise}")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form#login button[type=submit]").click()


def without_token(driver, a):
    """(a) No token: the login page, 401 (the Rust test checks the status), no data."""
    driver.get(a["url"] + "/ui/")
    shows_login(driver, a["url"], a["keys"])
    login(driver, a["url"], "not-the-admin-token")
    wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "form#login p.error")), "the invalid-token message")
    shows_login(driver, a["url"], a["keys"])
    check(not driver.get_cookies(), "an invalid token sets no cookie")
    # The 401 answer to the form is logged as a failed load; nothing else may be.
    noise = loud(console(driver), allowed=("/ui/login - Failed to load resource: the server responded with a status of 401",))
    check(not noise, f"no console errors on the login page: {noise}")


def with_header(driver, a):
    """The bearer header (set through CDP) works like the cookie."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Bearer " + a["token"]}}
    )
    driver.get(a["url"] + "/ui/")
    wait_for(driver, state_is("ready"), "the dashboard with the bearer header")
    check(text(driver, "#total-requests") == str(a["requests"]), "bearer header: the totals are shown")
    check(not driver.get_cookies(), "the bearer header needs no cookie")
    noise = loud(console(driver))
    check(not noise, f"no console errors or warnings (bearer header): {noise}")
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    driver.get(a["url"] + "/ui/")
    shows_login(driver, a["url"], a["keys"])
    console(driver)


def dashboard(driver, a):
    """(b) The cookie path: log in through the form, then check what the traffic produced."""
    login(driver, a["url"], a["token"])
    wait_for(driver, state_is("ready"), "the dashboard after logging in")
    check(driver.current_url.endswith("/ui/"), "the login redirects to /ui/")
    cookie = driver.get_cookie("sluice_admin")
    check(cookie is not None and cookie["httpOnly"] and cookie.get("sameSite") == "Strict",
          f"the session cookie is HttpOnly and SameSite=Strict: {cookie}")

    check(text(driver, "#total-requests") == str(a["requests"]), f"total requests: {a['requests']}")
    check(text(driver, "#total-error-rate") == a["error_rate"], f"error rate: {a['error_rate']}")
    check(text(driver, "#total-errors") == f"{a['errors']} failed", f"errors: {a['errors']}")
    check(text(driver, "#total-spend").startswith("$"), "spend is shown")
    tokens = int(text(driver, "#total-tokens").replace(",", ""))
    check(tokens == a["tokens"], f"total tokens: {a['tokens']} (page: {tokens})")

    keys = {r[0]: r for r in rows(driver, "table-keys")}
    for key, n in a["key_requests"].items():
        check(key in keys and keys[key][1] == str(n), f"key {key!r}: {n} requests (table: {keys.get(key)})")
    # A key name with markup is shown as text, never parsed.
    check(not driver.find_elements(By.CSS_SELECTOR, "#table-keys tbody b, #legend-key b"),
          "key names are text, not markup")
    models = {r[0]: r for r in rows(driver, "table-models")}
    check(a["model"] in models, f"model {a['model']} in the models table")

    for chart in ("spend-key", "tokens-key", "spend-model", "tokens-model"):
        bars = driver.find_elements(By.CSS_SELECTOR, f"#chart-{chart} svg rect")
        check(len(bars) > 0, f"chart {chart} has bars")
    legend = [li.text.strip() for li in driver.find_elements(By.CSS_SELECTOR, "#legend-key li")]
    check(set(a["key_requests"]) <= set(legend), f"the key legend names both keys: {legend}")

    latency = rows(driver, "table-latency")
    check(latency and latency[0][0] == "All models" and latency[0][2].endswith("ms"),
          f"latency percentiles for all models: {latency[:1]}")
    check(any(r[0] == a["model"] for r in latency[1:]), "latency per model")
    check(any(c not in ("—", "") for c in latency[0][5:8]), "TTFT from the streamed request")

    f = a["failure"]
    failures = rows(driver, "table-failures")
    hit = [r for r in failures if r[1] == f["key"] and r[5] == str(f["status"])]
    check(hit, f"a failed request row for {f['key']!r} with status {f['status']}: {failures}")
    check(hit[0][2] == a["model"] and hit[0][6] == f["error"] and int(hit[0][9]) >= 2,
          f"the failure row has model, error and attempts: {hit[0]}")

    b = a["budget"]
    meter = driver.find_elements(By.CSS_SELECTOR, "#budgets .budget")
    mine = [m for m in meter if m.get_attribute("data-key") == b["key"]]
    check(mine, f"a budget bar for {b['key']}")
    check(f"of {b['budget']}" in mine[0].text and b["period"] in mine[0].text,
          f"budget: {mine[0].text!r}")
    check(mine[0].find_elements(By.CSS_SELECTOR, "svg.bar rect.bar-fill"), "the budget bar is drawn")

    guard = [g.text for g in driver.find_elements(By.CSS_SELECTOR, "#guardrails .guardrail")]
    check(any(a["guardrail"] in g and g.strip().endswith("1") for g in guard), f"guardrail actions: {guard}")

    # Another range: the hash follows, the data reloads.
    driver.find_element(By.CSS_SELECTOR, "#range button[data-since='1h']").click()
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#range button[data-since='1h']")
             .get_attribute("aria-pressed") == "true" and state_is("ready")(d), "the 1h range")
    wait_for(driver, lambda d: text(d, "#total-requests-sub") == "last 1h", "the 1h totals")
    check(driver.current_url.endswith("#since=1h"), "the range is kept in the URL")
    check(text(driver, "#total-requests") == str(a["requests"]), "1h: the same requests")
    driver.refresh()
    wait_for(driver, state_is("ready"), "the dashboard after a reload")
    check(driver.find_element(By.CSS_SELECTOR, "#range button[data-since='1h']").get_attribute("aria-pressed") == "true",
          "a reload keeps the range")

    noise = loud(console(driver))
    check(not noise, f"no console errors or warnings on the dashboard: {noise}")

    driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
    shows_login(driver, a["url"], a["keys"])
    check(driver.get_cookie("sluice_admin") is None, "signing out clears the cookie")
    console(driver)


def keys_state_is(state):
    return lambda d: d.find_element(By.ID, "keys-view").get_attribute("data-state") == state


def key_rows(driver):
    """The Keys table's rows by key name: cell texts, and the row's action buttons."""
    out = {}
    for tr in driver.find_elements(By.CSS_SELECTOR, "#table-gateway-keys tbody tr[data-key]"):
        cells = [td.text.strip() for td in tr.find_elements(By.TAG_NAME, "td")]
        buttons = [b.text.strip() for b in tr.find_elements(By.TAG_NAME, "button")]
        out[tr.get_attribute("data-key")] = {
            "source": cells[1], "status": cells[2], "prefix": cells[3], "models": cells[4],
            "team": cells[5], "expires": cells[6], "created": cells[7], "actions": cells[8],
            "buttons": buttons, "row": tr,
        }
    return out


def chat_status(a, secret):
    """The status of a chat completion through the gateway's client port with `secret`."""
    req = urllib.request.Request(
        a["client_url"] + "/v1/chat/completions",
        data=json.dumps(a["chat"]).encode(),
        headers={"authorization": "Bearer " + secret, "content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def eventually_status(a, secret, want):
    """Polls until a chat with `secret` answers `want` (at most WAIT seconds)."""
    end = time.monotonic() + WAIT
    got = chat_status(a, secret)
    while got != want and time.monotonic() < end:
        time.sleep(0.2)
        got = chat_status(a, secret)
    return got


def shown_secret(driver, title):
    """Waits for the secret box with `title` in its heading; the secret it shows."""
    wait_for(driver, lambda d: d.find_element(By.ID, "key-secret").is_displayed()
             and title in text(d, "#key-secret-title"), f"the secret box ({title})")
    secret = text(driver, "#key-secret-value")
    box = text(driver, "#key-secret").replace(secret, "(the secret)") if secret else ""
    check("will not be shown again" in box, f"the secret box warns it is shown once: {box!r}")
    check("Copy" in box, "the secret box has a copy button")
    return secret


def dismiss_secret(driver, secret):
    driver.find_element(By.ID, "key-secret-copy").click()
    wait_for(driver, lambda d: text(d, "#key-secret-hint").startswith(("Copied", "Selected")),
             "the copy hint")
    driver.find_element(By.ID, "key-secret-done").click()
    wait_for(driver, lambda d: not d.find_element(By.ID, "key-secret").is_displayed(), "the secret box to close")
    check(secret not in driver.page_source, "the secret is gone from the page once closed")


def fill(driver, values):
    form = driver.find_element(By.ID, "key-create")
    for name, value in values.items():
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def keys_view(driver, a):
    """The Keys view: the config's keys, then a managed key created, used, rotated, revoked."""
    login(driver, a["url"], a["token"])
    wait_for(driver, state_is("ready"), "the dashboard after logging in")
    driver.find_element(By.CSS_SELECTOR, "#views button[data-view='keys']").click()
    wait_for(driver, keys_state_is("ready"), "the Keys view")
    check(driver.current_url.endswith("#keys"), "the Keys view is kept in the URL")
    check(not driver.find_element(By.ID, "content").is_displayed()
          and not driver.find_element(By.ID, "range").is_displayed(), "the usage view steps aside")

    rows_ = key_rows(driver)
    for k in a["keys"]:
        r = rows_.get(k)
        check(r and r["source"] == "config" and r["actions"] == "read-only" and not r["buttons"],
              f"config key {k!r} listed, read-only: {r and {x: r[x] for x in ('source', 'actions', 'buttons')}}")
    check(not driver.find_elements(By.CSS_SELECTOR, "#table-gateway-keys tbody b"),
          "a config key name with markup is text")

    # A name with markup never reaches the store: the form says why.
    fill(driver, {"name": "<b>x</b>"})
    wait_for(driver, lambda d: d.find_element(By.ID, "key-form-error").is_displayed(), "the name error")
    check(text(driver, "#key-form-error").startswith("name:"), "an invalid name is refused with a reason")
    check("<b>x</b>" not in key_rows(driver), "no key made of it")

    k = a["new_key"]
    fill(driver, {"name": k["name"], "models": "gpt-*", "expires": "30d", "team": k["team"]})
    first = shown_secret(driver, "created")
    check(not driver.find_element(By.ID, "key-form-error").is_displayed(), "the error is gone")
    wait_for(driver, lambda d: k["name"] in key_rows(d), "the new key in the table")
    r = key_rows(driver)[k["name"]]
    check(r["source"] == "managed" and r["status"] == "active" and r["models"] == "gpt-*",
          f"the new key: managed, active, gpt-*: {r['source']}, {r['status']}, {r['models']}")
    check(r["team"] == k["team"], f"the team is shown as text: {r['team']!r}")
    check(not driver.find_elements(By.CSS_SELECTOR, "#table-gateway-keys tbody i"), "team markup is not parsed")
    check(r["expires"].endswith("UTC") and r["created"].endswith("UTC"), "expiry and creation shown")
    check(len(first) > 20 and first.startswith(r["prefix"].rstrip("…")), "the table shows the secret's prefix only")
    check(first not in driver.find_element(By.ID, "table-gateway-keys").text, "the table never shows the secret")
    check(r["buttons"] == ["Rotate", "Revoke"], f"a managed key can be rotated and revoked: {r['buttons']}")
    check(chat_status(a, first) == 200, "the new key works at the client port")
    dismiss_secret(driver, first)

    key_rows(driver)[k["name"]]["row"].find_element(By.CSS_SELECTOR, "button.rotate").click()
    second = shown_secret(driver, "New secret")
    check(second != first, "rotating shows a new secret")
    check("keeps working until" in text(driver, "#key-secret-note"), "the old secret's grace is stated")
    check(chat_status(a, second) == 200, "the new secret works")
    check(chat_status(a, first) == 200, "the old secret works during its grace")
    wait_for(driver, lambda d: "previous secret until" in key_rows(d)[k["name"]]["status"], "the grace in the table")
    dismiss_secret(driver, second)

    # Revoking asks first; cancelling changes nothing.
    key_rows(driver)[k["name"]]["row"].find_element(By.CSS_SELECTOR, "button.revoke").click()
    wait_for(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "button.revoke-confirm")), "the revoke confirmation")
    driver.find_element(By.CSS_SELECTOR, "button.revoke-cancel").click()
    wait_for(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "button.revoke-confirm"), "the confirmation to go")
    check(key_rows(driver)[k["name"]]["status"].startswith("active"), "cancelled: still active")
    check(chat_status(a, second) == 200, "cancelled: the key still works")
    key_rows(driver)[k["name"]]["row"].find_element(By.CSS_SELECTOR, "button.revoke").click()
    confirm = wait_for(driver, EC.element_to_be_clickable((By.CSS_SELECTOR, "button.revoke-confirm")), "the revoke confirmation")
    check(k["name"] in text(driver, "td.actions .confirm"), "the confirmation names the key")
    confirm.click()
    wait_for(driver, lambda d: key_rows(d)[k["name"]]["status"].startswith("revoked"), "the key revoked")
    check(not key_rows(driver)[k["name"]]["buttons"], "a revoked key has no buttons")
    check(eventually_status(a, second, 401) == 401, "the revoked key answers 401")
    check(eventually_status(a, first, 401) == 401, "its old secret answers 401 too")

    # A reload comes back to the Keys view, with no secret on the page.
    driver.refresh()
    wait_for(driver, keys_state_is("ready"), "the Keys view after a reload")
    check(not driver.find_element(By.ID, "key-secret").is_displayed(), "no secret after a reload")
    driver.find_element(By.CSS_SELECTOR, "#views button[data-view='usage']").click()
    wait_for(driver, state_is("ready"), "back to the usage view")
    check(driver.find_element(By.ID, "content").is_displayed()
          and not driver.find_element(By.ID, "keys-view").is_displayed(), "the usage view is back")

    noise = loud(console(driver))
    check(not noise, f"no console errors or warnings in the Keys view: {noise}")
    driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
    shows_login(driver, a["url"], a["keys"])
    console(driver)


def ledger_off(driver, a):
    """A gateway without `usage:` and without a token: the page says the ledger is off."""
    driver.get(a["off_url"] + "/ui/")
    wait_for(driver, state_is("off"), "the ledger-off notice")
    notice = text(driver, "#notice")
    check("ledger is off" in notice and "usage:" in notice, f"the ledger-off notice: {notice!r}")
    check(not driver.find_element(By.ID, "content").is_displayed(), "no empty dashboard")
    check(not driver.find_elements(By.CSS_SELECTOR, "form.logout"), "no token, no sign-out button")
    noise = loud(console(driver), allowed=("/usage/report",))
    check(not noise, f"no console errors but the report's 404: {noise}")

    # The Keys view lists the config's keys and says managed ones need `usage:`.
    driver.find_element(By.CSS_SELECTOR, "#views button[data-view='keys']").click()
    wait_for(driver, keys_state_is("off"), "the Keys view without a store")
    notice = text(driver, "#keys-notice")
    check("Managed keys need" in notice and "usage:" in notice, f"the no-store notice: {notice!r}")
    check(not driver.find_element(By.ID, "key-create-panel").is_displayed(), "no form to create keys")
    listed = key_rows(driver)
    check(set(a["off_keys"]) <= set(listed) and all(r["source"] == "config" for r in listed.values()),
          f"the config's keys are listed: {list(listed)}")
    noise = loud(console(driver))
    check(not noise, f"no console errors in the Keys view: {noise}")


def main():
    a = json.loads(sys.argv[1])
    driver = start_browser()
    try:
        for step in (without_token, with_header, dashboard, keys_view, ledger_off):
            print(f"-- {step.__doc__.splitlines()[0]}", flush=True)
            step(driver, a)
    except Exception as e:  # noqa: BLE001 — report anything, with the page and console
        print(f"FAILED: {e}", flush=True)
        if not isinstance(e, Failure):
            traceback.print_exc()
        try:
            print("url:", driver.current_url)
            print("page text:\n" + driver.find_element(By.TAG_NAME, "body").text)
            print("console:", json.dumps(driver.get_log("browser"), indent=1))
        except Exception:  # noqa: BLE001
            pass
        return 1
    finally:
        driver.quit()
    print("all dashboard checks passed")
    return 0


if __name__ == "__main__":
    t = time.monotonic()
    code = main()
    print(f"({time.monotonic() - t:.1f} s)")
    sys.exit(code)

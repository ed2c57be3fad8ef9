"""The web page in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by selenium at those binaries: nothing is downloaded at run time): what a person sees
on the dashboard and on a photo page, and a retry button that works."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_daemon_support import no_leaked_threads  # noqa: F401
from web_support import rows, serving

from pixcamd.daemon.ledger import Ledger

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(
            f"Chromium not installed ({CHROMIUM}, {CHROMEDRIVER}): "
            "apt-get install chromium chromium-driver"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1400",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        # network only to loopback: none of Chromium's own background traffic, and no name
        # but 127.0.0.1 resolves
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    # an explicit driver path: selenium-manager (which would download one) is never run
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def loaded(driver, element_id: str) -> int:
    """The image's natural width once it has loaded (0: broken or not yet)."""
    return driver.execute_script(
        "const i = document.getElementById(arguments[0]);"
        "return i && i.complete ? i.naturalWidth : 0;",
        element_id,
    )


def test_a_person_sees_the_dashboard_and_a_photo_and_can_retry(world, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    held = rows(world)["held.jpg"]
    # a name from a sync peer: U+202E would reverse the rest of the line, \n split it
    ledger = Ledger(world.ledger_path)
    ledger.add_event(1796470000.0, "info", "settled", "evil\u202egpj.exe\nx.jpg", {"message": ""})
    ledger.close()
    with serving(world) as server:
        browser.get(server.url)
        assert browser.find_element(By.ID, "daemon").text == "stopped"
        assert browser.find_element(By.ID, "model").text == "brisque"
        events = browser.find_elements(By.CSS_SELECTOR, "#events li")
        assert events and "settled" in events[0].text
        served = [e.text for e in events]
        # the page updates itself: its script fetched /api/status and said so, and wrote the
        # events as the server did (the name escaped, the same time format)
        wait.until(lambda d: d.find_element(By.ID, "updated").text.startswith("Last update"))
        events = browser.find_elements(By.CSS_SELECTOR, "#events li")
        assert [e.text for e in events] == served
        assert "evil\\u202egpj.exe\\nx.jpg" in events[0].text

        browser.get(f"{server.url}photos?verdict=unprotected")
        tiles = browser.find_elements(By.CSS_SELECTOR, ".tile")
        assert len(tiles) == 1 and "held.jpg" in tiles[0].text
        tiles[0].find_element(By.TAG_NAME, "a").click()

        for image in ("original", "copy", "diff"):
            width = wait.until(lambda d, image=image: loaded(d, image))
            assert width == 640, image
        assert browser.find_element(By.ID, "verdict").text == "NOT protected, held back"
        cells = browser.find_elements(By.CSS_SELECTOR, "#scores tbody tr td")
        assert [c.text for c in cells[:3]] == ["brisque", "task", "center"]
        before, after = cells[3].text.split(), cells[4].text.split()
        assert float(before[0]) < 60 and float(after[0]) < 60  # good quality, still
        assert before[1] == after[1] == "good"  # in words, not in colour alone
        # the two 100 % viewports move together (a 640×480 photo in 420-px-high viewports)
        together = browser.find_element(By.ID, "zoom-together").text
        assert "Both move together" in together  # said by the script that does it
        browser.execute_script("document.getElementById('zoom-original').scrollTop = 40")
        where = "return document.getElementById(arguments[0]).scrollTop"
        wait.until(lambda d: d.execute_script(where, "zoom-copy") == 40)
        browser.execute_script("document.getElementById('zoom-copy').scrollTop = 10")
        wait.until(lambda d: d.execute_script(where, "zoom-original") == 10)
        browser.save_screenshot(str(tmp_path / "photo-page.png"))

        browser.find_element(By.ID, "retry").click()
        wait.until(lambda d: d.find_elements(By.ID, "done"))
        assert "Queued again" in browser.find_element(By.ID, "done").text
    assert (tmp_path / "photo-page.png").stat().st_size > 10_000
    row = rows(world)["held.jpg"]
    assert row["state"] == "queued" and held["state"] == "unprotected"


def test_the_dashboard_says_when_it_cannot_reach_pixcamd(world, browser):
    """The server that served the page stops (a `pixcamd run` ended): the daemon card no
    longer claims what it last knew."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    with serving(world) as server:
        browser.get(server.url)
        wait.until(lambda d: d.find_element(By.ID, "updated").text.startswith("Last update"))
    wait.until(lambda d: d.find_element(By.ID, "daemon").text == "unreachable")
    assert browser.find_element(By.ID, "pid").text == ""
    assert "cannot reach pixcamd" in browser.find_element(By.ID, "updated").text
    assert said(browser).startswith("daemon unreachable")  # to a screen reader too


def said(driver) -> str:
    """What the dashboard's polite live region holds: what a screen reader says of a change."""
    from selenium.webdriver.common.by import By

    region = driver.find_element(By.CSS_SELECTOR, "[role=status]")
    return region.get_attribute("textContent")


def test_a_keyboard_keeps_its_place_and_a_screen_reader_hears_what_changed(world, browser):
    """A counts link that has the focus keeps it while the dashboard updates itself; the
    ledger becoming unreadable is shown and said through the live region, once."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    updated = lambda d: d.find_element(By.ID, "updated").text  # noqa: E731
    with serving(world) as server:
        browser.get(server.url)
        wait.until(lambda d: updated(d).startswith("Last update"))
        assert "Updates by itself" in browser.find_element(By.ID, "how").text
        assert said(browser) == ""  # nothing changed since the page was made
        body = browser.find_element(By.TAG_NAME, "body")
        for _ in range(40):  # Tab from the top to the first count
            body = browser.switch_to.active_element
            if body.get_attribute("href") and "verdict=" in body.get_attribute("href"):
                break
            body.send_keys(Keys.TAB)
        focused = browser.switch_to.active_element
        assert focused.text.startswith("queued "), focused.text
        for _ in range(2):  # two updates later: still there
            last = updated(browser)
            wait.until(lambda d, last=last: updated(d) != last)
        assert browser.switch_to.active_element == focused
        assert focused.text.startswith("queued ")

        ledger = world.ledger_path
        ledger.rename(ledger.with_name("elsewhere"))
        try:
            wait.until(lambda d: d.find_element(By.ID, "problem").is_displayed())
            assert "no ledger at" in browser.find_element(By.ID, "problem").text
            assert said(browser).startswith("no ledger at")
        finally:
            ledger.with_name("elsewhere").rename(ledger)
        wait.until(lambda d: not d.find_element(By.ID, "problem").is_displayed())
        assert said(browser) == "daemon stopped. idle"
        ledger = Ledger(world.ledger_path)  # the daemon fell back to BRISQUE meanwhile
        ledger.set_daemon(model_fallback=True, model_note="KonCept512's weights are missing")
        ledger.close()
        wait.until(lambda d: d.find_element(By.ID, "fallback").is_displayed())
        assert said(browser).startswith("MODEL FALLBACK: KonCept512's weights are missing")
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        wait.until(lambda d: "verdict=queued" in d.current_url)


def test_a_320_px_window_needs_no_sideways_scrolling_and_reduced_motion_stops_the_bar(
    world, browser
):
    """WCAG's reflow: 320 CSS px (a 1280 px window at 400 %) shows every page without
    scrolling sideways; a wide table scrolls in its own box, which the keyboard reaches. Where
    the system asks for less motion, the busy bar (an endless animation) is not shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    held = rows(world)["held.jpg"]["id"]
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 320, "height": 800, "deviceScaleFactor": 1, "mobile": False},
    )
    wide = (
        "const e = document.scrollingElement;"
        "return [e.scrollWidth, e.clientWidth, [...document.querySelectorAll('main *')]"
        ".filter(n => n.getBoundingClientRect().right > e.clientWidth + 0.5)"
        # inside a box that scrolls by itself (the table's, the 100 % viewports)
        ".filter(n => { for (let p = n.parentElement; p; p = p.parentElement) {"
        "  const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll') "
        "return false; } return true; })"
        ".map(n => n.tagName + '#' + n.id + '.' + n.className).slice(0, 5)];"
    )
    with serving(world) as server:
        for path in ("", "photos", f"photos/{held}", "photos/999999"):
            browser.get(server.url + path)
            scroll, client, past = browser.execute_script(wide)
            assert scroll <= client and not past, (path, scroll, client, past)
        browser.get(f"{server.url}photos/{held}")
        box = browser.find_element(By.ID, "scores").find_element(By.XPATH, "..")
        assert box.get_attribute("aria-label") == "scores"
        browser.execute_script("arguments[0].focus()", box)
        browser.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
        WebDriverWait(browser, 60).until(lambda d: box.get_property("scrollLeft") > 0)

        bar = "const b = document.getElementById('step'); b.hidden = false; return b;"
        browser.get(server.url)
        assert browser.execute_script(bar).is_displayed()  # as while a photo is protected
        browser.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]},
        )
        browser.get(server.url)
        assert not browser.execute_script(bar).is_displayed()

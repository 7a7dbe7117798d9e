"""The reports in a real headless Chromium: they load without errors, list every lead, and search works.

Needs a Chromium binary (Debian: ``apt-get install -y chromium``; or ``LEADML_CHROMIUM=/path``);
skipped with that reason when there is none. Screenshots are saved in the test's temp folder and
copied to ``$LEADML_TEST_ARTIFACTS`` when that variable names a folder (CI keeps them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from leadml.explain.report import write_funnel_report, write_model_card, write_sales_report
from tests.explain.cdp import Browser, find_chromium
from tests.explain.test_report import funnel_tables, make_scores

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no Chromium binary: apt-get install -y chromium, or set LEADML_CHROMIUM"
    ),
]

VISIBLE_LEADS = "Array.from(document.querySelectorAll('tr.lead')).filter(r => r.offsetParent !== null).length"


def keep(path: Path) -> Path:
    """Copy a screenshot to $LEADML_TEST_ARTIFACTS (when set) and return the saved file."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    folder = os.environ.get("LEADML_TEST_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(folder) / path.name)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with Browser(CHROMIUM, tmp_path_factory.mktemp("chromium-profile")) as chromium:
        yield chromium


def search(browser: Browser, text: str) -> None:
    browser.evaluate(
        f"(() => {{ const box = document.getElementById('search'); box.value = {text!r};"
        " box.dispatchEvent(new Event('input')); return true; })()"
    )


def test_console_errors_are_seen(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><title>x</title><script>console.error('boom'); missingFunction();</script>")
    browser.open(page)
    errors = browser.errors()
    assert any("boom" in e for e in errors) and len(errors) >= 2


def test_sales_report_shows_every_lead_and_search_filters_them(browser, trained, trainset, test_rows, tmp_path):
    scores, contributions = make_scores(trained, trainset, test_rows)
    path = write_sales_report(scores, tmp_path / "sales.html", contributions=contributions, waterfalls=50)
    browser.open(path)
    assert browser.errors() == []
    n = len(scores)
    assert browser.evaluate("document.querySelectorAll('tr.lead').length") == n
    assert browser.evaluate(VISIBLE_LEADS) == n
    assert browser.evaluate("document.getElementById('shown').textContent") == f"{n:,} of {n:,} leads"

    one = scores.sort_values("probability", ascending=False)["lead_id"].iloc[3]
    search(browser, one)
    assert browser.evaluate(VISIBLE_LEADS) == 1
    prefix = one[:-2]
    search(browser, prefix.lower())
    expected = int(scores["lead_id"].str.contains(prefix, regex=False).sum())
    assert 1 < expected < n and browser.evaluate(VISIBLE_LEADS) == expected
    assert browser.evaluate("document.getElementById('shown').textContent") == f"{expected:,} of {n:,} leads"

    # a click opens the lead's reasons and waterfall chart
    browser.evaluate(f"document.querySelector('tr.lead[data-lead=\"{one}\"]').click(), true")
    detail = f"document.querySelector('tr.lead[data-lead=\"{one}\"]').nextElementSibling"
    assert browser.evaluate(f"{detail}.offsetParent !== null") is True
    assert browser.evaluate(f"{detail}.querySelector('svg') !== null") is True
    keep(browser.screenshot(tmp_path / "sales_report.png"))

    search(browser, "")
    assert browser.evaluate(VISIBLE_LEADS) == n
    # sorting by score, ascending on the first click
    browser.evaluate("document.querySelectorAll('#leads th')[2].click(), true")
    first = browser.evaluate("document.querySelector('tr.lead').dataset.lead")
    assert first == scores.loc[scores["probability"].idxmin(), "lead_id"]
    assert browser.errors() == []


def test_model_card_and_funnel_report_render_offline(browser, trained, trainset, sim_data, tmp_path):
    card = write_model_card(trained, trainset, tmp_path / "model_card.html")
    leads, outcomes = funnel_tables()
    funnel = tmp_path / "funnel.html"
    write_funnel_report(leads, outcomes, funnel, as_of="2026-03-01")
    for path, images in ((card, 5), (funnel, 1)):
        browser.open(path)
        assert browser.errors() == []
        assert browser.evaluate("document.images.length") == images
        assert browser.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 100)") is True
        browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=2400, deviceScaleFactor=1, mobile=False)
        keep(browser.screenshot(tmp_path / f"{path.stem}.png"))
        browser.call("Emulation.clearDeviceMetricsOverride")
    assert browser.evaluate("document.body.textContent").count("Stuck as MQL for more than 30 days (1)") == 1

"""The sales report a manager uses, made by `leadml report PIPELINE --scores scores.csv` and read in a
real headless Chromium: names from the leads table, a CRM link, the display score with its
probability, the 7-day trend, a waterfall chart for a top lead, raises in green."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from leadml.cli.app import app
from leadml.core.config import load_pipeline
from leadml.core.errors import LeadDataError
from leadml.data.io import write_table
from leadml.data.simulate import simulate
from leadml.jobs.sales_report import sales_report
from leadml.jobs.score import score_batch
from leadml.jobs.train import run_training
from tests.explain.cdp import Browser, find_chromium

CHROMIUM = find_chromium()
CRM = "https://crm.example.com/leads/{lead_id}"
GREEN = "rgb(26, 127, 55)"  # the page's colour of what raises a lead


@pytest.fixture(scope="module")
def managers(tmp_path_factory):
    """A registered LightGBM champion on 3,000 simulated leads with names, scored to CSV a week apart."""
    folder = tmp_path_factory.mktemp("managers")
    world = simulate(3000, seed=4)
    leads = world.leads.assign(name="Name " + world.leads["lead_id"].str[-4:],
                               company="Co " + world.leads["email_domain"].astype(str),
                               owner="rep-" + (world.leads.index % 3).astype(str))  # fmt: skip
    tables = {"leads": leads, "events": world.events, "outcomes": world.outcomes}
    paths = {name: str(write_table(table, folder / f"{name}.parquet")) for name, table in tables.items()}
    pipeline = folder / "managers.yaml"
    pipeline.write_text(yaml.safe_dump({
        "name": "managers", "data": {"source": "tables", **paths},
        "profile": {"exclude": ["name", "company", "owner"]},
        "models": {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 40}},
        "mlflow": {"tracking_uri": f"sqlite:///{folder / 'runs.db'}", "registered_model": "managers"},
        "history": {"path": str(folder / "history")},
        "report": {"display_columns": ["name", "company", "owner"], "crm_url": CRM},
    }))  # fmt: skip
    config = load_pipeline(pipeline)
    with pytest.MonkeyPatch.context() as env:  # the registry of this module, not of one test
        registry(env, folder)
        run_training(config, n_boot=10)
        as_of = world.events["timestamp"].max().ceil("D")
        for day in (as_of - pd.Timedelta(days=7), as_of):
            score_batch(config, day, folder / f"scores-{day:%m%d}.csv", progress=False)
    return pipeline, folder / f"scores-{as_of:%m%d}.csv", leads.set_index("lead_id")


def registry(env: pytest.MonkeyPatch, folder: Path) -> None:
    """MLflow in ``folder``: where the module's champion is registered and read."""
    env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'runs.db'}")
    env.setenv("MLFLOW_ARTIFACTS_DESTINATION", str(folder / "artifacts"))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary: apt-get install -y chromium, or set LEADML_CHROMIUM")
def test_the_sales_report_made_from_csv_scores_shows_names_trend_and_waterfall(managers, tmp_path, monkeypatch):
    pipeline, scores_csv, leads = managers
    registry(monkeypatch, pipeline.parent)
    result = CliRunner().invoke(app, ["report", str(pipeline), "--scores", str(scores_csv), "--out",
                                      str(tmp_path / "reports")], env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "note:" not in result.output, result.output  # every top lead explained by the serving model
    scores = pd.read_csv(scores_csv, dtype={"lead_id": str})
    top = scores.sort_values("probability", ascending=False, kind="stable").iloc[0]
    with Browser(CHROMIUM, tmp_path / "profile") as browser:
        browser.open(tmp_path / "reports" / "sales.html")
        assert browser.errors() == []
        row = f"document.querySelector('tr.lead[data-lead=\"{top.lead_id}\"]')"
        # names from the leads table, and the CRM link with the lead's id
        cells = browser.evaluate(f"Array.from({row}.querySelectorAll('td.lead-name, td.lead-more'))"
                                 ".map(c => c.textContent)")  # fmt: skip
        assert cells == [leads.loc[top.lead_id, c] for c in ("name", "company", "owner")]
        headers = browser.evaluate("Array.from(document.querySelectorAll('#leads th')).map(h => h.textContent)")
        assert headers[2:5] == ["name", "company", "owner"] and "7 days" in headers
        assert browser.evaluate(f"{row}.querySelector('a.crm').href") == CRM.format(lead_id=top.lead_id)
        # the display score with the probability beside it: the MQLs at 50 or more, the others below
        shown = browser.evaluate("Array.from(document.querySelectorAll('tr.lead')).map(r => "
                                 "[r.dataset.lead, r.querySelector('td.score').textContent, r.classList.contains('mql')])")  # fmt: skip
        assert len(shown) == len(scores)
        p = scores.set_index("lead_id")["probability"]
        for lead_id, text, mql in shown:
            points, probability = re.fullmatch(r"(\d+) \(p = (0\.\d\d|1\.00)\)", text).groups()
            assert float(probability) == pytest.approx(p[lead_id], abs=0.005)
            assert (int(points) >= 50) == mql
        assert int(shown[0][1].split()[0]) > round(100 * top.probability)  # points, not p x 100
        # the trend of the last 7 days, in display points
        trends = browser.evaluate("Array.from(document.querySelectorAll('td.trend')).map(c => c.textContent)")
        assert len(trends) == len(scores) and all(re.fullmatch(r"[▲▼–] (0|[+-]\d+)|–", t) for t in trends)
        assert any(t[0] == "▲" for t in trends) and any(t[0] == "▼" for t in trends)  # "–": no run a week before
        # a click on the top lead opens its waterfall chart
        browser.evaluate(f"{row}.click(), true")
        detail = f"{row}.nextElementSibling"
        assert browser.evaluate(f"{detail}.offsetParent !== null") is True
        assert browser.evaluate(f"{detail}.querySelector('svg[aria-label=\"waterfall of contributions\"]') !== null")
        # what raises a lead is green with its effect in points; what lowers it is not green
        raises = browser.evaluate(f"Array.from({detail}.querySelectorAll('li.raise')).map(li => "
                                  "[getComputedStyle(li).color, li.querySelector('.effect').textContent])")  # fmt: skip
        assert raises and all(colour == GREEN and re.fullmatch(r"\+\d+(\.\d)? pts", e) for colour, e in raises)
        lowers = browser.evaluate(
            "Array.from(document.querySelectorAll('li.lower')).map(li => getComputedStyle(li).color)"
        )
        assert lowers and GREEN not in lowers
        assert browser.evaluate("getComputedStyle(document.querySelector('span.tier')).backgroundColor") == GREEN
        assert "A1" in browser.evaluate("document.querySelector('.legend.grid').textContent")
        assert browser.errors() == []


def test_a_display_column_the_leads_table_lacks_is_one_line(managers, tmp_path):
    pipeline, scores_csv, _ = managers
    config = load_pipeline(pipeline).with_overrides({"report.display_columns": ["name", "nickname"]})
    with pytest.raises(LeadDataError, match=r"^report.display_columns: column 'nickname' is not in the leads "
                                            r"table \(columns present: lead_id, created_at, .*owner\)$"):  # fmt: skip
        sales_report(config, scores_csv, tmp_path / "sales.html")
    assert not (tmp_path / "sales.html").exists()

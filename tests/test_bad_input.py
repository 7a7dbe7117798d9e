"""Bad input across the commands: each case exits 1 with one clear line naming what is wrong.

The table is the promise of DESIGN.md's "Bad input gets a clear error": file, column and example
rows for data; file and key path for configs. Commands run in-process through the real entry point
(`leadml.cli.app.main`), so each case costs milliseconds, not a Python start.
"""

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from leadml.cli.app import main

REPO = Path(__file__).resolve().parents[1]
SEED_RULES = REPO / "pipelines" / "rules" / "seed_points.yaml"


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Three small valid tables."""
    folder = tmp_path_factory.mktemp("good")
    leads = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c"],
            "created_at": ["2026-01-01", "2026-01-02", "2026-01-03"],
            "job_level": ["vp", "student", None],
        }
    )
    events = pd.DataFrame(
        {
            "lead_id": ["a", "a", "b"],
            "timestamp": ["2026-01-05", "2026-01-06", "2026-01-07"],
            "event_type": ["page_view", "form_submit", "email_open"],
        }
    )
    outcomes = pd.DataFrame({"lead_id": ["a"], "outcome": ["won"], "closed_at": ["2026-02-01"]})
    for name, frame in (("leads", leads), ("events", events), ("outcomes", outcomes)):
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def _write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content)
    return path


def _pipeline(folder: Path, good: Path, **changes) -> Path:
    config = {
        "name": "bad",
        "data": {
            "source": "tables",
            "leads": str(good / "leads.csv"),
            "events": str(good / "events.csv"),
            "outcomes": str(good / "outcomes.csv"),
        },
    }
    config.update(changes)
    return _write(folder, "pipeline.yaml", yaml.safe_dump(config))


# (case id, a function (tmp folder, good folder) -> argv, the message the error must show)
CASES = [
    (
        "leads: missing column",
        lambda t, g: ["validate", "--leads", _write(t, "l.csv", "id,created_at\n1,2026-01-01\n")],
        r"l\.csv: missing required column\(s\) 'lead_id'",
    ),
    (
        "leads: duplicate id",
        lambda t, g: ["validate", "--leads", _write(t, "l.csv", "lead_id,created_at\n1,2026-01-01\n1,2026-01-02\n")],
        r"l\.csv: column 'lead_id' has 1 duplicated ids over 2 rows \(first rows: row 1",
    ),
    (
        "leads: unparseable timestamp",
        lambda t, g: ["validate", "--leads", _write(t, "l.csv", "lead_id,created_at\n1,2026-01-01\n2,yesterday\n")],
        r"l\.csv: column 'created_at' has 1 .*timestamps.*row 2",
    ),
    (
        "leads: missing timestamp",
        lambda t, g: ["validate", "--leads", _write(t, "l.csv", "lead_id,created_at\n1,\n2,2026-01-01\n")],
        r"l\.csv: column 'created_at' has 1 missing timestamps",
    ),
    (
        "leads: ambiguous date format",
        lambda t, g: ["validate", "--leads", _write(t, "l.csv", "lead_id,created_at\n1,03/01/2026\n")],
        r"l\.csv: column 'created_at'.*ISO 8601",
    ),
    (
        "leads: numeric timestamps",
        lambda t, g: ["validate", "--leads", _write(t, "l.csv", "lead_id,created_at\n1,1767225600\n")],
        r"l\.csv: column 'created_at' holds numbers, not dates",
    ),
    (
        "leads: header only",
        lambda t, g: ["validate", "--leads", _write(t, "l.csv", "lead_id,created_at\n")],
        r"l\.csv: the table is empty \(0 rows\)",
    ),
    ("leads: empty file", lambda t, g: ["validate", "--leads", _write(t, "l.csv", "")], r"l\.csv: the table is empty"),
    (
        "leads: empty id",
        lambda t, g: ["validate", "--leads", _write(t, "l.csv", "lead_id,created_at\n,2026-01-01\n")],
        r"l\.csv: column 'lead_id' has 1 missing or empty values",
    ),
    (
        "leads: unknown format",
        lambda t, g: ["validate", "--leads", _write(t, "l.xlsx", "x")],
        r"l\.xlsx: unknown table format '\.xlsx'",
    ),
    ("leads: file not found", lambda t, g: ["validate", "--leads", t / "nowhere.csv"], r"nowhere\.csv: file not found"),
    (
        "leads: not parquet",
        lambda t, g: ["validate", "--leads", _write(t, "l.parquet", "not parquet at all")],
        r"l\.parquet: cannot be read as parquet",
    ),
    (
        "events: unknown leads",
        lambda t, g: [
            "validate",
            "--leads",
            g / "leads.csv",
            "--events",
            _write(t, "e.csv", "lead_id,timestamp,event_type\nzz,2026-01-05,page_view\n"),
        ],
        r"e\.csv: column 'lead_id' has 1 events of unknown leads \(first rows: row 1 \(lead_id='zz'.*--drop-orphans",
    ),
    (
        "events: missing event_type",
        lambda t, g: [
            "validate",
            "--leads",
            g / "leads.csv",
            "--events",
            _write(t, "e.csv", "lead_id,timestamp\na,2026-01-05\n"),
        ],
        r"e\.csv: missing required column\(s\) 'event_type'",
    ),
    (
        "events: empty event_type",
        lambda t, g: [
            "validate",
            "--leads",
            g / "leads.csv",
            "--events",
            _write(t, "e.csv", "lead_id,timestamp,event_type\na,2026-01-05,\n"),
        ],
        r"e\.csv: column 'event_type' has 1 missing or empty values",
    ),
    (
        "outcomes: not binary",
        lambda t, g: [
            "validate",
            "--leads",
            g / "leads.csv",
            "--outcomes",
            _write(t, "o.csv", "lead_id,outcome,closed_at\na,maybe,2026-02-01\n"),
        ],
        r"o\.csv: column 'outcome' has 1 values that are not a binary outcome \(.*seen: maybe",
    ),
    (
        "outcomes: duplicate lead",
        lambda t, g: [
            "validate",
            "--leads",
            g / "leads.csv",
            "--outcomes",
            _write(t, "o.csv", "lead_id,outcome,closed_at\na,won,2026-02-01\na,lost,2026-02-02\n"),
        ],
        r"o\.csv: column 'lead_id' has 1 duplicated ids",
    ),
    (
        "outcomes: closed before created",
        lambda t, g: [
            "validate",
            "--leads",
            g / "leads.csv",
            "--outcomes",
            _write(t, "o.csv", "lead_id,outcome,closed_at\na,won,2025-06-01\n"),
        ],
        r"o\.csv: column 'closed_at' has 1 outcomes closed before the lead was created",
    ),
    (
        "outcomes: unknown lead",
        lambda t, g: [
            "validate",
            "--leads",
            g / "leads.csv",
            "--outcomes",
            _write(t, "o.csv", "lead_id,outcome,closed_at\nzz,won,2026-02-01\n"),
        ],
        r"o\.csv: column 'lead_id' has 1 outcomes of unknown leads",
    ),
    (
        "pipeline: not found",
        lambda t, g: ["trainset", t / "missing.yaml", "--out", t / "x.parquet"],
        r"missing\.yaml: pipeline file not found",
    ),
    (
        "pipeline: unknown key",
        lambda t, g: ["trainset", _pipeline(t, g, snapshots={"horizon_dayz": 30}), "--out", t / "x.parquet"],
        r"pipeline\.yaml: snapshots\.horizon_dayz is not a known key; did you mean horizon_days\?",
    ),
    (
        "pipeline: bad value",
        lambda t, g: ["trainset", _pipeline(t, g, snapshots={"horizon_days": -5}), "--out", t / "x.parquet"],
        r"pipeline\.yaml: snapshots\.horizon_days: Input should be greater than 0",
    ),
    (
        "pipeline: not YAML",
        lambda t, g: ["train", _write(t, "p.yaml", "name: [unclosed\n")],
        r"p\.yaml: not valid YAML at line 2, column 1: expected ',' or '\]', but got '<stream end>'",
    ),
    (
        "pipeline: data file missing",
        lambda t, g: [
            "trainset",
            _pipeline(t, g, data={"source": "tables", "leads": str(t / "no.csv"), "events": str(g / "events.csv")}),
            "--out",
            t / "x.parquet",
        ],
        r"no\.csv: file not found",
    ),
    (
        "rules: unknown key",
        lambda t, g: [
            "rules",
            "score",
            _write(t, "r.yaml", "name: r\nrules:\n  - {name: x, event: a, pointz: 3}\n"),
            "--leads",
            g / "leads.csv",
            "--as-of",
            "2026-02-01",
            "--out",
            t / "s.parquet",
        ],
        r"r\.yaml: rule #1 'x'.*'pointz'.*did you mean 'points'",
    ),
    (
        "rules: event and field",
        lambda t, g: [
            "rules",
            "score",
            _write(t, "r.yaml", "name: r\nrules:\n  - {name: x, event: a, field: b, equals: 1, points: 3}\n"),
            "--leads",
            g / "leads.csv",
            "--as-of",
            "2026-02-01",
            "--out",
            t / "s.parquet",
        ],
        r"r\.yaml: rule #1 'x'",
    ),
    (
        "rules: points not a number",
        lambda t, g: [
            "rules",
            "score",
            _write(t, "r.yaml", "name: r\nrules:\n  - {name: x, event: a, points: many}\n"),
            "--leads",
            g / "leads.csv",
            "--as-of",
            "2026-02-01",
            "--out",
            t / "s.parquet",
        ],
        r"r\.yaml: rule #1 'x'.*points",
    ),
    (
        "features: as_of not a date",
        lambda t, g: ["features", "--leads", g / "leads.csv", "--as-of", "someday", "--out", t / "f.parquet"],
        r"as_of 'someday' is not a date",
    ),
    (
        "features: no input",
        lambda t, g: ["features", "--as-of", "2026-02-01", "--out", t / "f.parquet"],
        r"give a pipeline file or --leads",
    ),
    (
        "train: bad --promote",
        lambda t, g: ["train", _pipeline(t, g), "--promote", "sometimes"],
        r"--promote must be auto or never",
    ),
    (
        "rules learn: flat pipeline",
        lambda t, g: [
            "rules",
            "learn",
            _pipeline(t, g, data={"source": "flat", "flat": str(g / "leads.csv"), "label": "job_level"}),
            "--out",
            t / "r.yaml",
        ],
        r"`rules learn` needs event data",
    ),
    (
        "flat: label not binary",
        lambda t, g: [
            "trainset",
            _pipeline(t, g, data={"source": "flat", "flat": str(g / "leads.csv"), "label": "job_level"}),
            "--out",
            t / "x.parquet",
        ],
        r"leads\.csv: column 'job_level' has .* (missing labels|not a binary outcome)",
    ),
]


@pytest.mark.parametrize("name, make_args, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(name, make_args, message, tmp_path, good, capsys):
    assert main([str(arg) for arg in make_args(tmp_path, good)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ")
    assert "Traceback" not in err
    assert re.search(message, " ".join(err.split())), err
    assert not any(p.name.startswith(".leadml-tmp-") for p in tmp_path.iterdir())
    assert len(err.splitlines()) == 1, err  # one line, however long: not wrapped at the terminal's width


def test_good_input_exits_0(good, capsys):
    assert (
        main(
            [
                "validate",
                "--leads",
                good / "leads.csv",
                "--events",
                good / "events.csv",
                "--outcomes",
                good / "outcomes.csv",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert err == "" and "3" in out


def test_the_table_is_long_enough():
    assert len(CASES) >= 25

"""``leadml train`` beside plain LightGBM on the same training set: seconds, peak memory, agreement.

leadml's line is a whole ``leadml train`` process on simulated Parquet tables (the default snapshot
policy: every open lead every 14 days, horizon 100 days, lead weights; the demo's features; rules,
logistic regression and LightGBM, calibration, the test bootstrap and the MLflow run with the
registered model, in a SQLite store made new for each run). The peer
(``peers/train_lightgbm.py``) fits LightGBM alone with leadml's LightGBM settings on the feature matrix
of the same snapshots, read from the training set file ``leadml trainset`` wrote once beforehand (not
timed). Agreement: the train, validation and test rows ``leadml train`` printed equal the labelled
rows of each split in the file, and the peer fitted every feature of the file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from harness import Command, Comparison, alternate
from run import simulated

PEAK_TARGET_MB = 2_500.0
PER_LEAD = 2.74  # train, validation and test snapshots a simulated lead gives here (54,850 of 20,000 leads)
HERE = Path(__file__).resolve().parent
PIPELINE = """\
name: train-benchmark
data:
  source: tables
  leads: {folder}/leads.parquet
  events: {folder}/events.parquet
  outcomes: {folder}/outcomes.parquet
snapshots: {{policy: every_days, every_days: 14, horizon_days: 100}}
features:
  windows: [7, 30, 90]
  attribute_counts:
    page_view: {{page: [pricing, careers, product, cases, docs, blog, delivery]}}
    download: {{asset: [case_study, whitepaper, checklist]}}
    form_submit: {{form: [contact, purchase, newsletter]}}
  event_values: {{product_active_day: minutes}}
  decay_half_lives: [30]
  scenarios:
    content_path: [email_open, "page_view[blog]", webinar_attend, "download[case_study]"]
  velocity: true
rules: {rules}
models: {{seed: 0}}
mlflow: {{experiment: train-benchmark, registered_model: train-benchmark}}
"""


def pipeline(work: Path, snapshots: int) -> Path:
    """The benchmark's pipeline over simulated tables giving about ``snapshots`` train, validation and test
    snapshots (the labelled ones a model sees; the gap's labelled ones are purged)."""
    folder = simulated(work, max(int(snapshots / PER_LEAD), 1000))
    path = work / f"train-{snapshots}" / "pipeline.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    rules = HERE.parent / "pipelines" / "rules" / "seed_points.yaml"
    path.write_text(PIPELINE.format(folder=folder, rules=rules))
    return path


def trainset_file(pipeline_path: Path) -> Path:
    """The training set of the pipeline as ``leadml trainset`` writes it (once; reused when present)."""
    out = pipeline_path.parent / "trainset.parquet"
    if not out.exists():
        subprocess.run([sys.executable, "-m", "leadml", "trainset", str(pipeline_path), "--out", str(out)],
                       check=True, capture_output=True)  # fmt: skip
    return out


def split_rows(log: str) -> dict[str, int]:
    """The rows per split from ``leadml train``'s ``snapshots:`` line."""
    line = next((row for row in log.splitlines() if row.startswith("snapshots:")), "")
    return {name: int(count.replace(",", "")) for name, count in re.findall(r"(\w+) ([\d,]+)", line)}


def compare(case, work: Path, rounds: int) -> list[Comparison]:
    path = pipeline(work, case.train_snapshots)
    data = trainset_file(path)
    store, log = path.parent / "mlruns", path.parent / "train.log"
    script = 'rm -rf "$1" && mkdir "$1" && exec "$0" -m leadml train "$2" > "$3" 2>&1'
    leadml = Command(
        "leadml train",
        ["sh", "-c", script, sys.executable, str(store), str(path), str(log)],
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlruns.db'}"},
    )
    peer_out = path.parent / "peer.json"
    peer = Command(
        "LightGBM alone (float32 matrix)",
        ["sh", "-c", 'exec "$0" "$1" "$2" > "$3"', sys.executable, str(HERE / "peers" / "train_lightgbm.py"),
         str(data), str(peer_out)],
    )  # fmt: skip
    runs_leadml, runs_peer = alternate(leadml, peer, rounds=rounds)
    assert runs_peer is not None
    # the tables show the commands as a user types them (the shell around them only redirects the output)
    runs_leadml.command = Command("leadml train", [sys.executable, "-m", "leadml", "train", str(path)])
    runs_peer.command = Command(peer.label, [sys.executable, str(HERE / "peers" / "train_lightgbm.py"), str(data)])
    splits = ("train", "validation", "test")
    printed = {split: rows for split, rows in split_rows(log.read_text()).items() if split in splits}
    fitted = json.loads(peer_out.read_text().strip().splitlines()[-1])
    features = fitted["features"]
    wanted = {split: fitted[f"{split}_rows"] for split in splits}
    # every train, validation and test snapshot is labelled (the unlabelled ones are censored, the gap purged)
    agreed = all(printed.get(split) == rows for split, rows in wanted.items())
    return [
        Comparison(
            work=f"train on {sum(wanted.values()):,} labelled snapshots x {features} features",
            leadml=runs_leadml,
            peer=runs_peer,
            agreement=(f"rows per split: leadml {printed}, LightGBM {wanted}; {features} features; "
                       f"LightGBM kept {fitted['trees']} trees"),
            agreed=agreed,
            peak_target_mb=PEAK_TARGET_MB,
            units=sum(wanted.values()),
            unit_name="snapshots",
        )
    ]  # fmt: skip

"""A logged model that loads where leadml is not installed: its wheel, its pinned requirements, and
the leads input (lead rows and their events in; lead id, scores and reasons out, as `leadml score`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadml.core.config import parse_pipeline
from leadml.core.errors import LeadDataError, ModelError
from leadml.data.sources import load_pipeline_data
from leadml.features.scoring_set import open_lead_snapshots
from leadml.jobs.reasons import REASON_COLUMNS, default_reasons
from leadml.jobs.score import ScoreOptions, score_batch
from leadml.jobs.train import log_run, run_training
from leadml.modeling import model_env
from leadml.modeling.lead_rows import build_lead_rows
from leadml.modeling.registry import LeadmlPyfunc, scoring_model

AS_OF = "2026-03-01"
NAME = "portable"


def pipeline():
    return parse_pipeline({
        "name": NAME, "data": {"simulator": {"leads": 1500, "seed": 3}},
        "models": {"logistic": {"enabled": False}, "lightgbm": {"n_estimators": 30}},
        "mlflow": {"registered_model": NAME},
    })  # fmt: skip


@pytest.fixture(scope="module")
def trained():
    """A small LightGBM model on 1,500 simulated leads (not logged), with the data it scores."""
    config = pipeline()
    run = run_training(config, log=False, n_boot=10)
    data = load_pipeline_data(config.data, need_outcomes=False)
    return config, scoring_model(run.result, run.trainset, config.mql.tiers), data, run


def lead_rows(data, lead_ids=None) -> pd.DataFrame:
    """The leads input: the leads (all, or ``lead_ids``) with their events as JSON lists."""
    leads, events = data.leads, data.events
    if lead_ids is not None:
        leads, events = leads[leads["lead_id"].isin(lead_ids)], events[events["lead_id"].isin(lead_ids)]
    return build_lead_rows(leads, events)


def feature_frame(scoring, data) -> pd.DataFrame:
    """The features input of the open leads at AS_OF, categoricals as text (as the signature takes them)."""
    snapshots = open_lead_snapshots(data, pd.Timestamp(AS_OF, tz="UTC"))
    features = scoring.builder.transform(snapshots, data.leads, data.events)[scoring.feature_names]
    return features.astype({name: object for name in scoring.categories})


# -- the leads input -------------------------------------------------------------------------------
def test_lead_rows_are_scored_as_leadml_score_scores_them(trained, tmp_path):
    config, scoring, data, _ = trained
    score_batch(config, AS_OF, tmp_path / "scores.parquet", ScoreOptions(progress=False, reasons="all", drift=False,
                history=False), model_uri=scoring)  # fmt: skip
    job = pd.read_parquet(tmp_path / "scores.parquet")
    rows = lead_rows(data, job["lead_id"])
    out = LeadmlPyfunc(scoring, default_reasons).predict(None, rows, {"input": "leads", "as_of": AS_OF})
    assert out["lead_id"].tolist() == job["lead_id"].tolist()
    assert np.array_equal(out["probability"].to_numpy(), job["probability"].to_numpy())  # bit for bit
    for name in ("score", "tier", "is_mql", *REASON_COLUMNS):
        assert out[name].fillna("").astype(str).tolist() == job[name].fillna("").astype(str).tolist(), name
    assert (out["as_of"] == pd.Timestamp(AS_OF, tz="UTC")).all()


def test_lead_rows_without_a_reasons_step_or_events_still_score(trained):
    _, scoring, data, _ = trained
    rows = lead_rows(data).head(20).assign(events=None)  # no events at all: every lead has none
    out = LeadmlPyfunc(scoring).predict(None, rows, {"input": "leads", "as_of": AS_OF})
    assert list(out.columns) == ["lead_id", "as_of", "probability", "score", "tier", "is_mql"]
    assert len(out) == 20 and out["probability"].between(0, 1).all()


def test_the_features_input_stays_the_default(trained):
    _, scoring, data, _ = trained
    features = feature_frame(scoring, data)
    pyfunc = LeadmlPyfunc(scoring, default_reasons)
    expected = scoring.score(features)
    pd.testing.assert_frame_equal(pyfunc.predict(None, features), expected)
    pd.testing.assert_frame_equal(pyfunc.predict(None, features, {"input": "features", "as_of": ""}), expected)


def test_the_leads_input_says_what_it_lacks(trained):
    _, scoring, data, _ = trained
    pyfunc, rows = LeadmlPyfunc(scoring), lead_rows(data).head(3)
    with pytest.raises(ModelError, match=r"lead rows are scored at one as_of: pass params="):
        pyfunc.predict(None, rows, {"input": "leads", "as_of": ""})
    with pytest.raises(ModelError, match=r"params input is 'lead'; give 'features' .* or 'leads'"):
        pyfunc.predict(None, rows, {"input": "lead", "as_of": AS_OF})
    with pytest.raises(LeadDataError, match=r"column 'events', row 2: not JSON .* give a JSON list of events"):
        pyfunc.predict(None, rows.assign(events=["[]", "[{", "[]"]), {"input": "leads", "as_of": AS_OF})
    with pytest.raises(LeadDataError, match=r"column 'events', row 1: .* is not a list of event objects"):
        pyfunc.predict(None, rows.assign(events='{"event_type": "x"}'), {"input": "leads", "as_of": AS_OF})


# -- the model's environment -----------------------------------------------------------------------
def test_requirements_pin_leadmls_dependencies_as_installed_and_name_its_wheel(tmp_path):
    wheel = tmp_path / "leadml-0.0.0-py3-none-any.whl"
    lines = model_env.model_requirements(wheel)
    assert lines[-1] == f"artifacts/{wheel.name}"
    pinned = dict(line.split("==") for line in lines[:-1])
    for name in ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "pyarrow", "shap", "numba", "pydantic"):
        assert pinned[name] == version(name)
    assert model_env.model_requirements(None)[-1] == f"leadml=={model_env.__version__}"


def test_the_wheel_is_built_once_per_version_and_sources(tmp_path, monkeypatch):
    root = model_env.source_tree()
    assert root is not None  # the tests run from the checkout
    copy = tmp_path / "src"  # a still copy: the shared checkout may change under a test
    for path in [*(root / name for name in model_env.SOURCE_FILES), *model_env._package_files(root)]:
        (copy / path.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        (copy / path.relative_to(root)).write_bytes(path.read_bytes())
    monkeypatch.setattr(model_env, "source_tree", lambda: copy)
    wheel = model_env.leadml_wheel(tmp_path / "cache")
    assert wheel is not None and wheel.parent.name.startswith(model_env.__version__)
    with zipfile.ZipFile(wheel) as packed:
        names = set(packed.namelist())
    assert {"leadml/modeling/lead_rows.py", "leadml/explain/report/templates/model_card.html"} <= names

    builds = []

    def no_build(command, **kwargs):
        builds.append(command)
        return subprocess.CompletedProcess(command, 1, "", "no build in this test")

    monkeypatch.setattr(model_env.subprocess, "run", no_build)
    assert model_env.leadml_wheel(tmp_path / "cache") == wheel and not builds  # the same sources: kept
    with (copy / "leadml" / "core" / "version.py").open("a") as module:
        module.write("# changed\n")
    with pytest.warns(UserWarning, match="no build in this test"):  # other sources: built anew
        assert model_env.leadml_wheel(tmp_path / "cache") is None
    assert len(builds) == 1


def test_a_wheel_that_does_not_build_is_warned_and_the_model_requires_leadml_by_version(tmp_path, monkeypatch):
    def offline(command, **kwargs):
        return subprocess.CompletedProcess(
            command, 1, "", "ERROR: Could not find a version that satisfies setuptools>=68"
        )

    monkeypatch.setattr(model_env.subprocess, "run", offline)
    with pytest.warns(UserWarning, match=r"could not build leadml's wheel .* satisfies setuptools>=68; the model is "
                      r"logged without leadml's wheel and loads only where leadml .* is installed"):  # fmt: skip
        assert model_env.leadml_wheel(tmp_path / "empty cache") is None


# -- a fresh venv with the model's requirements alone ------------------------------------------------
INSIDE = """
import json, sys
from pathlib import Path
import mlflow.pyfunc, pandas as pd
import leadml
assert Path(leadml.__file__).is_relative_to(Path(sys.prefix)), leadml.__file__  # the wheel, not the checkout
model = mlflow.pyfunc.load_model(sys.argv[1])
features = model.predict(pd.read_parquet("features.parquet"))
leads = model.predict(pd.read_parquet("rows.parquet"), params={"input": "leads", "as_of": sys.argv[2]})
features.to_parquet("features_out.parquet")
leads.to_parquet("leads_out.parquet")
"""


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without this venv or the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, **extra}


def _run(command: list, cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command[:4]}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.mark.slow
def test_a_logged_model_loads_and_predicts_in_a_venv_of_its_requirements_alone(trained, tmp_path):
    import mlflow
    import mlflow.pyfunc

    config, _, data, run = trained
    outcome = log_run(config, run.trainset, run.result)  # as the training job logs it: with its reasons step
    assert outcome.version == "1"
    uri = f"models:/{NAME}@champion"
    model_dir = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "model")))
    requirements = (model_dir / "requirements.txt").read_text().split()
    assert requirements[-1].startswith("artifacts/leadml-") and (model_dir / requirements[-1]).is_file()
    assert f"mlflow=={version('mlflow')}" in requirements and f"numba=={version('numba')}" in requirements

    work = tmp_path / "work"  # the checkout is neither the cwd nor on PYTHONPATH
    work.mkdir()
    model = mlflow.pyfunc.load_model(uri)
    scoring = model.unwrap_python_model().scoring
    feature_frame(scoring, data).to_parquet(work / "features.parquet")
    rows = lead_rows(data)
    rows.to_parquet(work / "rows.parquet")
    features_here = model.predict(pd.read_parquet(work / "features.parquet"))
    leads_here = model.predict(rows, params={"input": "leads", "as_of": AS_OF})
    assert set(REASON_COLUMNS) <= set(leads_here.columns) and leads_here["reason_1"].notna().all()

    venv = tmp_path / "venv"
    env = _clean_env(MLFLOW_TRACKING_URI=os.environ["MLFLOW_TRACKING_URI"])
    _run([sys.executable, "-m", "venv", str(venv)], work, env)
    python = str(venv / "bin" / "python")
    # from inside the model folder: the wheel's line is a path relative to it, as MLflow's env managers read it
    _run([python, "-m", "pip", "install", "--no-input", "--quiet", "-r", "requirements.txt"], model_dir, env, 1500)
    _run([python, "-c", INSIDE, uri, AS_OF], work, env)
    pd.testing.assert_frame_equal(pd.read_parquet(work / "features_out.parquet"), features_here, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(work / "leads_out.parquet"), leads_here, check_exact=True)

    request = {"dataframe_split": json.loads(rows.head(50).to_json(orient="split", index=False)),
               "params": {"input": "leads", "as_of": AS_OF}}  # fmt: skip
    (work / "input.json").write_text(json.dumps(request))
    _run([str(venv / "bin" / "mlflow"), "models", "predict", "-m", uri, "-i", "input.json", "-t", "json",
          "-o", "output.json", "--env-manager", "local"], work, env)  # fmt: skip
    served = pd.DataFrame(json.loads((work / "output.json").read_text())["predictions"])
    expected = leads_here[leads_here["lead_id"].isin(rows["lead_id"].head(50))]
    assert len(served) and served["lead_id"].tolist() == expected["lead_id"].tolist()
    assert np.array_equal(served["probability"].to_numpy(dtype=float), expected["probability"].to_numpy())
    assert served["reason_1"].tolist() == expected["reason_1"].tolist()

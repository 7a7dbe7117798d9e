"""Shared fixtures: MLflow in a temp folder for every test, and one simulated data set per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def _wheel_cache(tmp_path_factory) -> Path:
    """leadml's wheel that logged models carry, built once per session (leadml.modeling.model_env)."""
    return tmp_path_factory.mktemp("leadml-wheels")


@pytest.fixture(autouse=True)
def _mlflow_in_tmp(tmp_path, monkeypatch, _wheel_cache):
    """No test writes MLflow runs (or leadml's wheel for them) outside its temp folder."""
    monkeypatch.setenv("LEADML_WHEEL_CACHE", str(_wheel_cache))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.setenv("MLFLOW_ARTIFACTS_DESTINATION", str(tmp_path / "artifacts"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def pipelines_dir() -> Path:
    return REPO / "pipelines"


@pytest.fixture(scope="session")
def small_sim():
    """A small seeded simulation (3,000 leads) shared by the tests that need realistic data."""
    from leadml.data.simulate import simulate

    return simulate(3000, seed=11)


def datasets_dir_or_skip() -> Path:
    """The shared public data folder, or skip with the reason (absent on a user's fresh clone)."""
    folder = Path(os.environ.get("LEADML_DATASETS", REPO.parent / "shared" / "datasets"))
    if not folder.is_dir():
        pytest.skip(f"shared datasets folder absent: {folder} (set LEADML_DATASETS to run the real-data tests)")
    return folder

"""A new MLflow store created by a child process (tracking_store.start_store_creation) while the parent works."""

from __future__ import annotations

import sqlite3

from leadml.modeling import tracking_store


def _tables(database) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_the_child_creates_the_store_and_open_store_waits_for_it(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking_store, "_CREATING", {})
    database = tmp_path / "mlruns.db"
    uri = f"sqlite:///{database}"
    tracking_store.start_store_creation(uri)
    child = tracking_store._CREATING[database.resolve()]
    tracking_store.open_store(uri)
    assert child.returncode == 0  # waited for and reaped
    assert not tracking_store._CREATING
    assert {"experiments", "runs", "registered_models", "alembic_version"} <= _tables(database)
    tracking_store.start_store_creation(uri)  # it exists: nothing starts
    assert not tracking_store._CREATING


def test_a_child_killed_mid_way_leaves_a_store_the_parent_makes(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking_store, "_CREATING", {})
    database = tmp_path / "mlruns.db"
    uri = f"sqlite:///{database}"
    tracking_store.start_store_creation(uri)
    tracking_store._CREATING[database.resolve()].kill()
    tracking_store.open_store(uri)
    assert {"experiments", "runs", "registered_models"} <= _tables(database)


def test_nothing_starts_for_a_server_or_memory(monkeypatch):
    monkeypatch.setattr(tracking_store, "_CREATING", {})
    for uri in ("http://localhost:5000", "sqlite:///:memory:", "file:///tmp/mlruns"):
        tracking_store.start_store_creation(uri)
    assert not tracking_store._CREATING

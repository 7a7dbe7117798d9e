"""The MLflow store under crashes and concurrent use: real processes, a real SQLite store, no mocks.

Two first trainings at once on a fresh folder both succeed (the store is created under a file
lock); a training killed with SIGKILL leaves a run that the next command closes as KILLED and a
version that is tagged an orphan and never served; a run of a live process is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient
from mlflow.entities import Run, RunData, RunInfo, RunTag

from leadml.core.config import load_pipeline
from leadml.core.errors import ModelError
from leadml.modeling import tracking_store
from leadml.modeling.loading import load_model
from leadml.modeling.registry import log_training, promote_version
from leadml.modeling.tracking_store import (
    CLOSED_AT_TAG,
    CLOSED_TAG,
    HOST_TAG,
    ORPHAN_REASON_TAG,
    ORPHAN_TAG,
    PIPELINE_TAG,
    PROCESS_TAG,
    create_experiment,
    open_store,
    recover,
    run_tags,
    sqlite_path,
    stale_reason,
    store_lock,
)

REPO = Path(__file__).resolve().parents[2]
PIPELINE = f"""\
name: crash
data: {{source: simulator, simulator: {{leads: 1200, seed: 4}}}}
snapshots: {{horizon_days: 100}}
rules: {REPO / "pipelines/rules/seed_points.yaml"}
models: {{lightgbm: {{n_estimators: 30}}}}
mql: {{policy: capacity, capacity_per_week: 10}}
mlflow: {{registered_model: crash}}
"""

# Trains the pipeline, waits at a barrier (a file per process) for the other one, then logs the run:
# both open the fresh store at the same instant, where MLflow creates its schema.
RACER = """\
import sys, time
from pathlib import Path
from leadml.core.config import load_pipeline
from leadml.jobs.train import log_run, run_training

config = load_pipeline(sys.argv[1])
run = run_training(config, log=False, n_boot=50)
barrier = Path(sys.argv[2])
(barrier / sys.argv[3]).touch()
deadline = time.monotonic() + 300
while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.005)
outcome = log_run(config, run.trainset, run.result)
print("version", outcome.version)
"""

# Logs a trained model and, once it is registered, stops inside the run (the test kills it there).
STUCK = """\
import pickle, sys, time
from pathlib import Path
from leadml.core.config import load_pipeline
from leadml.modeling.registry import log_training

config = load_pipeline(sys.argv[1])
trainset, result = pickle.loads(Path(sys.argv[2]).read_bytes())

def wait_to_be_killed(mlflow):
    Path(sys.argv[3]).touch()
    time.sleep(600)

log_training(config, trainset, result, artifacts=wait_to_be_killed)
"""

# Prints the tags a training run of this process would start with, then lives on (or not).
TAGGED = """\
import json, sys, time
from leadml.modeling.tracking_store import run_tags
print(json.dumps(run_tags()), flush=True)
time.sleep(float(sys.argv[1]))
"""


@pytest.fixture
def pipeline(tmp_path) -> Path:
    path = tmp_path / "crash.yaml"
    path.write_text(PIPELINE)
    return path


def _env(**extra: str) -> dict[str, str]:
    """This environment without the tests' MLflow URI: a child uses the default ``sqlite:///mlruns.db``."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACTS_DESTINATION")}
    return {**env, **extra}


def _leadml(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leadml", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _statuses(database: Path) -> list[str]:
    """The runs' statuses, read straight from the database file (MLflow's own store is not opened)."""
    if not database.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=1)) as connection:
            return [row[0] for row in connection.execute("SELECT status FROM runs")]
    except sqlite3.Error:  # the schema is still being made
        return []


def _wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the process ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout:.0f} s")
        time.sleep(0.02)


def _all_runs(client: MlflowClient) -> list:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments)


# -- the store's creation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:///mlruns.db", "mlruns.db"),
        ("sqlite:///sub/m.db?timeout=30", "sub/m.db"),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("http://127.0.0.1:5000", None),
        ("file:./mlruns", None),
    ],
)
def test_only_sqlite_files_take_the_lock(uri, expected, tmp_path):
    assert sqlite_path(uri) == (None if expected is None else (tmp_path / expected).resolve())


@pytest.mark.slow
def test_two_first_trainings_at_once_on_a_fresh_folder_both_succeed(pipeline, tmp_path):
    folder, barrier = tmp_path / "fresh", tmp_path / "barrier"
    folder.mkdir()
    barrier.mkdir()
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    racers = [
        subprocess.Popen(
            [sys.executable, str(script), str(pipeline), str(barrier), name],
            cwd=folder,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name in ("a", "b")
    ]
    outputs = [racer.communicate(timeout=600) for racer in racers]
    for racer, (_, err) in zip(racers, outputs):
        assert racer.returncode == 0, err[-3000:]
    assert sorted(out.split()[-1] for out, _ in outputs) == ["1", "2"]
    uri = f"sqlite:///{folder / 'mlruns.db'}"
    client = MlflowClient(uri, uri)
    assert sorted(r.info.status for r in _all_runs(client)) == ["FINISHED", "FINISHED"]
    assert sorted(str(v.version) for v in client.search_model_versions("name='crash'")) == ["1", "2"]
    assert str(client.get_model_version_by_alias("crash", "champion").version) in ("1", "2")
    assert (folder / "mlruns.db.lock").exists() and (folder / "mlartifacts").is_dir()


def test_a_process_waits_for_the_lock_and_a_killed_holder_never_leaves_it_held(tmp_path):
    database = tmp_path / "mlruns.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from leadml.modeling.tracking_store import store_lock\n"
         "with store_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(120)", str(database)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        message = r"mlruns\.db\.lock: another process has been creating the MLflow store for 1 s; wait for it"
        with pytest.raises(ModelError, match=message), store_lock(database, timeout=1):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    started = time.monotonic()
    with store_lock(database, timeout=5):  # the kernel let go of the dead holder's lock
        assert time.monotonic() - started < 1


def _half_migrated(database: Path) -> str:
    """An empty store stopped inside a migration, as an unlocked race (or a kill there) leaves it.

    MLflow's initial tables, its migrations up to the one that rebuilds ``tags`` in batch mode, and
    the batch table that migration leaves when it is interrupted: MLflow alone cannot open it again.
    """
    import mlflow
    import sqlalchemy
    from alembic import command
    from alembic.config import Config
    from mlflow.store.tracking.dbmodels.initial_models import Base

    uri = f"sqlite:///{database}"
    engine = sqlalchemy.create_engine(uri)
    Base.metadata.create_all(engine)
    migrations = Config()
    migrations.set_main_option("script_location", str(Path(mlflow.__file__).parent / "store" / "db_migrations"))
    migrations.set_main_option("sqlalchemy.url", uri)
    command.upgrade(migrations, "df50e92ffc5e")
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE _alembic_tmp_tags (key VARCHAR(250), value VARCHAR(5000))"))
    engine.dispose()
    return uri


def test_an_empty_store_left_half_migrated_is_created_anew(tmp_path):
    uri = _half_migrated(tmp_path / "mlruns.db")
    plain = subprocess.run([sys.executable, "-c", f"from mlflow import MlflowClient; MlflowClient({uri!r}).search_experiments()"],
                           env=_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert plain.returncode != 0 and "_alembic_tmp_tags already exists" in plain.stderr
    open_store(uri)
    client = MlflowClient(uri, uri)
    run = client.create_run(client.create_experiment("after"))
    client.set_terminated(run.info.run_id)
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_a_half_migrated_store_holding_runs_is_refused_not_emptied(tmp_path):
    database = tmp_path / "mlruns.db"
    uri = _half_migrated(database)
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.execute(
            "INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES (1, 'kept', 'active')"
        )
        connection.commit()
    with pytest.raises(
        ModelError, match=r"MLflow at sqlite:///.*mlruns\.db: the store cannot be opened \(.*_alembic_tmp_tags"
    ):
        open_store(uri)
    with contextlib.closing(sqlite3.connect(database)) as connection:
        assert connection.execute("SELECT name FROM experiments").fetchall() == [("kept",)]


# -- runs and versions left by a killed training ------------------------------------------------
@pytest.mark.slow
def test_a_killed_leadml_train_is_closed_by_the_next_command_and_nothing_of_it_is_served(
    pipeline, tmp_path, monkeypatch
):
    folder = tmp_path / "killed"
    folder.mkdir()
    database = folder / "mlruns.db"
    training = subprocess.Popen([sys.executable, "-m", "leadml", "train", str(pipeline)], cwd=folder, env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for(lambda: "RUNNING" in _statuses(database), training, "RUNNING run")
    finally:
        training.send_signal(signal.SIGKILL)
        training.wait()  # reaped: a zombie would still answer signal 0
    assert _statuses(database) == ["RUNNING"]

    after = _leadml("promote", str(pipeline), "--version", "1", cwd=folder, env=_env())
    assert after.returncode == 1  # no version 1, or an orphan one: either way it is not made champion
    assert "orphan" in after.stderr or "no version 1" in after.stderr, after.stderr

    uri = f"sqlite:///{database}"
    client = MlflowClient(uri, uri)
    (run,) = _all_runs(client)
    assert run.info.status == "KILLED" and run.info.end_time is not None
    assert (
        run.data.tags[CLOSED_TAG] == f"process {training.pid} on {socket.gethostname()} ended without finishing the run"
    )
    assert datetime.fromisoformat(run.data.tags[CLOSED_AT_TAG]) > datetime.now(UTC) - timedelta(minutes=10)
    for version in client.search_model_versions("name='crash'"):
        assert version.tags[ORPHAN_TAG] == "true" and run.info.run_id in version.tags[ORPHAN_REASON_TAG]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(ModelError, match=r"no alias 'champion'|is an orphan"):
        load_model(load_pipeline(pipeline))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The small pipeline trained once (not logged), and pickled for a child process to log."""
    from leadml.jobs.train import run_training

    folder = tmp_path_factory.mktemp("trained")
    path = folder / "crash.yaml"
    path.write_text(PIPELINE)
    config = load_pipeline(path)
    run = run_training(config, log=False, n_boot=50)
    (folder / "trained.pkl").write_bytes(pickle.dumps((run.trainset, run.result)))
    return path, config, run


@pytest.mark.slow
def test_a_version_whose_training_was_killed_or_whose_files_are_gone_is_never_champion_nor_served(
    trained, tmp_path, monkeypatch
):
    path, config, run = trained
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    first = log_training(config, run.trainset, run.result)
    assert first.version == "1" and first.promoted

    script, registered = tmp_path / "stuck.py", tmp_path / "registered"
    script.write_text(STUCK)
    stuck = subprocess.Popen([sys.executable, str(script), str(path), str(path.parent / "trained.pkl"),
                              str(registered)], env=_env(MLFLOW_TRACKING_URI=uri))  # fmt: skip
    try:
        _wait_for(registered.exists, stuck, "registered version")
    finally:
        stuck.send_signal(signal.SIGKILL)
        stuck.wait()

    refused = _leadml("promote", str(path), "--version", "2", cwd=tmp_path, env=_env(MLFLOW_TRACKING_URI=uri))
    assert refused.returncode == 1
    assert "crash version 2 is an orphan and cannot be champion" in " ".join(refused.stderr.split())
    client = MlflowClient(uri, uri)
    killed = client.get_run(client.get_model_version("crash", "2").run_id)
    assert killed.info.status == "KILLED" and f"process {stuck.pid} " in killed.data.tags[CLOSED_TAG]
    assert client.get_model_version("crash", "2").tags[ORPHAN_TAG] == "true"
    assert str(client.get_model_version_by_alias("crash", "champion").version) == "1"
    assert load_model(config).version == "1"
    with pytest.raises(ModelError, match=r"crash version 2 \(models:/crash/2\) is an orphan and is not served"):
        load_model(config, "models:/crash/2")
    with pytest.raises(ModelError, match="is an orphan and cannot be champion"):
        promote_version(config, 2)

    # the champion's files are lost: it is not served, and the next training takes its place
    shutil.rmtree(urlparse(client.get_model_version_download_uri("crash", "1")).path)
    with pytest.raises(
        ModelError, match=r"crash version 1 \(models:/crash@champion\) is an orphan .*model files are missing"
    ):
        load_model(config)
    assert client.get_model_version("crash", "1").tags[ORPHAN_TAG] == "true"
    again = log_training(config, run.trainset, run.result)
    assert again.version == "3" and again.promoted and "first champion" in again.reason
    assert load_model(config).version == "3"


def _tags_of_a_process(lifetime: float) -> tuple[subprocess.Popen, dict[str, str]]:
    child = subprocess.Popen([sys.executable, "-c", TAGGED, str(lifetime)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, json.loads(child.stdout.readline())


def test_only_runs_of_gone_processes_of_this_host_or_untagged_and_a_day_old_are_closed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    open_store(uri)
    client = MlflowClient(uri, uri)
    experiment = client.create_experiment("recovery")
    live, live_tags = _tags_of_a_process(120)
    gone, gone_tags = _tags_of_a_process(0)
    gone.wait()
    now = int(time.time() * 1000)

    def start(tags: dict[str, str], hours_ago: float = 0.0, leadml: bool = True) -> str:
        tags = {PIPELINE_TAG: "crash", **tags} if leadml else tags
        return client.create_run(experiment, start_time=now - int(hours_ago * 3_600_000), tags=tags).info.run_id

    try:
        runs = {
            "live, two days old": start(live_tags, hours_ago=48),
            "gone": start(gone_tags),
            "gone, on another host": start({**gone_tags, HOST_TAG: "elsewhere"}, hours_ago=48),
            "untagged, 25 h old": start({}, hours_ago=25),
            "untagged, 1 h old": start({}, hours_ago=1),
            "not leadml's, two days old": start({}, hours_ago=48, leadml=False),
        }
        if PROCESS_TAG in live_tags:  # Linux: a later process with the recorded pid is not the one recorded
            runs["pid reused"] = start({**live_tags, PROCESS_TAG: "another-boot/1"})
        client.create_registered_model("crash")
        source = tmp_path / "model"
        source.mkdir()
        for key in ("live, two days old", "gone"):
            client.create_model_version("crash", str(source), run_id=runs[key])

        recovery = recover(uri)
        statuses = {key: client.get_run(run_id).info.status for key, run_id in runs.items()}
        assert live.poll() is None  # it was alive all along
    finally:
        live.kill()
        live.wait()
    closed = {"gone", "untagged, 25 h old", "pid reused"} & set(runs)
    assert {key for key, status in statuses.items() if status == "KILLED"} == closed
    assert {key for key, status in statuses.items() if status == "RUNNING"} == set(runs) - closed
    assert sorted(recovery.closed) == sorted(runs[key] for key in closed)
    untagged = client.get_run(runs["untagged, 25 h old"]).data.tags[CLOSED_TAG]
    assert untagged == "no process recorded and started 25 h ago (more than 24 h)"
    versions = {v.run_id: v for v in client.search_model_versions("name='crash'")}
    assert versions[runs["gone"]].tags[ORPHAN_TAG] == "true"
    assert ORPHAN_TAG not in versions[runs["live, two days old"]].tags
    assert recovery.orphans == (("crash", str(versions[runs["gone"]].version)),)


def _run(tags: dict[str, str], started: datetime) -> Run:
    info = RunInfo("r", "1", "u", "RUNNING", int(started.timestamp() * 1000), None, "active")
    return Run(info, RunData(tags=[RunTag(key, value) for key, value in tags.items()]))


@settings(max_examples=50, deadline=None)
@given(hours=st.floats(0, 24 * 365), identity=st.booleans())
def test_a_run_of_a_live_process_of_this_host_is_never_stale_however_old(hours, identity):
    now = datetime.now(UTC)
    tags = run_tags()  # this very process: alive
    if not identity:
        tags.pop(PROCESS_TAG, None)
    assert stale_reason(_run(tags, now - timedelta(hours=hours)), now) is None


@settings(max_examples=30, deadline=None)
@given(hours=st.floats(0, 24 * 365))
def test_a_run_without_a_process_is_stale_exactly_after_a_day(hours):
    now = datetime.now(UTC)
    run = _run({PIPELINE_TAG: "p"}, now - timedelta(hours=hours))
    reason = stale_reason(run, now)
    # MLflow keeps whole milliseconds: the age is measured from the start time as stored
    stored = datetime.fromtimestamp(run.info.start_time / 1000, UTC)
    assert (reason is not None) == (now - stored > tracking_store.STALE_AFTER)


def test_a_store_is_opened_under_the_lock_once_per_process(tmp_path):
    uri = f"sqlite:///{tmp_path / 'once.db'}"
    open_store(uri)
    assert (tmp_path / "once.db.lock").exists()
    with store_lock(tmp_path / "once.db"):  # held here: a second opening must not wait for it
        started = time.monotonic()
        open_store(uri)
        assert time.monotonic() - started < 0.5


def test_an_experiment_another_process_created_first_is_taken_as_is(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    open_store(uri)
    client = MlflowClient(uri, uri)
    first = create_experiment(client, "leadml")
    assert create_experiment(client, "leadml") == first  # the store refused a second one; its id is read


@pytest.mark.slow
def test_a_logged_version_is_unpacked_once_a_process_and_each_new_version_anew(trained, tmp_path, monkeypatch):
    """The demo scores eight days then draws a report with one version: one unpacking, the same object.
    A new champion is a new version, loaded from its own files; a folder is read each time."""
    path, config, run = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    first = log_training(config, run.trainset, run.result)
    by_alias, by_version = load_model(config), load_model(config, f"models:/crash/{first.version}")
    assert by_alias.scoring is by_version.scoring and by_alias.version == by_version.version == "1"
    second = log_training(config, run.trainset, run.result, promote="never")
    assert load_model(config).scoring is by_alias.scoring  # the alias still names version 1
    newer = load_model(config, f"models:/crash/{second.version}")
    assert newer.version == "2" and newer.scoring is not by_alias.scoring
    assert np.array_equal(newer.scoring.probability(run.trainset.frame.head(50)),
                          by_alias.scoring.probability(run.trainset.frame.head(50)))  # fmt: skip
    folder = tmp_path / "folder-model"
    mlflow_download = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"]).get_model_version_download_uri
    shutil.copytree(urlparse(mlflow_download("crash", "1")).path, folder)
    assert load_model(config, folder).scoring is not load_model(config, folder).scoring

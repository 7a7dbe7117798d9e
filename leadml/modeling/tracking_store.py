"""The MLflow store as a leadml command opens it: created once under a file lock, cleaned of crashed runs.

Two ``leadml train`` started at once on a fresh folder both find the SQLite database empty and both
create MLflow's tables and run its migrations; one fails, and the store can be left half-migrated.
:func:`open_store` takes an OS lock on ``mlruns.db.lock`` beside the database while this process
opens the store for the first time, so one process creates the schema and the others wait, then
find it made. (Later concurrent writes wait for each other: MLflow opens every SQLite session with
``PRAGMA busy_timeout = 20000``.) A store left half-created by an interrupted first use, holding no
runs and no models, is created anew.

A training killed mid-way leaves its run RUNNING and maybe a registered version behind it. On its
first opening of a store a process closes the leadml runs that are stale (status KILLED, tags
``leadml.closed`` and ``leadml.closed_at``) and tags the versions whose run did not finish, whose
registration failed or whose model files are missing (``leadml.orphan``, ``leadml.orphan_reason``);
:func:`orphan_reason` tells the loader and the promotion to refuse such a version. A training run
starts with its pid, host and process identity as tags (:func:`run_tags`); a RUNNING run is stale
when it was started on this host by a process that is gone, or, without those tags, when it started
more than :data:`STALE_AFTER` ago. A run of another host is left to that host; a live one is never
touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from leadml.core.errors import ModelError

PID_TAG, HOST_TAG, PROCESS_TAG = "leadml.pid", "leadml.host", "leadml.process"
CLOSED_TAG, CLOSED_AT_TAG = "leadml.closed", "leadml.closed_at"
ORPHAN_TAG, ORPHAN_REASON_TAG = "leadml.orphan", "leadml.orphan_reason"
PIPELINE_TAG = "leadml.pipeline"  # every leadml training run carries it (registry.log_training)
STALE_AFTER = timedelta(hours=24)  # a RUNNING run without a pid is stale after this long
LOCK_TIMEOUT = 300.0  # seconds to wait for another process creating the store

log = logging.getLogger("leadml.modeling.tracking_store")
_OPENED: set[str] = set()
_CREATING: dict[Path, subprocess.Popen] = {}  # database -> the child process start_store_creation began


# -- the store's first opening -----------------------------------------------------------------
def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (absolute, against the working folder); None otherwise."""
    if not uri.startswith("sqlite:///"):
        return None
    location = uri.removeprefix("sqlite:///").split("?", 1)[0]
    if location in ("", ":memory:"):
        return None
    return Path(location).resolve()


@contextlib.contextmanager
def store_lock(database: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive OS lock on ``<database>.lock`` for a block; other processes wait for it.

    ``flock`` is released by the kernel when its holder dies, so a killed process never leaves the
    store locked. A folder where the lock file cannot be made (read-only) cannot get a new store
    either, so nothing needs serializing there.

    Raises:
        ModelError: another process held the lock for ``timeout`` seconds.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; MLflow's own creation is all there is
        yield
        return
    lock_path = database.with_name(database.name + ".lock")
    try:
        handle = open(lock_path, "a")  # noqa: SIM115  # closed below, after the lock is released
    except OSError:
        handle = None
    if handle is None:
        yield
        return
    with handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ModelError(
                        f"{lock_path}: another process has been creating the MLflow store for {timeout:.0f} s; "
                        "wait for it to finish, or stop it"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_store(uri: str) -> None:
    """Make the store at ``uri`` ready for this process: created once under the lock, then recovered.

    The first call per store and process does the work; later calls return at once. HTTP and file
    stores take no lock (a server serializes its own schema), but are recovered all the same.
    """
    database = sqlite_path(uri)
    key = str(database) if database is not None else uri
    if key in _OPENED:
        return
    if database is not None:
        creating = _CREATING.pop(database, None)
        if creating is not None:
            creating.wait()  # done or failed: under the lock below, the store is found made or is repaired
        with store_lock(database):
            _create(uri, database)
    _OPENED.add(key)
    recover(uri)


def start_store_creation(uri: str) -> None:
    """Create a new SQLite store in a child process, while this one does other work.

    MLflow's first opening of a database creates and migrates its schema (seconds of alembic
    migrations); a command that will log to a new store (``leadml demo``) starts it early, and
    :func:`open_store` waits for the child. The child opens the store as :func:`open_store` does,
    under the same lock, so one that failed or was killed leaves a store the parent repairs. Nothing
    starts for a database that exists or a URI that is not a SQLite file.
    """
    database = sqlite_path(uri)
    if database is None or database.exists() or database in _CREATING or str(database) in _OPENED:
        return
    code = "import sys; from leadml.modeling.tracking_store import open_store; open_store(sys.argv[1])"
    paths = os.pathsep.join(entry or os.getcwd() for entry in sys.path)  # the child imports this leadml
    env = {**os.environ, "PYTHONPATH": paths, "PYTHONSAFEPATH": "1"}
    _CREATING[database] = subprocess.Popen([sys.executable, "-c", code, uri], env=env, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def create_experiment(client, name: str, artifact_location: str | None = None) -> str:
    """Create experiment ``name``; when another process created it meanwhile, its id is taken as is.

    Two first trainings both find no experiment and both create it: the database's unique name
    refuses the second, which then reads the first one's.
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _touch(uri: str) -> None:
    """Open the tracking and registry stores once: MLflow creates and migrates the schema here."""
    client = _client(uri)
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)


def _create(uri: str, database: Path) -> None:
    """Open the store; one left half-created, with no runs or models in it, is emptied and made anew."""
    try:
        _touch(uri)
        return
    except Exception as exc:  # MLflow, SQLAlchemy or alembic: a schema it cannot read or migrate
        busy = "database is locked" in str(exc)  # someone else's long write: no reason to rebuild anything
        if busy or not _holds_nothing(database):
            raise ModelError(f"MLflow at {uri}: the store cannot be opened ({_first_line(exc)})") from exc
        first = exc
    log.warning("MLflow store %s was left half-created (%s); it holds no runs or models: creating it anew",
                database, _first_line(first))  # fmt: skip
    _drop_tables(database)
    try:
        _touch(uri)
    except Exception as exc:
        raise ModelError(f"MLflow at {uri}: the store cannot be created ({_first_line(exc)})") from exc


def _holds_nothing(database: Path) -> bool:
    """True when the database has no runs, no registered models and no experiment but MLflow's default."""
    checks = {
        "runs": "SELECT count(*) FROM runs",
        "registered_models": "SELECT count(*) FROM registered_models",
        "experiments": "SELECT count(*) FROM experiments WHERE name != 'Default'",
    }
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return all(connection.execute(sql).fetchone()[0] == 0 for table, sql in checks.items() if table in tables)
    except sqlite3.Error:  # not a database, a missing folder: nothing to rebuild, the caller says why
        return False


def _drop_tables(database: Path) -> None:
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as connection:
        connection.execute("PRAGMA foreign_keys = OFF")
        names = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]  # fmt: skip
        for name in names:
            connection.execute(f'DROP TABLE IF EXISTS "{name}"')
        connection.commit()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- which process a run belongs to ------------------------------------------------------------
def _process_identity(pid: int) -> str | None:
    """Boot and start time of a process (Linux): tells a live process from a later one with its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return f"{boot}/{fields[19]}" if len(fields) > 19 else None


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def run_tags() -> dict[str, str]:
    """The tags a leadml training run starts with: which process on which host runs it."""
    tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    identity = _process_identity(os.getpid())
    if identity is not None:
        tags[PROCESS_TAG] = identity
    return tags


def process_alive(pid: int, identity: str | None = None) -> bool:
    """Whether process ``pid`` of this host still runs (and is the one recorded as ``identity``).

    Where that cannot be told (Windows, where signal 0 would stop the process), it is taken as alive.
    """
    if pid <= 0:
        return False
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    if _is_zombie(pid):
        return False  # dead, only not yet reaped by its parent
    current = _process_identity(pid) if identity else None
    return current is None or current == identity


def stale_reason(run, now: datetime | None = None, host: str | None = None) -> str | None:
    """Why a RUNNING run can be closed, or None when its process may still be working on it."""
    tags = run.data.tags
    host = host or socket.gethostname()
    pid, where = tags.get(PID_TAG, ""), tags.get(HOST_TAG)
    if pid.isdigit() and where:
        if where != host or process_alive(int(pid), tags.get(PROCESS_TAG)):
            return None  # alive, or on another host, which closes its own runs
        return f"process {pid} on {where} ended without finishing the run"
    if run.info.start_time is None:
        return None  # neither a process nor an age to judge by
    now = now or datetime.now(UTC)
    started = datetime.fromtimestamp(run.info.start_time / 1000, UTC)
    if now - started > STALE_AFTER:
        hours, limit = (now - started).total_seconds() / 3600, STALE_AFTER.total_seconds() / 3600
        return f"no process recorded and started {hours:.0f} h ago (more than {limit:.0f} h)"
    return None


# -- recovery ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recovery:
    """What opening a store cleaned up: the runs closed, the versions found orphaned (name, version)."""

    closed: tuple[str, ...] = ()
    orphans: tuple[tuple[str, str], ...] = ()


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _pages(search, **kwargs) -> Iterator[Any]:
    token = None
    while True:
        page = search(page_token=token, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


def _unfinished_runs(client) -> dict[str, Any]:
    """The leadml runs of the store that are not FINISHED, by run id."""
    from mlflow.entities import ViewType

    experiments = [e.experiment_id for e in _pages(client.search_experiments, view_type=ViewType.ALL)]
    if not experiments:
        return {}
    runs = _pages(client.search_runs, experiment_ids=experiments, filter_string="attributes.status != 'FINISHED'",
                  run_view_type=ViewType.ALL)  # fmt: skip
    return {run.info.run_id: run for run in runs if PIPELINE_TAG in run.data.tags or PID_TAG in run.data.tags}


def close_run(client, run, reason: str) -> bool:
    """Mark a stale run KILLED, with why and when as tags; False when the store refuses (read-only)."""
    from mlflow.exceptions import MlflowException

    run_id = run.info.run_id
    try:
        client.set_tag(run_id, CLOSED_TAG, reason)
        client.set_tag(run_id, CLOSED_AT_TAG, _now_text())
        client.set_terminated(run_id, status="KILLED")
    except MlflowException as exc:
        log.warning("MLflow run %s is stale (%s) but cannot be closed: %s", run_id, reason, _first_line(exc))
        return False
    log.warning("closed MLflow run %s as KILLED: %s", run_id, reason)
    return True


def _run_reason(run) -> str | None:
    status = run.info.status
    if status in ("FAILED", "KILLED"):
        why = run.data.tags.get(CLOSED_TAG)
        return f"its run {run.info.run_id} ended {status}" + (f" ({why})" if why else "") + " before it finished"
    return None


def _files_reason(client, version) -> str | None:
    """Why a version has no model behind it, or None when its MLmodel is there (or cannot be checked)."""
    from mlflow.exceptions import MlflowException

    try:
        location = client.get_model_version_download_uri(version.name, str(version.version))
    except MlflowException as exc:
        if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            return f"its model {version.source} does not exist"
        return None
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        folder = Path(unquote(parsed.path))
        return None if (folder / "MLmodel").is_file() else f"its model files are missing ({folder})"
    try:
        import mlflow.artifacts

        names = [Path(f.path).name for f in mlflow.artifacts.list_artifacts(artifact_uri=location)]
    except Exception:  # an artifact store that does not answer tells nothing about the model
        return None
    return None if "MLmodel" in names else f"its model files are missing ({location})"


def _tag_orphan(client, version, reason: str) -> None:
    """Tag a version as an orphan; a store that refuses the tags (read-only) is only warned about."""
    from mlflow.exceptions import MlflowException

    name, number = version.name, str(version.version)
    try:
        client.set_model_version_tag(name, number, ORPHAN_TAG, "true")
        client.set_model_version_tag(name, number, ORPHAN_REASON_TAG, f"{reason} (found {_now_text()})")
    except MlflowException as exc:
        log.warning("registered model %s version %s is an orphan (%s) but cannot be tagged: %s",
                    name, number, reason, _first_line(exc))  # fmt: skip
        return
    log.warning("registered model %s version %s is an orphan and will not be served: %s",
                version.name, version.version, reason)  # fmt: skip


def orphan_reason(client, version) -> str | None:
    """Why a registered version must not be served (tagging it ``leadml.orphan``), or None when it may be.

    A version is an orphan when it is tagged so already, when its registration failed, when its
    run ended FAILED or KILLED (or was RUNNING in a process that is gone: the run is closed first),
    or when its model files are missing. A version of a run still live is not one.
    """
    from mlflow.exceptions import MlflowException

    if version.tags.get(ORPHAN_TAG) == "true":
        return version.tags.get(ORPHAN_REASON_TAG) or "it is tagged as an orphan"
    reason = None
    if version.status == "FAILED_REGISTRATION":
        reason = f"its registration failed ({version.status_message})"
    elif version.run_id:
        try:
            run = client.get_run(version.run_id)
        except MlflowException:
            run = None
        if run is not None and run.info.status == "RUNNING":
            closing = stale_reason(run)
            if closing is None:
                return None  # a training still at work
            close_run(client, run, closing)
            reason = f"its run {version.run_id} ended KILLED ({closing}) before it finished"
        elif run is not None:
            reason = _run_reason(run)
    reason = reason or _files_reason(client, version)
    if reason is not None:
        _tag_orphan(client, version, reason)
    return reason


def close_stale_runs(client, runs: dict[str, Any] | None = None) -> list[str]:
    """Close the stale RUNNING leadml runs of the store (:func:`stale_reason`); returns their ids."""
    runs = _unfinished_runs(client) if runs is None else runs
    closed = []
    for run_id, run in runs.items():
        if run.info.status != "RUNNING":
            continue
        reason = stale_reason(run)
        if reason is not None and close_run(client, run, reason):
            runs[run_id] = client.get_run(run_id)
            closed.append(run_id)
    return closed


def tag_orphans(client, runs: dict[str, Any]) -> list[tuple[str, str]]:
    """Tag the versions of unfinished leadml runs, and the aliased versions without a model, as orphans.

    Only the versions that hold an alias (the ones a command serves) have their files checked here;
    any other version is checked when it is asked for (:func:`orphan_reason`).
    """
    found = []
    for version in _pages(client.search_model_versions):
        if version.tags.get(ORPHAN_TAG) == "true":
            continue
        run = runs.get(version.run_id or "")
        reason = _run_reason(run) if run is not None else None
        if reason is None and version.status == "FAILED_REGISTRATION":
            reason = f"its registration failed ({version.status_message})"
        if reason is None and getattr(version, "aliases", None):
            reason = _files_reason(client, version)
        if reason is not None:
            _tag_orphan(client, version, reason)
            found.append((version.name, str(version.version)))
    return found


def recover(uri: str) -> Recovery:
    """Close the stale leadml runs of the store at ``uri`` and tag its orphan versions.

    Best effort: a store that refuses (read-only, a server without a registry) is left as it is and
    the command goes on; a version is still refused where it is served (:func:`orphan_reason`).
    """
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    try:
        runs = _unfinished_runs(client)
        closed = close_stale_runs(client, runs)
    except (MlflowException, OSError) as exc:
        log.warning("MLflow at %s: stale runs not checked (%s)", uri, _first_line(exc))
        return Recovery()
    try:
        orphans = tag_orphans(client, runs)
    except (MlflowException, OSError) as exc:
        log.warning("MLflow at %s: registered versions not checked (%s)", uri, _first_line(exc))
        orphans = []
    return Recovery(tuple(closed), tuple(orphans))

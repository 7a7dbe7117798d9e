"""The state of ``leadml serve`` in one SQLite file: leads, their events, every score, the alert outbox.

Why SQLite in WAL mode: the state must survive a restart (or a ``kill -9``) without a server to run
beside leadml. In WAL mode a commit is one sequential append to the log (one sync, not the two of
a rollback journal), ``synchronous=FULL`` (``serve.synchronous``, the default) makes every
acknowledged request durable against a power loss (``normal``: against a crash of the process, with
no sync per request; :mod:`leadml.serve.checkpoints` syncs the log every second), and other
processes (a backup, ``sqlite3`` at the prompt, a report) can read while the server writes. Each
request is one transaction (:meth:`ServeStore.transaction`), so a batch of events is stored whole
with its scores and alerts, or not at all. In the server, one connection behind a lock serves
every thread: a read waits at most for one short write transaction.

Times are integers (nanoseconds since the epoch, UTC); a profile and an event's attributes are
JSON objects; a score row is the scores file's row as JSON (floats round-trip exactly), with the
probability also as a REAL (an IEEE double: the same bits).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from leadml.core.config import PipelineConfig

__all__ = ["OUTCOME_TIMES", "ServeStore", "store_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leads (
    lead_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, profile TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, lead_id TEXT NOT NULL, timestamp INTEGER NOT NULL,
    event_type TEXT NOT NULL, attributes TEXT NOT NULL, received_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_lead ON events (lead_id, timestamp);
CREATE TABLE IF NOT EXISTS event_attributes (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS scores (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, lead_id TEXT NOT NULL, as_of INTEGER NOT NULL,
    model_version TEXT NOT NULL, probability REAL NOT NULL, tier TEXT NOT NULL, is_mql INTEGER NOT NULL,
    last_event INTEGER NOT NULL, row TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS scores_by_lead ON scores (lead_id, seq);
CREATE TABLE IF NOT EXISTS latest (lead_id TEXT PRIMARY KEY, score_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at INTEGER NOT NULL, lead_id TEXT NOT NULL,
    payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,
    delivered_at INTEGER, last_error TEXT);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at, next_attempt_at);
CREATE TABLE IF NOT EXISTS outcomes (
    lead_id TEXT PRIMARY KEY, outcome INTEGER NOT NULL, closed_at INTEGER, mql_at INTEGER, pql_at INTEGER,
    sql_at INTEGER, opportunity_at INTEGER, record TEXT NOT NULL, updated_at INTEGER NOT NULL);
"""

OUTCOME_TIMES = ("closed_at", "mql_at", "pql_at", "sql_at", "opportunity_at")  # the contract's, as ns or NULL


def store_path(config: PipelineConfig) -> Path:
    """The store of a pipeline: ``serve.store``, else ``serve/<pipeline name>.sqlite`` in the working folder."""
    return config.serve.store or Path("serve") / f"{config.name}.sqlite"


def _now_ns() -> int:
    return pd.Timestamp.now(tz="UTC").value


class ServeStore:
    """One SQLite file in WAL mode, shared by the request threads behind one lock.

    Writes go through :meth:`transaction` (all or nothing); reads take the same lock for the
    moment of the query. The connection is opened once (``check_same_thread=False``).
    """

    def __init__(self, path: str | os.PathLike, synchronous: str = "full", *, checkpoint_pages: int | None = None):
        """``checkpoint_pages``: the log's length in pages at which a commit checkpoints it (None:
        SQLite's 1,000); raised when :class:`~leadml.serve.checkpoints.LogCheckpointer` does it."""
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.execute("PRAGMA busy_timeout=5000")
        if checkpoint_pages is not None:
            self._db.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self.lock:
            self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside ``BEGIN IMMEDIATE`` .. ``COMMIT``; any exception rolls everything back."""
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self.lock:
            return self._db.execute(sql, args).fetchall()

    # -- leads and events ----------------------------------------------------------------------
    def profiles(self, lead_ids: Sequence[str]) -> dict[str, dict]:
        """The stored profile of each known lead among ``lead_ids`` (``created_at`` included)."""
        found: dict[str, dict] = {}
        for part in _parts(list(lead_ids)):
            marks = ",".join("?" * len(part))
            for lead_id, profile in self._query(f"SELECT lead_id, profile FROM leads WHERE lead_id IN ({marks})", part):
                found[lead_id] = json.loads(profile)
        return found

    def upsert_leads(self, db: sqlite3.Connection, profiles: dict[str, dict], created: dict[str, int]) -> None:
        """Write whole profiles (inside a :meth:`transaction`)."""
        now = _now_ns()
        db.executemany(
            "INSERT INTO leads (lead_id, created_at, profile, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (lead_id) DO UPDATE SET created_at = excluded.created_at, profile = excluded.profile, "
            "updated_at = excluded.updated_at",
            [(lead_id, created[lead_id], json.dumps(profile), now) for lead_id, profile in profiles.items()],
        )

    def add_events(self, db: sqlite3.Connection, rows: Sequence[tuple[str, int, str, dict]]) -> None:
        """Append events ``(lead_id, timestamp ns, event_type, attributes)`` (inside a :meth:`transaction`)."""
        now = _now_ns()
        db.executemany(
            "INSERT INTO events (lead_id, timestamp, event_type, attributes, received_at) VALUES (?, ?, ?, ?, ?)",
            [(lead_id, stamp, kind, json.dumps(attributes), now) for lead_id, stamp, kind, attributes in rows],
        )
        names = sorted({name for *_, attributes in rows for name in attributes})
        db.executemany("INSERT OR IGNORE INTO event_attributes (name) VALUES (?)", [(n,) for n in names])

    def attribute_names(self) -> list[str]:
        """Every event attribute seen so far (the events frame gets them all as columns)."""
        return [name for (name,) in self._query("SELECT name FROM event_attributes ORDER BY name")]

    def events_of(self, lead_ids: Sequence[str]) -> list[tuple[int, str, int, str, dict]]:
        """``(seq, lead_id, timestamp ns, event_type, attributes)`` of the leads' events, by lead and time."""
        rows: list[tuple[int, str, int, str, dict]] = []
        for part in _parts(list(lead_ids)):
            marks = ",".join("?" * len(part))
            found = self._query(f"SELECT seq, lead_id, timestamp, event_type, attributes FROM events "
                                f"WHERE lead_id IN ({marks}) ORDER BY lead_id, timestamp, seq", part)  # fmt: skip
            rows.extend(
                (seq, lead, stamp, kind, json.loads(attributes)) for seq, lead, stamp, kind, attributes in found
            )
        return rows

    def counts(self) -> dict[str, int]:
        """How many leads, events, outcomes, scores and undelivered alerts the store holds."""
        sql = ("SELECT (SELECT COUNT(*) FROM leads), (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM outcomes), "
               "(SELECT COUNT(*) FROM scores), (SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL)")  # fmt: skip
        leads, events, outcomes, scores, pending = self._query(sql)[0]
        return {"leads": leads, "events": events, "outcomes": outcomes, "scores": scores, "alerts_pending": pending}

    # -- outcomes ------------------------------------------------------------------------------
    def upsert_outcomes(self, db: sqlite3.Connection, rows: Sequence[dict]) -> None:
        """Write each lead's outcome row (inside a :meth:`transaction`): ``lead_id``, ``outcome`` (1 won,
        0 lost, -1 still open), the :data:`OUTCOME_TIMES` in ns or None, and ``record`` (the fields as
        posted, merged with the stored ones, so a later post may add ``closed_at`` to an ``sql_at``)."""
        now = _now_ns()
        names = ", ".join(OUTCOME_TIMES)
        db.executemany(
            f"INSERT INTO outcomes (lead_id, outcome, {names}, record, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (lead_id) DO UPDATE SET outcome = excluded.outcome, "
            + ", ".join(f"{n} = excluded.{n}" for n in OUTCOME_TIMES)
            + ", record = excluded.record, updated_at = excluded.updated_at",
            [(r["lead_id"], int(r["outcome"]), *(r.get(n) for n in OUTCOME_TIMES), json.dumps(r["record"]), now)
             for r in rows],
        )  # fmt: skip

    def outcomes_of(self, lead_ids: Sequence[str]) -> dict[str, dict]:
        """The stored outcome row of each lead among ``lead_ids`` that has one (times in ns or None)."""
        found: dict[str, dict] = {}
        for part in _parts(list(lead_ids)):
            marks = ",".join("?" * len(part))
            columns = ", ".join(OUTCOME_TIMES)
            sql = f"SELECT lead_id, outcome, {columns}, record FROM outcomes WHERE lead_id IN ({marks})"
            for lead_id, outcome, *times, record in self._query(sql, part):
                found[lead_id] = {"lead_id": lead_id, "outcome": outcome, **dict(zip(OUTCOME_TIMES, times)),
                                  "record": json.loads(record)}  # fmt: skip
        return found

    # -- scores --------------------------------------------------------------------------------
    def add_scores(self, db: sqlite3.Connection, rows: Sequence[dict], last_events: dict[str, int]) -> None:
        """Append score rows (the scores file's columns, JSON-ready) and make them each lead's latest.

        Three statements whatever the number of rows: the last seq, the rows, then the ``latest`` pointers of the
        scores appended after the last seq before them (the transaction holds the write lock).
        """
        if not rows:
            return
        before = db.execute("SELECT COALESCE(MAX(seq), 0) FROM scores").fetchone()[0]
        stamps = {as_of: pd.Timestamp(as_of).value for as_of in {row["as_of"] for row in rows}}
        db.executemany(
            "INSERT INTO scores (lead_id, as_of, model_version, probability, tier, is_mql, last_event, row) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(row["lead_id"], stamps[row["as_of"]], row["model_version"], row["probability"], row["tier"], int(bool(row["is_mql"])),
              last_events.get(row["lead_id"], 0), json.dumps(row)) for row in rows],
        )  # fmt: skip
        db.execute("INSERT INTO latest (lead_id, score_seq) SELECT lead_id, MAX(seq) FROM scores WHERE seq > ? "
                   "GROUP BY lead_id ON CONFLICT (lead_id) DO UPDATE SET score_seq = excluded.score_seq", (before,))  # fmt: skip

    def latest(self, lead_ids: Sequence[str] | None = None) -> dict[str, dict]:
        """Each lead's last score row (with ``last_event``: the seq of the last event it saw)."""
        sql = "SELECT s.lead_id, s.row, s.last_event FROM latest l JOIN scores s ON s.seq = l.score_seq"
        if lead_ids is None:
            return {lead: {**json.loads(row), "last_event": last} for lead, row, last in self._query(sql)}
        found: dict[str, dict] = {}
        for part in _parts(list(lead_ids)):
            marks = ",".join("?" * len(part))
            for lead, row, last in self._query(f"{sql} WHERE l.lead_id IN ({marks})", part):
                found[lead] = {**json.loads(row), "last_event": last}
        return found

    def latest_mqls(self, now: int | None = None) -> list[dict]:
        """The last score row of every lead whose last score is an MQL, with ``sql_at`` (ns or None) from
        its outcome; with ``now`` (ns), leads closed before it are left out (no longer prospects)."""
        sql = ("SELECT s.row, o.sql_at FROM latest l JOIN scores s ON s.seq = l.score_seq "
               "LEFT JOIN outcomes o ON o.lead_id = l.lead_id WHERE s.is_mql = 1")  # fmt: skip
        args: tuple = ()
        if now is not None:
            sql += " AND (o.closed_at IS NULL OR o.closed_at >= ?)"
            args = (now,)
        return [{**json.loads(row), "sql_at": sql_at} for row, sql_at in self._query(sql, args)]

    def drop_latest(self, db: sqlite3.Connection, lead_ids: Sequence[str]) -> None:
        """Forget the current score of leads no longer scored (closed): they leave the queue; history stays."""
        db.executemany("DELETE FROM latest WHERE lead_id = ?", [(lead_id,) for lead_id in lead_ids])

    def history(self, lead_id: str, limit: int = 100) -> list[dict]:
        """The lead's scores, newest first: as_of, probability, score, tier, is_mql, model_version."""
        rows = self._query("SELECT row FROM scores WHERE lead_id = ? ORDER BY seq DESC LIMIT ?", (lead_id, limit))
        keep = ("as_of", "probability", "score", "tier", "is_mql", "model_version")
        return [{k: json.loads(row).get(k) for k in keep} for (row,) in rows]

    # -- the outbox ----------------------------------------------------------------------------
    def add_alerts(self, db: sqlite3.Connection, alerts: Sequence[dict]) -> None:
        """Queue alerts (inside the transaction of the scores that raised them)."""
        now = _now_ns()
        db.executemany("INSERT INTO outbox (created_at, lead_id, payload, next_attempt_at) VALUES (?, ?, ?, ?)",
                       [(now, a["lead_id"], json.dumps(a), now) for a in alerts])  # fmt: skip

    def due_alerts(self, now: int, limit: int = 50) -> list[tuple[int, int, dict]]:
        """``(id, attempts, payload)`` of undelivered alerts whose next attempt is due, oldest first."""
        rows = self._query("SELECT id, attempts, payload FROM outbox WHERE delivered_at IS NULL AND next_attempt_at "
                           "<= ? ORDER BY id LIMIT ?", (now, limit))  # fmt: skip
        return [(i, attempts, json.loads(payload)) for i, attempts, payload in rows]

    def alerts(self, limit: int = 100) -> list[dict]:
        """The latest alerts with their delivery state, newest first."""
        rows = self._query("SELECT id, payload, attempts, delivered_at, last_error FROM outbox ORDER BY id DESC "
                           "LIMIT ?", (limit,))  # fmt: skip
        return [{"id": i, **json.loads(payload), "attempts": attempts, "delivered": delivered is not None,
                 "last_error": error} for i, payload, attempts, delivered, error in rows]  # fmt: skip

    def mark_alert(self, alert_id: int, *, delivered: bool, error: str | None = None, retry_at: int = 0) -> None:
        """Record one delivery attempt: delivered, or failed with the error and when to try again."""
        with self.transaction() as db:
            if delivered:
                db.execute("UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL "
                           "WHERE id = ?", (_now_ns(), alert_id))  # fmt: skip
            else:
                db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                           "WHERE id = ?", (error, retry_at, alert_id))  # fmt: skip


def _parts(values: list[str], size: int = 500) -> Iterator[list[str]]:
    """``values`` in pieces small enough for SQLite's bound-parameter limit."""
    for first in range(0, len(values), size):
        yield values[first : first + size]

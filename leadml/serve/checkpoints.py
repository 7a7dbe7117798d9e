"""Checkpoints of the store's write-ahead log, every few seconds, off the request path.

In WAL mode each commit appends to the log; a *checkpoint* copies the log into the database file
and syncs both. Left to SQLite, a checkpoint runs inside whichever commit pushes the log past
1,000 pages: that request pays for it (several ms of disk syncs on a busy disk). Here a thread
does it on its own connection every ``serve.checkpoint_seconds`` (PASSIVE: it never waits for or
blocks a writer), and the request connection's own threshold is raised to a backstop.

With ``serve.synchronous: normal`` a commit is not synced at all; the checkpoint syncs the log
first, so a power loss takes at most the last ``checkpoint_seconds`` of acknowledged requests (a
crash of the process takes nothing: the log is in the operating system's hands).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

__all__ = ["BACKSTOP_PAGES", "LogCheckpointer"]

BACKSTOP_PAGES = 20_000  # the request connection's own checkpoint threshold while the thread runs (~80 MB)

log = logging.getLogger(__name__)


class LogCheckpointer:
    """A daemon thread checkpointing the SQLite file at ``path`` every ``seconds`` until :meth:`stop`.

    ``checkpoints`` counts the rounds that found frames in the log (and so checkpointed them).
    """

    def __init__(self, path: str | os.PathLike, seconds: float):
        if seconds <= 0:
            raise ValueError(f"seconds must be positive, not {seconds!r}")
        self.path, self.seconds = Path(path), float(seconds)
        self.checkpoints = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadml-store-checkpoints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Checkpoint once more and end the thread (the requests have stopped)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=NORMAL")  # a checkpoint syncs the log, then the database file
            db.execute("PRAGMA busy_timeout=1000")
            while not self._stopping.wait(self.seconds):
                self._checkpoint(db)
            self._checkpoint(db)
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        try:
            _, pages, moved = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as error:  # the file gone or locked: the next round tries again
            log.warning("checkpoint of %s failed: %s", self.path, error)
            return
        if pages > 0 and moved == pages:
            self.checkpoints += 1

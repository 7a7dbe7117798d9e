"""Pairing chunks of sorted leads with their events, and reading the next chunk ahead.

:func:`merge_chunks` walks the leads (sorted by ``lead_id``) and takes from the events every
event up to the chunk's last lead; events of leads the file does not have are orphans, an error
or dropped and counted as the pipeline's ``data.on_orphans`` says. :func:`read_ahead` runs such an
iterator one item ahead in a thread, so that reading overlaps computing.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadml.core.errors import LeadDataError

log = logging.getLogger("leadml.jobs.score")


@dataclass(frozen=True)
class Chunk:
    """Leads of one chunk (validated, sorted by ``lead_id``), their events (Arrow) and closings."""

    leads: pd.DataFrame
    events: pa.Table
    outcomes: pd.DataFrame | None
    orphans: int = 0


def _orphans(events: pa.Table, lead_ids: pd.Series) -> np.ndarray:
    """Events whose lead is not among ``lead_ids`` (a numpy mask), hashing dictionary entries only."""
    known = pa.array(lead_ids.to_numpy().astype(object), pa.string())
    parts = []
    for chunk in events.column("lead_id").chunks:
        if pa.types.is_dictionary(chunk.type):
            inside = np.append(np.asarray(pc.is_in(chunk.dictionary.cast(pa.string()), value_set=known)), False)
            indices = np.asarray(pc.fill_null(chunk.indices, -1) if chunk.null_count else chunk.indices)
            parts.append(~inside[indices])
        else:
            parts.append(~np.asarray(pc.fill_null(pc.is_in(chunk.cast(pa.string()), value_set=known), False)))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def _orphan_error(source: str, count: int, examples: Sequence[str]) -> LeadDataError:
    shown = ", ".join(map(repr, examples[:3]))
    return LeadDataError(
        f"{source}: column 'lead_id' has {count} events of unknown leads (first ids: {shown}); fix the "
        "export or drop them with data.on_orphans: drop"
    )


def merge_chunks(
    lead_chunks: Iterator[pd.DataFrame], events, closings, *, events_source: str, on_orphans: str = "error"
) -> Iterator[Chunk]:
    """Pair each chunk of sorted leads with its events; orphan events raise or are counted."""
    for leads in lead_chunks:
        table = events.take_until(str(leads["lead_id"].iloc[-1])) if events is not None else None
        orphans = 0
        if table is not None and table.num_rows:
            stray = _orphans(table, leads["lead_id"])
            orphans = int(stray.sum())
            if orphans:
                if on_orphans == "error":
                    ids = table.column("lead_id").filter(pa.array(stray)).slice(0, 3).cast(pa.string()).to_pylist()
                    raise _orphan_error(events_source, orphans, ids)
                table = table.filter(pa.array(~stray))
        chunk = Chunk(leads=leads, events=table, outcomes=closings.of(leads["lead_id"]), orphans=orphans)
        del leads, table  # held by the chunk only, so that it is freed as soon as it is used
        yield chunk
        del chunk
    if events is not None and events.remaining():
        if on_orphans == "error":
            rest = events.take_until("\U0010ffff" * 8)  # an error path: reading the rest is fine
            examples = rest.column("lead_id").slice(0, 3).cast(pa.string()).to_pylist()
            raise _orphan_error(events_source, rest.num_rows, examples)
        log.info("%s: %d events of leads after the last lead were dropped", events_source, events.remaining())


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def read_ahead(items: Iterator, depth: int = 1) -> Iterator:
    """Yield ``items``, producing up to ``depth`` of the next ones in a background thread.

    Reading Parquet releases the GIL, so the next chunk's reading overlaps the current chunk's
    features and scoring on the other core; at most ``depth`` chunks wait besides the one in
    use. An error in the thread is raised in the caller; when the caller stops early, the
    thread stops too.
    """
    ready: queue.Queue = queue.Queue()
    slots = threading.Semaphore(depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            while True:
                while not slots.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                item = next(items, done)
                ready.put(item)
                if item is done:
                    return
        except BaseException as error:  # handed to the caller, raised there
            ready.put(_Failed(error))

    thread = threading.Thread(target=produce, name="leadml-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is done:
                return
            if isinstance(item, _Failed):
                raise item.error
            slots.release()  # the thread may make the next one while this one is used
            yield item
            del item
    finally:
        stop.set()
        thread.join()

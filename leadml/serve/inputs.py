"""Requests checked with the batch job's rules: the data contract's, on a batch of leads or events.

``POST /events`` and ``POST /leads`` carry rows in the contract's shape (the pipeline's column map
and timestamp format apply, as they do to its files). Each batch goes through
:func:`~leadml.data.contract.validate_events` / :func:`~leadml.data.contract.validate_leads` whole;
the first problem becomes an :class:`InvalidInput` naming the field, the reason and the row, and
nothing of the batch is stored (the caller checks before it opens a transaction).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from leadml.core.config import PipelineConfig
from leadml.core.errors import LeadDataError
from leadml.data import contract
from leadml.serve.store import OUTCOME_TIMES

__all__ = [
    "CheckedEvents", "CheckedLeads", "InvalidInput", "check_events", "check_leads", "check_outcomes", "contract_events",
    "plain_events", "utc_ns", "ISO_TIME",
]  # fmt: skip

_ROW = "__row"  # the position of a row in its request, carried through the contract's sorting
_FIELD = re.compile(r"column(?:\(s\))? '([^']+)'")


class InvalidInput(ValueError):
    """A request row the contract refuses: ``field``, ``reason`` (the contract's message), ``row``."""

    def __init__(self, field: str, reason: str, row: int | None = None):
        super().__init__(reason)
        self.field, self.reason, self.row = field, reason, row

    def detail(self) -> list[dict[str, Any]]:
        """FastAPI's shape of a 422 body item, with the field named on its own."""
        loc: list[Any] = ["body", *([self.row] if self.row is not None else []), self.field]
        return [{"loc": loc, "field": self.field, "msg": self.reason, "type": "value_error"}]


@dataclass(frozen=True)
class CheckedEvents:
    """A batch of valid events: ``rows`` ``(lead_id, timestamp ns, event_type, attributes)`` to store."""

    rows: list[tuple[str, int, str, dict]]

    @property
    def lead_ids(self) -> list[str]:
        return list(dict.fromkeys(lead_id for lead_id, *_ in self.rows))


@dataclass(frozen=True)
class CheckedLeads:
    """A batch of valid leads: each lead's whole profile after the upsert, and its ``created_at`` in ns."""

    profiles: dict[str, dict]
    created: dict[str, int]


def _table_settings(config: PipelineConfig | None, name: Literal["leads", "events", "outcomes"]) -> dict[str, Any]:
    """The pipeline's column map and timestamp format of a table (files only: the simulator has none)."""
    table = config.data.table(name) if config is not None and config.data.source == "tables" else None
    if table is None:
        return {}
    return {
        "columns": getattr(table, "columns", None) or None,
        "timestamp_format": getattr(table, "timestamp_format", None),
    }


def _refusal(exc: LeadDataError, frame: pd.DataFrame, default_field: str) -> InvalidInput:
    """The contract's error as an :class:`InvalidInput`: the field from its message, the first row it names."""
    message = str(exc)
    found = _FIELD.search(message)
    field = found.group(1) if found else default_field
    first = re.search(r"first rows: row (\d+)", message)  # 1-based positions in the request's frame
    row = int(frame[_ROW].iloc[int(first.group(1)) - 1]) if first and int(first.group(1)) <= len(frame) else None
    return InvalidInput(field, message, row)


def _plain(value: Any) -> Any:
    """A JSON value as stored: NaN is missing."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _scalars(records: Sequence[Mapping[str, Any]]) -> None:
    """Refuse nested values: a table cell is text, a number, a boolean or missing."""
    for row, record in enumerate(records):
        for name, value in record.items():
            if not (value is None or isinstance(value, str | int | float | bool)):
                raise InvalidInput(str(name), f"field '{name}' holds a {type(value).__name__}, not text, a number or "
                                   f"a boolean (row {row})", row)  # fmt: skip


def _required(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    _scalars(records)
    for row, record in enumerate(records):
        for name in names:
            if _plain(record.get(name)) is None or (isinstance(record.get(name), str) and not record[name].strip()):
                raise InvalidInput(name, f"field '{name}' is required (row {row})", row)


def check_events(records: Sequence[Mapping[str, Any]], config: PipelineConfig | None = None) -> CheckedEvents:
    """Check a batch of events with the contract (ids, timestamps to UTC, event types stripped).

    Raises:
        InvalidInput: an empty batch, a missing field or a value the contract refuses.
    """
    if not records:
        raise InvalidInput("body", "the batch holds no event")
    settings = _table_settings(config, "events")
    plain = None if any(settings.values()) else plain_events(records)
    return plain if plain is not None else contract_events(records, settings)


def contract_events(records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> CheckedEvents:
    """:func:`check_events` through the contract's frames (``settings``: the table's column map and
    timestamp format), for any batch."""
    frame = pd.DataFrame([dict(record) for record in records])
    frame[_ROW] = range(len(frame))
    renamed = {v: k for k, v in (settings.get("columns") or {}).items()}
    _required([{renamed.get(k, k): v for k, v in r.items()} for r in records], contract.EVENTS_REQUIRED)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", contract.LeadDataWarning)
            events = contract.validate_events(frame, source="POST /events", **settings)
    except LeadDataError as exc:
        raise _refusal(exc, frame, "body") from exc
    events = events.sort_values(_ROW, kind="stable")
    extra = [c for c in events.columns if c not in (*contract.EVENTS_REQUIRED, _ROW)]
    attributes = events[extra].astype(object).to_dict("records") if extra else [{}] * len(events)
    stamps = events["timestamp"].dt.as_unit("ns").array.asi8
    rows = [(str(lead_id), int(stamp), str(kind), {k: _plain(v) for k, v in attrs.items() if _plain(v) is not None})
            for lead_id, stamp, kind, attrs in zip(events["lead_id"], stamps, events["event_type"].astype(str),
                                                   attributes)]  # fmt: skip
    return CheckedEvents(rows)


ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:Z|[+-]\d{2}:\d{2})?")
_PLAIN_TYPES = (str, int, float, bool)


def plain_events(records: Sequence[Mapping[str, Any]]) -> CheckedEvents | None:
    """The rows :func:`check_events` gives for a batch in the plainest shape, without building frames;
    None for any other batch, which goes through the contract whole.

    Plain: text ids and types that are not blank, ISO 8601 timestamps (what clients send), and each
    other field of one type (text, integer, float or boolean) in every record, present in all of
    them; a batch of one record may hold any scalar or none. These are the cases where the
    contract's frame changes nothing but the three fields: it strips the id and the type and reads
    the time into UTC, and a column of one type gives its values back as they came
    (``tests/serve/test_plain_events.py`` holds the two equal). A lone event costs ~0.1 ms here
    against ~8 ms through the frames.
    """
    kinds: dict[str, type] = {}
    rows: list[tuple[str, int, str, dict]] = []
    for record in records:
        lead_id, stamp, kind = record.get("lead_id"), record.get("timestamp"), record.get("event_type")
        if not (isinstance(lead_id, str) and isinstance(stamp, str) and isinstance(kind, str)):
            return None
        lead_id, kind = lead_id.strip(), kind.strip()
        if not lead_id or not kind or not ISO_TIME.fullmatch(stamp) or _ROW in record:
            return None
        attributes = {}
        for name, value in record.items():
            if name in contract.EVENTS_REQUIRED:
                continue
            if len(records) > 1 and (
                type(value) not in _PLAIN_TYPES or kinds.setdefault(name, type(value)) is not type(value)
            ):
                return None
            if value is not None and type(value) not in _PLAIN_TYPES:
                return None
            if type(value) is int and not -(2**63) <= value < 2**63:
                return None
            if _plain(value) is not None:
                attributes[name] = value
        try:
            rows.append((lead_id, utc_ns(stamp), kind, attributes))
        except (ValueError, OverflowError):  # out of range: the contract says how
            return None
    if len(records) > 1 and any(len(record) - len(contract.EVENTS_REQUIRED) != len(kinds) for record in records):
        return None  # a field some records lack: a column with missing values, whose type may change
    return CheckedEvents(rows)


def utc_ns(text: str) -> int:
    """An ISO 8601 time in ns since the epoch in UTC (a time without an offset is UTC, as in the contract)."""
    stamp = pd.Timestamp(text)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.as_unit("ns").value)


def check_leads(
    records: Sequence[Mapping[str, Any]], stored: Mapping[str, dict], config: PipelineConfig | None = None
) -> CheckedLeads:
    """Check a batch of lead upserts: each record's fields replace the stored ones, then the whole
    profile goes through the contract (``lead_id``, ``created_at``, unique ids).

    Raises:
        InvalidInput: an empty batch, a missing ``created_at`` for a new lead, a value the contract refuses.
    """
    if not records:
        raise InvalidInput("body", "the batch holds no lead")
    settings = _table_settings(config, "leads")
    renamed = {v: k for k, v in (settings.get("columns") or {}).items()}
    merged = []
    for row, record in enumerate(records):
        given = {renamed.get(k, k): _plain(v) for k, v in record.items()}
        _required([given], ["lead_id"])
        known = stored.get(str(given["lead_id"]), {})
        merged.append({**known, **given, _ROW: row})
    frame = pd.DataFrame(merged)
    _required([{k: v for k, v in m.items()} for m in merged], contract.LEADS_REQUIRED)
    try:
        leads = contract.validate_leads(frame, source="POST /leads", timestamp_format=settings.get("timestamp_format"))
    except LeadDataError as exc:
        raise _refusal(exc, frame, "body") from exc
    created = dict(zip(leads["lead_id"], leads["created_at"].dt.as_unit("ns").array.asi8.tolist()))
    profiles = {}
    for record in merged:
        lead_id = str(record["lead_id"])
        profile = {k: v for k, v in record.items() if k != _ROW}
        profile["lead_id"] = lead_id
        profile["created_at"] = pd.Timestamp(created[lead_id], tz="UTC").isoformat()
        profiles[lead_id] = profile
    return CheckedLeads(profiles, {k: int(v) for k, v in created.items()})


OPEN = "open"  # the outcome of a deal still in progress when the pipeline names no open values


def check_outcomes(
    records: Sequence[Mapping[str, Any]],
    stored: Mapping[str, dict],
    leads: pd.DataFrame,
    config: PipelineConfig | None = None,
) -> list[dict]:
    """Check a batch of outcome rows with the contract (``lead_id``, ``outcome``, ``closed_at``, stage times
    such as ``sql_at``); each record's fields replace the lead's stored ones, so a deal may be posted
    open with its ``sql_at`` and later closed. Without ``closed_at`` and ``outcome`` a row is an open deal.

    ``stored``: lead_id -> stored outcome row (its ``record``); ``leads``: the validated profiles of the
    leads named (an outcome of an unknown lead, or one closed before its lead was created, is refused).
    Returns the rows to store: ``lead_id``, ``outcome`` (1 won, 0 lost, -1 open), the times in ns or
    None, and the merged ``record``.

    Raises:
        InvalidInput: an empty batch, an unknown lead or a value the contract refuses.
    """
    if not records:
        raise InvalidInput("body", "the batch holds no outcome")
    settings = _table_settings(config, "outcomes")
    table = config.data.table("outcomes") if config is not None and config.data.source == "tables" else None
    won, lost = getattr(table, "won", None), getattr(table, "lost", None)
    opened = list(getattr(table, "open", None) or [])
    if OPEN not in [v.strip().lower() for v in (*(won or []), *(lost or []))]:
        opened.append(OPEN)
    renamed = {v: k for k, v in (settings.get("columns") or {}).items()}
    known = set(leads["lead_id"].astype(str))
    merged = []
    for row, record in enumerate(records):
        given = {renamed.get(k, k): _plain(v) for k, v in record.items()}
        _required([given], ["lead_id"])
        lead_id = str(given["lead_id"])
        if lead_id not in known:
            raise InvalidInput("lead_id", f"unknown lead {lead_id!r}: POST it to /leads first", row)
        was = stored.get(lead_id, {}).get("record", {})
        merged.append({**was, **{k: v for k, v in given.items() if v is not None}, "lead_id": lead_id, _ROW: row})
    frame = pd.DataFrame([{**m, "outcome": OPEN} if m.get("outcome") is None and m.get("closed_at") is None else m
                          for m in merged])  # fmt: skip
    if "closed_at" not in frame.columns:  # a batch of open deals: no closing yet
        frame["closed_at"] = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", contract.LeadDataWarning)
            checked = contract.validate_outcomes(frame.drop(columns=[_ROW]), source="POST /outcomes", leads=leads,
                                                 won=won, lost=lost, open=opened,
                                                 timestamp_format=settings.get("timestamp_format"))  # fmt: skip
    except LeadDataError as exc:
        raise _refusal(exc, frame, "body") from exc
    parsed = {str(r["lead_id"]): r for r in checked.to_dict("records")}
    rows = []
    for record in merged:
        lead_id = record["lead_id"]
        found = parsed.get(lead_id, {})  # an open deal without a stage time: the contract keeps no row
        times = {n: (pd.Timestamp(found[n]).value if found.get(n) is not None and not pd.isna(found[n]) else None)
                 for n in OUTCOME_TIMES}  # fmt: skip
        rows.append({"lead_id": lead_id, "outcome": int(found.get("outcome", -1)), **times,
                     "record": {k: v for k, v in record.items() if k != _ROW}})  # fmt: skip
    return rows

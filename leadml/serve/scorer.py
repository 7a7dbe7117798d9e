"""Score a few leads at one instant exactly as ``leadml score --as-of`` scores them.

There is no second implementation: the stored leads become a validated frame and their events the
Arrow table the batch job makes of such a frame, then go through the batch job's own steps, :func:`~leadml.jobs.inputs.frame_inputs` (how the job reads
tables in memory), the job's chunk builder in :mod:`leadml.jobs.feature_source` (the model's
``FeatureBuilder`` at as_of through :func:`~leadml.features.chunk.chunk_features`, the rules scores
of a rules model, the MQL rule's columns) and :func:`~leadml.jobs.score.scores_table` (probability,
policy, decisions, reasons). A served score therefore equals the batch score of the same lead at
the same as_of, bit for bit, because the features of a lead depend on that lead's rows only.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from leadml.core.config import FeatureConfig, PipelineConfig
from leadml.core.memo import BoundedMemo
from leadml.data import contract
from leadml.jobs.feature_source import reading_rules
from leadml.jobs.inputs import frame_inputs
from leadml.jobs.reasons import reasons_step
from leadml.jobs.score import LoadedModel, Scorer, check_builder, load_model, scores_table
from leadml.serve.chunks import ProfileCache, served_chunks
from leadml.serve.inputs import ISO_TIME, utc_ns
from leadml.serve.store import OUTCOME_TIMES

__all__ = ["LiveScorer", "events_frame", "events_table", "leads_frame", "outcomes_frame", "stored_events"]


def leads_frame(profiles: Sequence[dict]) -> pd.DataFrame:
    """Stored profiles as the contract's leads table (``lead_id`` text, ``created_at`` UTC).

    The profiles passed the contract when they were posted (:func:`~leadml.serve.inputs.check_leads`
    wrote ``created_at`` as ISO 8601 in UTC), so the plain ones are typed in one go, as the contract
    types them (~0.5 ms for a lead against ~8 through the contract; ``tests/serve/test_fast_path.py``
    holds the two equal); any other goes through :func:`~leadml.data.contract.validate_leads`.
    """
    frame = pd.DataFrame(list(profiles))
    typed = _typed_leads(frame, profiles)
    if typed is not None:
        return typed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", contract.LeadDataWarning)
        return contract.validate_leads(frame, source="store leads")


def _typed_leads(frame: pd.DataFrame, profiles: Sequence[dict]) -> pd.DataFrame | None:
    """``frame`` with its ids as text and ``created_at`` in UTC, or None when a profile is not plain
    (an id that is not stripped text, a time that is not ISO 8601, an id twice)."""
    ids = [profile.get("lead_id") for profile in profiles]
    created = [text for profile in profiles if isinstance(text := profile.get("created_at"), str)]
    if not ids or not all(isinstance(i, str) and i and i == i.strip() for i in ids) or len(set(ids)) != len(ids):
        return None
    if len(created) != len(profiles) or not all(ISO_TIME.fullmatch(text) for text in created):
        return None
    try:
        stamps = np.array([utc_ns(text) for text in created], dtype="datetime64[ns]")
    except (ValueError, OverflowError):
        return None
    frame["lead_id"] = pd.array(ids, dtype="str")
    frame["created_at"] = pd.DatetimeIndex(stamps).tz_localize("UTC")
    return frame


def events_frame(rows: Sequence[tuple[int, str, int, str, dict]], attributes: Sequence[str]) -> pd.DataFrame | None:
    """Stored events ``(seq, lead_id, timestamp ns, event_type, attributes)`` as the contract's events
    table, with every attribute ever seen as a column (missing where an event lacks it).

    The rows were checked by :func:`~leadml.data.contract.validate_events` when they were posted, so
    only its typing is done again, built in one go: ids as text, the event type a category, the rows
    sorted by lead then time, ties in their order (``tests/serve/test_fast_path.py`` holds this equal
    to the check).
    """
    if not rows:
        return None
    ordered = sorted(rows, key=lambda row: (row[1].strip(), row[2]))  # stable: sort_values(kind="stable")
    return _typed(ordered, attributes, [lead.strip() for _, lead, *_ in ordered])


def events_table(
    rows: Sequence[tuple[int, str, int, str, dict]], attributes: Sequence[str]
) -> pa.Table | pd.DataFrame | None:
    """The stored events as the batch job reads them: the Arrow table it makes of :func:`events_frame`
    (``pa.Table.from_pandas``, less the pandas metadata), built straight from the rows, so that a
    served event's lead is scored without the frame (0.7 ms a one-event request, 2.9 through pandas).
    When an attribute mixes kinds (text and numbers, booleans), the frame itself: the job converts
    the columns the features read. ``tests/serve/test_fast_path.py`` holds the two equal."""
    if not rows:
        return None
    ordered = sorted(rows, key=lambda row: (row[1].strip(), row[2]))  # as events_frame orders them
    columns: dict[str, pa.Array] = {
        "lead_id": pa.array([lead.strip() for _, lead, *_ in ordered], pa.large_string()),
        "timestamp": pa.array(
            np.array([stamp for _, _, stamp, *_ in ordered], dtype=np.int64), pa.timestamp("ns", tz="UTC")
        ),
    }
    named: list[tuple[str, list[Any]]] = [("event_type", [kind.strip() for *_, kind, _ in ordered])]
    named += [(name, [attrs.get(name) for *_, attrs in ordered]) for name in attributes]
    for name, values in named:
        column = _arrow_column(values, name == "event_type")
        if column is None:
            return events_frame(rows, attributes)
        columns[name] = column
    return pa.table(columns)


def _arrow_column(values: list[Any], text: bool) -> pa.Array | None:
    """One column of :func:`events_table` as ``from_pandas`` gives that of :func:`_typed`: numbers and
    missing values as doubles (missing: null), text and missing values as a dictionary over the
    sorted texts with pandas' width of codes; None for any other mix."""
    if not text and all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values):
        return pa.array(np.array([np.nan if v is None else v for v in values], dtype="float64"), from_pandas=True)
    distinct = {v for v in values if v is not None}
    if not all(isinstance(v, str) for v in distinct):
        return None
    key = sorted(distinct)
    position = {v: k for k, v in enumerate(key)}
    width = pa.int8() if len(key) < 127 else pa.int16() if len(key) < 32_767 else pa.int32()
    codes = np.array([-1 if v is None else position[v] for v in values], dtype=width.to_pandas_dtype())
    indices = pa.array(codes, width, mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(key, pa.large_string()))


def stored_events(rows: Sequence[tuple[int, str, int, str, dict]], attributes: Sequence[str]) -> pd.DataFrame | None:
    """The stored events as a frame before the contract's typing, in their order, built column by
    column with pandas' own conversions (None: no event): what :func:`events_frame` is checked against."""
    if not rows:
        return None
    frame = pd.DataFrame({
        "lead_id": [lead for _, lead, *_ in rows],
        "timestamp": pd.to_datetime([stamp for _, _, stamp, *_ in rows], utc=True).as_unit("ns"),
        "event_type": [kind for *_, kind, _ in rows],
    })  # fmt: skip
    for name in attributes:
        values = [attrs.get(name) for *_, attrs in rows]
        column = pd.Series(values, dtype=object)
        if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values):
            frame[name] = pd.to_numeric(column, errors="coerce").astype("float64")
        else:
            frame[name] = column.astype("category")
    return frame


def _typed(rows: Sequence[tuple[int, str, int, str, dict]], attributes: Sequence[str], ids: list[str]) -> pd.DataFrame:
    """The frame of some stored rows: ids as text, times in UTC, the type and text attributes as
    categories, numeric attributes as floats with NaN (as a Parquet or CSV read gives them)."""
    stamps = np.array([stamp for _, _, stamp, *_ in rows], dtype="datetime64[ns]")
    columns: dict[str, Any] = {
        "lead_id": pd.array(ids, dtype="str"),
        "timestamp": pd.DatetimeIndex(stamps).tz_localize("UTC"),
        "event_type": _category([kind.strip() for *_, kind, _ in rows]),
    }
    for name in attributes:
        values = [attrs.get(name) for *_, attrs in rows]
        if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values):
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype="float64")
        else:
            columns[name] = _category(values)
    return pd.DataFrame(columns)


_CATEGORIES: BoundedMemo[pd.CategoricalDtype] = BoundedMemo(1_000)


def _category(values: list[Any]) -> pd.Categorical:
    """``pd.Series(values, dtype=object).astype("category")``: for text and missing values, from the
    sorted distinct texts (their dtype kept between calls); any other mix, as pandas builds it."""
    distinct = {v for v in values if v is not None}
    if not all(isinstance(v, str) for v in distinct):
        return pd.Series(values, dtype=object).astype("category").array
    key = tuple(sorted(distinct))
    dtype = _CATEGORIES.get(key, lambda: pd.CategoricalDtype(pd.Index(list(key), dtype="str")))
    position = {v: k for k, v in enumerate(key)}
    codes = np.array([-1 if v is None else position[v] for v in values], dtype=np.int32)
    return pd.Categorical.from_codes(codes, dtype=dtype)


def outcomes_frame(rows: Sequence[dict]) -> pd.DataFrame | None:
    """Stored outcome rows (times in ns or None) as the contract's outcomes table, what the batch job
    reads: ``lead_id``, ``outcome`` (-1 for a deal still open), ``closed_at`` and the stage times."""
    if not rows:
        return None
    frame = pd.DataFrame({"lead_id": [str(r["lead_id"]) for r in rows],
                          "outcome": np.array([r["outcome"] for r in rows], dtype="int8")})  # fmt: skip
    for name in OUTCOME_TIMES:
        stamps = [r.get(name) for r in rows]
        if name == "closed_at" or any(v is not None for v in stamps):
            frame[name] = pd.to_datetime(pd.Series([pd.NaT if v is None else v for v in stamps], dtype=object),
                                         utc=True).dt.as_unit("ns")  # fmt: skip
    return frame


_WARM = "__leadml_warm_up__"


@dataclass(frozen=True)
class _State:
    """What one model serves with: the model, its scorer, rule set, feature settings, profile cache, reasons step."""

    loaded: LoadedModel
    scorer: Scorer
    rules: Any
    features: FeatureConfig
    cache: ProfileCache
    reasons: Any


class LiveScorer:
    """The serving model (the pipeline's champion by default) and the batch job's scoring steps.

    :meth:`reload` swaps the model atomically: a request being scored keeps the model it started with.
    """

    def __init__(self, config: PipelineConfig, model_uri: str | os.PathLike | Any | None = None):
        self.config = config
        self.model_uri = model_uri
        self._lock = threading.Lock()
        self._state = self._load(model_uri)

    def _load(self, model_uri) -> _State:
        loaded = load_model(self.config, model_uri)
        check_builder(loaded.scoring)
        rules = loaded.scoring.ruleset() if getattr(loaded.scoring, "needs_points", False) else None
        builder = loaded.scoring.builder
        features = builder.features or FeatureConfig()
        if rules is not None:
            features = reading_rules(self.config, features, rules)
        state = _State(loaded, Scorer(loaded.scoring), rules, features, ProfileCache(builder), reasons_step("all"))
        self._warm(state)
        return state

    def _warm(self, state: _State) -> None:
        """Score one made-up lead with one event, so the first request finds every kernel compiled and cached."""
        as_of = pd.Timestamp("2000-01-02", tz="UTC")
        lead = leads_frame([{"lead_id": _WARM, "created_at": "2000-01-01T00:00:00+00:00"}])
        kinds = list(getattr(state.loaded.scoring.builder, "event_types_", None) or ["visit"])
        events = events_table([(0, _WARM, pd.Timestamp("2000-01-01 12:00", tz="UTC").value, str(kinds[0]), {})], [])
        try:
            self._score(state, lead, events, as_of)
        except Exception as exc:  # a model that needs columns a made-up lead lacks: its first request warms it
            logging.getLogger(__name__).info("the model's warm-up was skipped: %s", exc)
        with state.cache.lock:
            state.cache.forget(_WARM)

    @property
    def loaded(self) -> LoadedModel:
        return self._state.loaded

    def reload(self, model_uri: str | os.PathLike | Any | None = None) -> LoadedModel:
        """Load the model again (the champion may have moved) and serve it from the next request on."""
        state = self._load(model_uri if model_uri is not None else self.model_uri)
        with self._lock:
            self._state = state
        return state.loaded

    def score(self, leads: pd.DataFrame, events: pd.DataFrame | pa.Table | None, as_of: pd.Timestamp,
              spells: pd.Series | None = None, outcomes: pd.DataFrame | None = None) -> list[dict]:  # fmt: skip
        """Score rows (the scores file's columns, JSON-ready) of the open ``leads`` at ``as_of``.

        ``events`` are those leads' events (any order; those at or after as_of do not count);
        ``outcomes`` their outcome rows (:func:`outcomes_frame`): as in the batch job, a lead closed
        before as_of is left out, and an MQL whose ``sql_at`` is before as_of is accepted (never overdue);
        ``spells`` the start of each lead's current MQL spell (lead_id -> mql_since), which fixes
        an MQL's deadline as in the batch job. Every scored lead gets its reasons.
        """
        return self._score(self._state, leads, events, as_of, spells, outcomes)

    def _score(self, state: _State, leads: pd.DataFrame, events: pd.DataFrame | pa.Table | None, as_of: pd.Timestamp,
               spells: pd.Series | None = None, outcomes: pd.DataFrame | None = None) -> list[dict]:  # fmt: skip
        loaded = state.loaded
        inputs = frame_inputs(leads, events, outcomes, as_of, features=state.features, chunk_leads=max(len(leads), 1))
        mql = getattr(loaded.scoring, "mql_columns", (None, None))
        tables = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", contract.LeadDataWarning)
            for chunk in served_chunks(inputs, state.cache, as_of, state.rules, self.config, mql):
                tables.append(scores_table(loaded, chunk.snapshots, chunk.features, state.reasons, state.scorer,
                                           self.config, True, chunk.rules, spells, chunk.accepted,
                                           chunk.mql_columns))  # fmt: skip
        return [_json_row(row) for table in tables for row in table.to_pylist()] if tables else []


def _json_row(row: dict) -> dict:
    """A scores row with timestamps as ISO text and NaN as missing (JSON has neither)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, pd.Timestamp | pa.TimestampScalar) or hasattr(value, "isoformat"):
            out[key] = pd.Timestamp(value).tz_convert("UTC").isoformat() if value is not None else None
        elif isinstance(value, float) and math.isnan(value):
            out[key] = None
        else:
            out[key] = value
    return out

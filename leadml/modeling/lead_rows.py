"""The pyfunc's second input: lead rows (and their events) in; lead id, scores, tier and reasons out.

``model.predict(leads, params={"input": "leads", "as_of": "2026-03-01"})`` takes the rows of a
leads table (``lead_id``, ``created_at`` and the profile columns the model reads) and, in column
``events``, each lead's events as a JSON list of objects (``timestamp``, ``event_type`` and any
attributes, e.g. ``[{"timestamp": "2026-02-20T09:00:00Z", "event_type": "page_view", "page":
"pricing"}]``; a Python list of dicts, an empty list or nothing work too). The rows and the
events go through the data contract as files do, and the features are built by the model's own
fitted :class:`~leadml.features.build.FeatureBuilder` on the scoring job's path
(:func:`~leadml.features.chunk.chunk_features`, checked against ``FeatureBuilder.transform`` as
the job checks its first chunk): the features ``leadml score`` gives the same leads at the same
as_of. Only events before as_of count.

Every lead created before as_of is scored, one row per lead in ``lead_id`` order: give the open
leads (the model does not see outcomes). The output is ``lead_id``, ``as_of``, ``probability``,
``score``, ``tier``, ``is_mql`` and, when the model was logged with a reasons step (``leadml
train`` logs one), the reason columns of ``leadml score`` for every lead.
"""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Callable
from itertools import chain

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError, ModelError

EVENTS_COLUMN = "events"
SOURCE = "model input (lead rows)"
EVENTS_SOURCE = f"model input, column '{EVENTS_COLUMN}'"
EXAMPLE = '[{"timestamp": "2026-02-20T09:00:00Z", "event_type": "page_view", "page": "pricing"}]'


def lead_columns(scoring) -> list[str]:
    """The leads columns the model reads (ids, creation time, profile and rules fields), ``events`` last."""
    from leadml.features.chunk import lead_fields

    builder = scoring.builder
    if builder is None:
        return []
    fields = ["lead_id", *(() if builder.flat_ else ("created_at",)), *lead_fields(builder)]
    if scoring.needs_points:
        fields += scoring.ruleset().fields
    fields += [c for c in getattr(scoring, "mql_columns", (None, None)) if c]  # the MQL rule's group / value
    if not builder.flat_:
        fields.append(EVENTS_COLUMN)
    return list(dict.fromkeys(fields))


def build_lead_rows(leads: pd.DataFrame, events: pd.DataFrame | None = None) -> pd.DataFrame:
    """The leads input of the pyfunc: ``leads`` with timestamps and categoricals as text and each lead's ``events``
    (rows of ``events`` with its ``lead_id``) as a JSON list in column ``events``, ready for
    ``model.predict(rows, params={"input": "leads", "as_of": ...})`` or a JSON request.

    Example:
        >>> leads = pd.DataFrame({"lead_id": ["a", "b"], "created_at": ["2026-01-05", "2026-01-06"]})
        >>> events = pd.DataFrame({"lead_id": ["a"], "timestamp": ["2026-02-01T10:00:00Z"], "event_type": ["page_view"]})
        >>> build_lead_rows(leads, events)["events"].tolist()
        ['[{"timestamp":"2026-02-01T10:00:00Z","event_type":"page_view"}]', '[]']
    """
    rows = leads.copy()
    for name in rows.columns:  # text, as the signature checks it (a Categorical is refused there)
        if isinstance(rows[name].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(rows[name]):
            rows[name] = rows[name].map(lambda t: t.isoformat() if pd.notna(t) else None)
        elif isinstance(rows[name].dtype, pd.CategoricalDtype):
            rows[name] = rows[name].astype(object).where(rows[name].notna(), None)
    if events is None or not len(events):
        rows[EVENTS_COLUMN] = "[]"
        return rows
    ids = events["lead_id"].astype(str).to_numpy()
    lines = events.drop(columns="lead_id").to_json(orient="records", lines=True, date_format="iso", date_unit="ns")
    per_lead = pd.Series(lines.splitlines(), dtype=object).groupby(ids, sort=False).agg(",".join)
    rows[EVENTS_COLUMN] = ("[" + rows["lead_id"].astype(str).map(per_lead).fillna("") + "]").to_numpy(dtype=object)
    return rows


def _event_list(cell, row: int) -> list:
    """One lead's events: a JSON list of objects, a list of dicts, or nothing (no events)."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []
    found = cell
    if isinstance(cell, str):
        try:
            found = json.loads(cell) if cell.strip() else []
        except json.JSONDecodeError as exc:
            raise LeadDataError(f"{EVENTS_SOURCE}, row {row + 1}: not JSON ({exc}); give a JSON list of "
                                f"events, e.g. {EXAMPLE}") from exc  # fmt: skip
    if isinstance(found, np.ndarray):
        found = found.tolist()
    if not isinstance(found, (list, tuple)) or not all(isinstance(event, dict) for event in found):
        raise LeadDataError(f"{EVENTS_SOURCE}, row {row + 1}: {str(cell)[:80]!r} is not a list of event objects; "
                            f"give a JSON list of events, e.g. {EXAMPLE}")  # fmt: skip
    return list(found)


def split_lead_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The leads (the rows without ``events``) and the events table (``lead_id`` of their row; None: none)."""
    if EVENTS_COLUMN not in rows.columns:
        return rows, None
    leads = rows.drop(columns=[EVENTS_COLUMN])
    lists = [_event_list(cell, row) for row, cell in enumerate(rows[EVENTS_COLUMN].to_numpy(dtype=object))]
    counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    if not counts.sum():
        return leads, None
    events = pd.DataFrame.from_records(list(chain.from_iterable(lists)))
    ids = rows["lead_id"].to_numpy(dtype=object) if "lead_id" in rows.columns else np.full(len(rows), None)
    events["lead_id"] = np.repeat(ids, counts)  # the row's lead, whatever an event says
    return leads, events


def score_lead_rows(scoring, rows: pd.DataFrame, as_of: object, reasons: Callable | None = None) -> pd.DataFrame:
    """Scores of lead rows at ``as_of``: ``lead_id``, ``as_of``, ``probability``, ``score``, ``tier``,
    ``is_mql`` and the reason columns when ``reasons`` (a reasons step of the scoring job) is given.

    Raises:
        LeadDataError: the rows or their events break the data contract (file-like message).
        ModelError: the model carries no feature builder, or the rows lack ``as_of``.
    """
    from leadml.data import contract
    from leadml.features.snapshots import to_utc
    from leadml.modeling.policy import apply_policy

    if as_of is None or str(as_of).strip() == "":
        raise ModelError('lead rows are scored at one as_of: pass params={"input": "leads", "as_of": "2026-03-01"}')
    stamp = to_utc(as_of)
    builder = scoring.builder
    recorded = getattr(scoring, "spec_hash", None)
    if builder is None or (recorded is not None and builder.spec_hash() != recorded):  # as loading.check_builder
        raise ModelError("the model carries no fitted FeatureBuilder of its own feature set (or this leadml builds "
                         "its features differently), so lead rows cannot be scored; retrain it")  # fmt: skip
    leads, events = split_lead_rows(pd.DataFrame(rows))
    if builder.flat_:
        leads = contract.validate_leads(leads.assign(created_at=stamp), SOURCE).drop(columns="created_at")
    else:
        leads = contract.validate_leads(leads, SOURCE)
    if events is not None:
        events = contract.validate_events(events, EVENTS_SOURCE, leads=leads)
    snapshots, features = _features(builder, leads, events, stamp)
    rules = None
    if scoring.needs_points:
        if builder.flat_:
            rules = scoring.rules_scores(None, None, None, flat=leads.set_index("lead_id").loc[snapshots["lead_id"]])
        else:
            rules = scoring.rules_scores(snapshots, leads, events)
        rules.index = features.index
        features = features.assign(**scoring.with_points(features, rules["points"]))
    p = scoring.probability(features) if len(features) else np.zeros(0)
    threshold, expected = scoring.threshold, None
    if hasattr(scoring, "lead_thresholds"):  # the MQL rule's threshold per lead, from its own row
        threshold, expected, _ = scoring.lead_thresholds(p, leads, snapshots["lead_id"], SOURCE)
    policy = apply_policy(p, threshold, scoring.tiers)
    out = pd.DataFrame({
        "lead_id": snapshots["lead_id"].to_numpy(dtype=object), "as_of": snapshots["as_of"].to_numpy(),
        "probability": p, "score": policy["score"].to_numpy(), "tier": policy["tier"].astype(str).to_numpy(dtype=object),
        "is_mql": policy["is_mql"].to_numpy(),
    })  # fmt: skip
    if expected is not None:
        out["expected_value"] = expected
    explained = None
    if reasons is not None and len(out):
        explained = _reasons(reasons, scoring, features, p, rules, snapshots["lead_id"])
    if explained is not None:
        for name in explained.columns:
            out[name] = explained[name].astype(object).to_numpy()
    return out


def _features(builder, leads: pd.DataFrame, events: pd.DataFrame | None, as_of: pd.Timestamp):
    """Snapshots and features of the leads at ``as_of``, as the scoring job builds them for one chunk."""
    from leadml.data.contract import LeadDataWarning
    from leadml.features.chunk import ColumnProblems, check_chunk, chunk_features

    problems = ColumnProblems()
    problems.add(builder, leads)
    for message, kind, count in problems.messages(SOURCE):
        warnings.warn(LeadDataWarning(message, kind, count), stacklevel=3)
    if builder.flat_:
        snapshots = pd.DataFrame({"lead_id": leads["lead_id"].to_numpy(dtype=object),
                                  "as_of": pd.DatetimeIndex([as_of]).repeat(len(leads))})  # fmt: skip
        return snapshots, builder.transform_flat(leads).reset_index(drop=True)
    import pyarrow as pa

    table = pa.Table.from_pandas(events, preserve_index=False) if events is not None else None
    snapshots, features = chunk_features(builder, leads, table, None, as_of, EVENTS_SOURCE)
    check_chunk(builder, snapshots, features, leads, table)
    return snapshots, features


def _reasons(step: Callable, scoring, features: pd.DataFrame, p: np.ndarray, rules: pd.DataFrame | None,
             lead_ids: pd.Series):  # fmt: skip
    """The reason columns as the scoring job gives them: SHAP sentences, or for a rules model the rules that
    fired; a step that takes ``lead_ids`` (leadml's own, to split ties at a top cut) gets them."""
    of_rules = getattr(step, "of_rules", None)
    if scoring.needs_points:
        if of_rules is None or rules is None:
            return None
        return of_rules(rules, p, scoring.threshold, **_ids(of_rules, lead_ids))
    return step(scoring, features, p, **_ids(step, lead_ids))


def _ids(function: Callable, lead_ids: pd.Series) -> dict:
    try:
        takes = "lead_ids" in inspect.signature(function).parameters
    except (TypeError, ValueError):  # a callable without a signature: called as the job's steps are
        takes = False
    return {"lead_ids": lead_ids} if takes else {}

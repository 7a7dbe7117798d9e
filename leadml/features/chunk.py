"""The features of one chunk of leads at one as_of, exactly as the model's FeatureBuilder makes them.

:meth:`FeatureBuilder.transform <leadml.features.build.FeatureBuilder.transform>` is the
definition. A batch job computes the same values faster by two routes that call the same code:

- behaviour: :func:`~leadml.features.behaviour.parquet.arrow_features`, the Arrow twin of
  :func:`~leadml.features.behaviour.features.behaviour_features` (the same
  :func:`~leadml.features.behaviour.features.timeline_features`, lead ids kept as dictionary codes);
- profile: the fitted :class:`~leadml.features.profile.ProfileEncoder` and
  :func:`~leadml.features.profile.add_derived_fields` applied to each *distinct* value (or pair
  of values for the derived fields) instead of to every lead, then spread back by integer codes.
  Both are functions of one value (one pair), so the result is the same; 100,000 leads have a few
  hundred distinct job titles, and the per-value Python work shrinks by that factor.

:func:`check_chunk` recomputes a sample of a chunk with ``FeatureBuilder.transform`` and raises
when any value differs, so a change in the builder can never turn into silent training/serving
skew. :func:`spec_differences` says in words how two feature specs differ.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

try:  # pandas >= 2.3: a frame from its blocks, as they are
    from pandas.api.internals import create_dataframe_from_blocks as _from_blocks
except ImportError:  # older pandas: by concat
    _from_blocks = None

from leadml.core.config import FeatureConfig, PQLConfig, ProfileConfig
from leadml.core.errors import ModelError
from leadml.core.memo import BoundedMemo
from leadml.features.behaviour.matrix import FeatureMatrix
from leadml.features.behaviour.parquet import arrow_features
from leadml.features.build import FeatureBuilder
from leadml.features.profile import add_derived_fields
from leadml.features.scoring_set import open_lead_columns
from leadml.features.snapshots import is_utc_ns, pql_times


def lead_fields(builder: FeatureBuilder) -> list[str]:
    """The leads columns the builder reads: profile columns and the sources of derived ones."""
    profile = builder.profile or ProfileConfig()
    sources = [c for c in (profile.job_title_column, profile.email_column) if c]
    return list(dict.fromkeys([*builder.profile_columns_, *sources, "job_level", "email_domain_kind"]))


def _codes(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """One integer per distinct combination of ``columns`` (missing values included): codes, first rows."""
    key = np.zeros(len(frame), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(frame[column], use_na_sentinel=False)
        key = key * (len(uniques) + 1) + codes
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return inverse.ravel(), first


def derived_fields(leads: pd.DataFrame, profile: ProfileConfig) -> pd.DataFrame:
    """:func:`add_derived_fields` of ``leads``, computed once per distinct (source, existing) pair."""
    out = leads.copy(deep=False)
    pairs = ((profile.job_title_column, "job_level", {"email_column": None}),
             (profile.email_column, "email_domain_kind", {"job_title_column": None}))  # fmt: skip
    for source, target, off in pairs:
        if not source or source not in leads.columns:
            continue
        keys = [source] + ([target] if target in leads.columns else [])
        inverse, first = _codes(leads, keys)
        distinct = leads[keys].iloc[first].reset_index(drop=True)
        options = {"job_title_column": profile.job_title_column, "email_column": profile.email_column, **off}
        derived = add_derived_fields(distinct, **options)[target].to_numpy(dtype=object)
        out[target] = pd.Series(derived[inverse], index=leads.index, dtype=object)
    return out


def profile_features(builder: FeatureBuilder, rows: pd.DataFrame) -> pd.DataFrame:
    """The encoder's output for ``rows`` (derived fields added), categoricals encoded per distinct value."""
    return pd.DataFrame(profile_arrays(builder, rows), index=rows.index)


def profile_arrays(builder: FeatureBuilder, rows: pd.DataFrame) -> dict[str, Any]:
    """:func:`profile_features` as its columns' arrays by name, in the encoder's order (each array its own).

    One call of the fitted encoder sees every categorical column's distinct values (columns padded
    to the same length by repeating a value); each row then takes its value's code.
    """
    encoder = builder.encoder_
    enriched = derived_fields(rows, builder.profile or ProfileConfig())
    missing = pd.Series(np.nan, index=rows.index)
    inverse, distinct = {}, {}
    for column in encoder.categorical_:
        values = enriched[column] if column in enriched.columns else missing
        inverse[column], uniques = pd.factorize(values, use_na_sentinel=False)
        distinct[column] = np.asarray(uniques, dtype=object)
    width = max([len(v) for v in distinct.values()] + [1])
    padded = {c: np.resize(v, width) if len(v) else np.full(width, np.nan, dtype=object) for c, v in distinct.items()}
    encoded = encoder.transform(pd.DataFrame(padded, index=pd.RangeIndex(width)))
    out: dict[str, object] = {}
    for column in encoder.columns_:
        if column in encoder.categorical_:
            codes = encoded[column].cat.codes.to_numpy()[: len(distinct[column])]
            out[column] = pd.Categorical.from_codes(codes[inverse[column]], dtype=encoded[column].dtype)
            continue
        values = enriched[column] if column in enriched.columns else missing
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")  # the encoder's numeric branch;
        out[column] = numbers.to_numpy()  # check_chunk holds the two together
        if column in encoder.missing_flags_:
            out[f"{column}__missing"] = numbers.isna().to_numpy().astype("float64")
    return {name: out[name] for name in encoder.feature_names_out_}


def _rows_at(leads: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """``leads.iloc[positions].reset_index(drop=True)``; ``leads`` itself when that is every row in order
    under a plain 0..n-1 index (the usual chunk, all of whose leads are open): the same rows, no copy."""
    index = leads.index
    whole = (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None
             and len(positions) == len(leads) and bool(np.array_equal(positions, np.arange(len(leads)))))  # fmt: skip
    return leads if whole else leads.iloc[positions].reset_index(drop=True)


def _ns(values: pd.Series | pd.api.extensions.ExtensionArray) -> np.ndarray:
    """Instants (a column or its array) as int64 ns UTC; a column already so is read as it is (the
    conversions would change nothing)."""
    if is_utc_ns(values.dtype):
        return (values.array if isinstance(values, pd.Series) else values).asi8
    return pd.to_datetime(pd.Series(values, copy=False), utc=True).dt.as_unit("ns").array.asi8


def _snapshot_keys(snapshots: pd.DataFrame | dict[str, Any], rows: pd.DataFrame) -> pa.Table:
    """``lead_id``, ``as_of`` (int64 ns) and the lead's ``created_at`` (int64 ns) of each snapshot, as Arrow.

    ``snapshots``: the frame, or its column arrays by name where :func:`open_lead_columns` gives them
    (the same values; a new frame's first column reads cost ~0.1 ms).
    """
    return pa.table({
        "lead_id": pa.array(np.asarray(snapshots["lead_id"], dtype=object), pa.string()),
        "as_of": pa.array(_ns(snapshots["as_of"]), pa.int64()),
        "created_at": pa.array(_ns(rows["created_at"]), pa.int64()),
    })  # fmt: skip


def empty_events() -> pa.Table:
    return pa.table({
        "lead_id": pa.array([], pa.string()),
        "timestamp": pa.array([], pa.timestamp("ns", tz="UTC")),
        "event_type": pa.array([], pa.dictionary(pa.int32(), pa.string())),
    })  # fmt: skip


def behaviour_options(builder: FeatureBuilder) -> dict:
    """The behaviour settings exactly as :meth:`FeatureBuilder._behaviour` passes them."""
    features = builder.features or FeatureConfig()
    return dict(
        windows=tuple(features.windows), attribute_counts=features.attribute_counts or None,
        decay_half_lives=tuple(features.decay_half_lives), scenarios=features.scenarios or None,
        velocity=features.velocity, event_values=features.event_values or None,
    )  # fmt: skip


@dataclass
class ColumnProblems:
    """Leads columns a model reads that a scoring table lacks, or holds in another type (counted over chunks).

    Both would otherwise turn into "missing" features without a word: a lacking column for every
    lead, a number written as text (``"1,200"``, ``"50-200"``) for each such row.
    """

    missing: list[str] = field(default_factory=list)
    mistyped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, builder: FeatureBuilder, leads: pd.DataFrame) -> None:
        """Look at one chunk of leads (validated, column names mapped)."""
        profile = builder.profile or ProfileConfig()
        encoder = builder.encoder_
        derived = {"job_level": profile.job_title_column, "email_domain_kind": profile.email_column}
        for column in encoder.columns_:
            source = derived.get(column)
            lacking = column not in leads.columns and not (source and source in leads.columns)
            if lacking and column not in self.missing:
                self.missing.append(column)
        tokens = {token.strip().lower() for token in profile.missing_tokens}
        for column in (c for c in encoder.numeric_ if c in leads.columns):
            raw = leads[column]
            if _is_numeric_dtype(raw):
                continue
            text = raw.astype(str).str.strip()
            given = raw.notna().to_numpy() & ~text.str.lower().isin(tokens).to_numpy()
            bad = given & pd.to_numeric(raw, errors="coerce").isna().to_numpy()
            if bad.any():
                self.mistyped[column] = self.mistyped.get(column, 0) + int(bad.sum())
                seen = self.examples.setdefault(column, [])
                seen.extend(v for v in pd.unique(text[bad])[: 3 - len(seen)] if v not in seen)

    def messages(self, source: str) -> list[tuple[str, str, int]]:
        """(message, kind, count) of each problem found, for :class:`~leadml.data.contract.LeadDataWarning`."""
        out = []
        if self.missing:
            names = ", ".join(map(repr, self.missing))
            out.append((f"{source}: the model reads column(s) {names}, which the leads table lacks: every lead "
                        "is scored with them missing (map your names in data.leads.columns)",
                        "missing_scoring_columns", len(self.missing)))  # fmt: skip
        for column, count in self.mistyped.items():
            shown = ", ".join(map(repr, self.examples.get(column, [])))
            out.append((f"{source}: column {column!r} is a number to the model, but {count:,} leads have text "
                        f"there (e.g. {shown}); they are scored with it missing", "mistyped_scoring_values", count))  # fmt: skip
        return out


def _is_numeric_dtype(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def chunk_pql_times(events: pa.Table | None, pql: PQLConfig | None, as_of: pd.Timestamp) -> pd.Series:
    """When the chunk's leads became PQLs (:func:`~leadml.features.snapshots.pql_times`), from events before as_of."""
    settings = pql or PQLConfig()
    if events is None or not events.num_rows:
        return pql_times(None, settings.event_types, settings.min_events)
    types = pc.cast(events.column("event_type"), pa.string())
    before = pc.less(events.column("timestamp"), pa.scalar(as_of.value, pa.timestamp("ns", tz="UTC")))
    mask = pc.and_(pc.is_in(types, value_set=pa.array(list(settings.event_types), pa.string())), before)
    wanted = events.filter(mask)
    product = pd.DataFrame({"lead_id": pc.cast(wanted.column("lead_id"), pa.string()).to_numpy(zero_copy_only=False),
                            "timestamp": pd.to_datetime(wanted.column("timestamp").to_numpy(), utc=True),
                            "event_type": pc.cast(wanted.column("event_type"), pa.string()).to_numpy(zero_copy_only=False)})  # fmt: skip
    return pql_times(product, settings.event_types, settings.min_events)


def chunk_features(
    builder: FeatureBuilder,
    leads: pd.DataFrame,
    events: pa.Table | None,
    outcomes: pd.DataFrame | None,
    as_of: pd.Timestamp,
    source: str = "<events>",
    *,
    target: str = "won",
    pql: PQLConfig | None = None,
    profile_of: Callable[[pd.DataFrame], dict[str, Any]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Snapshots (``lead_id``, ``as_of``) of the prospects of a chunk and their features.

    ``profile_of`` turns the snapshots' lead rows into their profile features, as arrays by name
    (default: :func:`profile_arrays`; the server passes its per-lead cache, which gives the same arrays).

    ``leads`` are validated leads (any order), ``events`` their events as Arrow (``lead_id``
    plain or dictionary text), ``outcomes`` their closings and stage times before as_of. A lead
    past ``target`` is no prospect (for ``pql``, its product events in ``events`` say when it became
    one); the snapshots' ``attrs["left_out"]`` counts those left out.
    """
    pql_at = chunk_pql_times(events, pql, as_of) if target == "pql" else None
    snapshots, positions, columns = open_lead_columns(leads, outcomes, as_of, target=target, pql=pql_at)
    if positions is None:
        positions = pd.Index(leads["lead_id"]).get_indexer(snapshots["lead_id"])
    rows = _rows_at(leads, positions)
    profile = profile_arrays(builder, rows) if profile_of is None else profile_of(rows)
    keys = _snapshot_keys(snapshots if columns is None else columns, rows)
    beside = functools.partial(_features_frame, builder.feature_names_, profile, rows.index)
    features, _ = arrow_features(keys, events if events is not None else empty_events(), builder.event_types_,
                                 source, frame_of=beside, **behaviour_options(builder))  # fmt: skip
    return snapshots, features


_NAMES: BoundedMemo[pd.Index] = BoundedMemo(64)  # the feature names of each builder seen, as an Index


def _names_index(names: Sequence[str]) -> pd.Index:
    """``names`` as an Index, made once per list of names (comparing an Index is cheaper than a list)."""
    key = tuple(names)
    return _NAMES.get(key, lambda: pd.Index(key))


def _features_frame(
    names: Sequence[str], profile: dict[str, Any], index: pd.Index, behaviour: FeatureMatrix
) -> pd.DataFrame:
    """``pd.concat([profile frame, behaviour.frame(index)], axis=1)[names]``, made once from its blocks.

    The profile arrays and the behaviour matrix are this call's own: they become the frame's blocks
    as they are (a concat and a frame per part cost a lead ~0.3 ms). Where pandas lacks
    ``create_dataframe_from_blocks``, or the parts are not the names in some order, by concat.
    """
    placed = _placements(tuple(names), tuple(profile), tuple(behaviour.names))
    if placed is None or _from_blocks is None:
        features = pd.concat([pd.DataFrame(profile, index=index), behaviour.frame(index)], axis=1)
        return features if features.columns.equals(_names_index(names)) else features[list(names)]
    at_profile, at_behaviour = placed
    blocks = [(_block(profile[name]), at) for name, at in zip(profile, at_profile)]
    blocks.append((behaviour.matrix, at_behaviour))
    return _from_blocks(blocks, index=index, columns=_names_index(names).copy())


def _block(values: Any) -> Any:
    """A column's array as a block holds it: a pandas array as it is, a numpy one as a row of a 2-D array."""
    return values.reshape(1, -1) if isinstance(values, np.ndarray) else values


_PLACEMENTS: BoundedMemo[tuple] = BoundedMemo(64)


def _placements(names: tuple[str, ...], profile: tuple[str, ...], behaviour: tuple[str, ...]) -> tuple | None:
    """Each profile column's position in ``names`` (one array each) and the behaviour columns' positions
    (one array); None unless the two parts are ``names`` in some order, each name once."""

    def make() -> tuple:
        where = {name: k for k, name in enumerate(names)}
        if len(where) != len(names) or sorted([*profile, *behaviour]) != sorted(names):
            return ()
        return [np.array([where[name]]) for name in profile], np.array([where[name] for name in behaviour])

    found = _PLACEMENTS.get((names, profile, behaviour), make)
    return found or None


def check_chunk(
    builder: FeatureBuilder,
    snapshots: pd.DataFrame,
    features: pd.DataFrame,
    leads: pd.DataFrame,
    events: pa.Table | None,
    *,
    sample: int = 200,
) -> None:
    """Recompute the first ``sample`` rows with ``FeatureBuilder.transform``; raise if any value differs."""
    head = snapshots.head(sample)
    if head.empty:
        return
    mine = leads.loc[leads["lead_id"].isin(head["lead_id"])]
    their_events = None
    if events is not None:
        wanted = pa.array(head["lead_id"].to_numpy(dtype=object), pa.string())
        their_events = events.filter(events_of(events, wanted)).to_pandas()
        their_events["lead_id"] = their_events["lead_id"].astype(str)
    expected = builder.transform(head, mine, their_events)
    for name in builder.feature_names_:
        got, want = features[name].iloc[: len(head)], expected[name]
        if isinstance(want.dtype, pd.CategoricalDtype):
            same = got.astype(str).to_numpy() == want.astype(str).to_numpy()
        else:
            a, b = got.to_numpy(dtype=float), want.to_numpy(dtype=float)
            same = (a == b) | (np.isnan(a) & np.isnan(b))
        if not same.all():
            row = int(np.flatnonzero(~same)[0])
            raise ModelError(
                f"feature {name!r} of lead {head['lead_id'].iloc[row]!r}: the batch path gives "
                f"{got.iloc[row]!r}, FeatureBuilder.transform {want.iloc[row]!r}; this is a leadml bug, "
                "please report it"
            )


def events_of(events: pa.Table, lead_ids: pa.Array) -> pa.ChunkedArray:
    """Which events belong to one of ``lead_ids`` (a boolean mask, never null), as
    ``pc.is_in(lead_id as text, lead_ids)`` says: a dictionary column tests each distinct id once and
    takes the answers by its indices, instead of making every event's id a string first."""
    parts = []
    for chunk in events.column("lead_id").chunks:
        if pa.types.is_dictionary(chunk.type):
            inside = pc.fill_null(pc.is_in(chunk.dictionary.cast(pa.string()), value_set=lead_ids), False)
            parts.append(pc.fill_null(pc.take(inside, chunk.indices), False))
        else:
            parts.append(pc.fill_null(pc.is_in(chunk.cast(pa.string()), value_set=lead_ids), False))
    return pa.chunked_array(parts, pa.bool_())


def spec_differences(expected: dict, found: dict) -> list[str]:
    """How the feature spec ``found`` differs from the model's ``expected`` spec, in short phrases."""
    notes = []
    for key in sorted(set(expected.get("settings", {})) | set(found.get("settings", {}))):
        a, b = expected.get("settings", {}).get(key), found.get("settings", {}).get(key)
        if a != b:
            notes.append(f"features.{key}: model {a!r}, features {b!r}")
    a_names = [name for name, _ in expected.get("features", [])]
    b_names = [name for name, _ in found.get("features", [])]
    lacking = [n for n in a_names if n not in b_names]
    extra = [n for n in b_names if n not in a_names]
    if lacking:
        notes.append(f"{len(lacking)} model features missing (first: {lacking[:5]})")
    if extra:
        notes.append(f"{len(extra)} features the model does not know (first: {extra[:5]})")
    if not lacking and not extra and a_names != b_names:
        notes.append("the same features in another order")
    for key in ("event_types", "flat"):
        if expected.get(key) != found.get(key):
            notes.append(f"{key}: model {expected.get(key)!r}, features {found.get(key)!r}")
    levels_a, levels_b = expected.get("levels", {}), found.get("levels", {})
    for column in sorted(set(levels_a) | set(levels_b)):
        if levels_a.get(column) != levels_b.get(column):
            notes.append(f"levels of {column!r}: model {levels_a.get(column)!r}, features {levels_b.get(column)!r}")
    kinds_a, kinds_b = dict(map(tuple, expected.get("features", []))), dict(map(tuple, found.get("features", [])))
    for name in a_names:
        if name in kinds_b and kinds_a[name] != kinds_b[name]:
            notes.append(f"{name!r} is {kinds_a[name]} in the model, {kinds_b[name]} in the features")
    return notes or ["the specs differ in a detail (compare FeatureBuilder.spec() of both)"]

"""The feature set: profile + behaviour features for snapshots, the same code at training and scoring.

:class:`FeatureBuilder` is fitted once on the training snapshots (it learns the event types and the
profile levels) and then turns any snapshots into exactly the same columns, so a lead scored at as_of
T gets the features its training snapshot at T had. :func:`build_trainset` runs a whole pipeline
config into snapshot rows with features, label and split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from leadml.core.config import FLAT_HAS_NO_TIME, FeatureConfig, PipelineConfig, ProfileConfig
from leadml.core.errors import ConfigError, LeadDataError
from leadml.core.pickling import stable_pickle
from leadml.data.contract import LABEL_COLUMN
from leadml.data.sources import PipelineData, load_pipeline_data
from leadml.features.metadata import FeatureInfo, metadata_frame
from leadml.features.profile import ProfileEncoder, add_derived_fields
from leadml.features.snapshots import (
    LEFT_OUT,
    build_snapshots,
    lead_weights,
    pql_times,
    replay_snapshots,
    stratified_split,
    time_split,
)

KEY_COLUMNS = ("lead_id", "as_of")
FRAME_COLUMNS = ("split", "weight")  # the training frame's own columns: never a profile feature
CONTRACT_LEAD_COLUMNS = ("lead_id", "created_at")


def profile_columns(
    frame: pd.DataFrame,
    profile: ProfileConfig,
    *,
    reserved: Sequence[str] = (),
    leaky: Sequence[str] = (),
    borderline: Sequence[str] = (),
) -> list[str]:
    """The profile columns to use: configured ones, or every column but keys, label, ids and leaky ones.

    Leaky columns are left out unless ``profile.allow_leaky`` names them; borderline ones unless
    ``profile.include_borderline`` is set; raw free-text fields that feed derived ones (job title,
    e-mail) are left out because their derived field carries them.
    """
    if profile.columns is not None:
        candidates = list(profile.columns)
    else:
        raw_text = [c for c in (profile.job_title_column, profile.email_column) if c]
        skip = set(reserved) | {LABEL_COLUMN, *CONTRACT_LEAD_COLUMNS, *KEY_COLUMNS, *FRAME_COLUMNS, *raw_text}
        candidates = [c for c in frame.columns if c not in skip]
    allowed = set(profile.allow_leaky)
    banned = {c for c in leaky if c not in allowed} | set(profile.exclude)
    if not profile.include_borderline:
        banned |= set(borderline)
    return [c for c in candidates if c not in banned]


class FeatureBuilder(BaseEstimator):
    """Fitted feature set: behaviour windows and event types plus the profile encoder.

    Parameters:
        features: behaviour settings (windows, event types, attribute counts, decay, scenarios).
        profile: profile settings (columns, rare levels, derived fields).
        leaky / borderline: column names that must not (or, for borderline, may not) become features.
    """

    def __init__(
        self,
        features: FeatureConfig | None = None,
        profile: ProfileConfig | None = None,
        leaky: Sequence[str] = (),
        borderline: Sequence[str] = (),
        id_columns: Sequence[str] = (),
    ):
        self.features = features
        self.profile = profile
        self.leaky = leaky
        self.borderline = borderline
        self.id_columns = id_columns

    def __getstate__(self) -> dict:
        stable_pickle([self.features, self.profile])  # the same bytes under any PYTHONHASHSEED
        return super().__getstate__()

    # -- three-table data -------------------------------------------------------------------
    def fit(self, snapshots: pd.DataFrame, leads: pd.DataFrame, events: pd.DataFrame | None = None) -> FeatureBuilder:
        """Learn the event types (when not configured) and the profile levels of these snapshots' leads."""
        features = self.features or FeatureConfig()
        profile = self.profile or ProfileConfig()
        self.flat_ = False
        if features.event_types is not None:
            self.event_types_ = list(features.event_types)
        elif events is not None and len(events):
            self.event_types_ = sorted(map(str, pd.unique(events["event_type"].astype(str))))
        else:
            self.event_types_ = []
        enriched = add_derived_fields(leads, profile.job_title_column, profile.email_column)
        self.profile_columns_ = profile_columns(
            enriched, profile, leaky=self.leaky, borderline=self.borderline, reserved=self.id_columns
        )
        rows = self._profile_rows(snapshots, enriched)
        self.encoder_ = ProfileEncoder(
            self.profile_columns_,
            min_frequency=profile.min_frequency,
            max_levels=profile.max_levels,
            missing_tokens=profile.missing_tokens,
        ).fit(rows)
        probe, behaviour_info = self._behaviour(snapshots.head(0), leads, events)
        self.feature_info_ = self.encoder_.feature_info() + behaviour_info
        self.feature_names_ = [info.name for info in self.feature_info_]
        return self

    def _profile_rows(self, snapshots: pd.DataFrame, enriched: pd.DataFrame) -> pd.DataFrame:
        by_lead = enriched.set_index("lead_id")
        positions = by_lead.index.get_indexer(snapshots["lead_id"])
        rows = by_lead.iloc[np.where(positions < 0, 0, positions)].reset_index(drop=True) if len(by_lead) else by_lead
        rows = rows.copy()
        rows.loc[positions < 0, :] = np.nan
        rows.index = snapshots.index
        return rows

    def _behaviour(self, snapshots: pd.DataFrame, leads: pd.DataFrame, events: pd.DataFrame | None):
        from leadml.features.behaviour.features import behaviour_features

        features = self.features or FeatureConfig()
        if events is None:
            events = pd.DataFrame(
                {
                    "lead_id": pd.Series([], dtype=str),
                    "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
                    "event_type": pd.Categorical([]),
                }
            )
        return behaviour_features(
            snapshots[list(KEY_COLUMNS)],
            events,
            leads,
            windows=tuple(features.windows),
            event_types=self.event_types_,
            attribute_counts=features.attribute_counts or None,
            decay_half_lives=tuple(features.decay_half_lives),
            scenarios=features.scenarios or None,
            velocity=features.velocity,
            event_values=features.event_values or None,
        )

    def transform(
        self, snapshots: pd.DataFrame, leads: pd.DataFrame, events: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Features of each snapshot (same index and order), exactly the fitted columns."""
        check_is_fitted(self, "feature_info_")
        profile = self.profile or ProfileConfig()
        enriched = add_derived_fields(leads, profile.job_title_column, profile.email_column)
        profile_part = self.encoder_.transform(self._profile_rows(snapshots, enriched))
        behaviour_part, _ = self._behaviour(snapshots, leads, events)
        behaviour_part.index = snapshots.index
        return pd.concat([profile_part, behaviour_part], axis=1)[self.feature_names_]

    # -- flat data -------------------------------------------------------------------------
    def fit_flat(self, flat: pd.DataFrame) -> FeatureBuilder:
        """Learn the profile levels of a flat table (behaviour already aggregated in columns)."""
        features = self.features or FeatureConfig()
        profile = self.profile or ProfileConfig()
        self.flat_ = True
        self.event_types_ = []
        self.profile_columns_ = profile_columns(
            flat, profile, leaky=self.leaky, borderline=self.borderline, reserved=self.id_columns
        )
        self.encoder_ = ProfileEncoder(
            self.profile_columns_,
            min_frequency=profile.min_frequency,
            max_levels=profile.max_levels,
            missing_tokens=profile.missing_tokens,
            behaviour_columns=tuple(features.flat_behaviour),
        ).fit(flat)
        self.feature_info_ = self.encoder_.feature_info()
        self.feature_names_ = [info.name for info in self.feature_info_]
        return self

    def transform_flat(self, flat: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "feature_info_")
        return self.encoder_.transform(flat)[self.feature_names_]

    # -- description -----------------------------------------------------------------------
    def spec(self) -> dict:
        """What the fitted feature set is, as plain data (columns, kinds, levels, settings)."""
        check_is_fitted(self, "feature_info_")
        return {
            "flat": self.flat_,
            "features": [[i.name, i.kind] for i in self.feature_info_],
            "event_types": self.event_types_,
            "levels": self.encoder_.categorical_,
            "settings": (self.features or FeatureConfig()).model_dump(mode="json"),
        }

    def spec_hash(self) -> str:
        """A short hash of :meth:`spec`: a model refuses features built under another spec."""
        text = json.dumps(self.spec(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def metadata(self) -> pd.DataFrame:
        check_is_fitted(self, "feature_info_")
        return metadata_frame(self.feature_info_)


@dataclass(frozen=True)
class TrainSet:
    """Snapshot rows with ``lead_id``, ``as_of``, ``split``, ``converted``, ``weight`` and every feature column.

    ``left_out`` counts the snapshots not taken because the lead had closed (``closed``) or was past
    the target stage (``past_target``) at their as_of; the frame's ``purged`` split holds the rows the
    time split dropped.
    """

    frame: pd.DataFrame
    builder: FeatureBuilder
    data: PipelineData
    left_out: dict[str, int] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return list(self.builder.feature_names_)

    @property
    def feature_info(self) -> list[FeatureInfo]:
        return list(self.builder.feature_info_)

    def part(self, *splits: str) -> pd.DataFrame:
        return self.frame.loc[self.frame["split"].isin(splits)]


def target_pql_times(config: PipelineConfig, events: pd.DataFrame | None) -> pd.Series | None:
    """When each lead became a PQL, when the pipeline's target is ``pql`` (else None: not needed)."""
    if config.snapshots.target != "pql":
        return None
    pql = config.stages.pql
    return pql_times(events, pql.event_types, pql.min_events)


def split_method(config: PipelineConfig, data: PipelineData) -> str:
    """The split a training set gets: ``split.method``, else ``time`` for three-table data, ``stratified`` for flat.

    Raises:
        ConfigError: ``split.method: time`` on flat data (one row per lead, no time to split on).
    """
    method = config.split.method
    if data.flat is not None:
        if method == "time":
            raise ConfigError(f"{config.source_path or config.name}: split.method: {FLAT_HAS_NO_TIME}")
        return "stratified"
    return method or "time"


def lead_stratified_split(
    snapshots: pd.DataFrame, *, test_fraction: float = 0.2, validation_fraction: float = 0.2, seed: int = 0
) -> pd.Series:
    """A seeded stratified split of the *leads* of some snapshots; each snapshot follows its lead.

    A lead is a positive when any of its labelled snapshots converted; the leads are split by
    :func:`~leadml.features.snapshots.stratified_split`, so the fractions are shares of leads and no
    lead's snapshots straddle two parts. Snapshots without a label get ``censored``.

    Raises:
        LeadDataError: too few leads of a class to stratify (each part needs one of each).
    """
    split = pd.Series("censored", index=snapshots.index, dtype=object)
    labelled = snapshots[LABEL_COLUMN].notna().to_numpy()
    if not labelled.any():
        return split
    per_lead = snapshots.loc[labelled].groupby("lead_id", sort=True)[LABEL_COLUMN].max()
    try:
        parts = stratified_split(per_lead, test_fraction=test_fraction, validation_fraction=validation_fraction,
                                 seed=seed)  # fmt: skip
    except ValueError as exc:
        counts = per_lead.value_counts().to_dict()
        raise LeadDataError(
            f"split.method stratified: {int(counts.get(1.0, 0))} converted and {int(counts.get(0.0, 0))} other "
            f"leads are too few to split stratified ({exc}); use more data, or split.method time"
        ) from exc
    by_lead = pd.Series(parts.to_numpy(), index=per_lead.index)
    split[labelled] = by_lead.reindex(snapshots.loc[labelled, "lead_id"]).to_numpy()
    return split


def make_snapshots(config: PipelineConfig, data: PipelineData) -> pd.DataFrame:
    """Snapshots with label, split and weight for three-table data, under the config's policy.

    ``frame.attrs["left_out"]`` counts the candidates not taken (``closed``, ``past_target``).
    """
    snap = config.snapshots
    snapshots = build_snapshots(
        data.leads,
        data.outcomes,
        policy=snap.policy,
        days_after_creation=snap.days_after_creation,
        every_days=snap.every_days,
        max_per_lead=snap.max_per_lead,
        as_of=snap.as_of,
        horizon_days=snap.horizon_days,
        data_end=data.data_end,
        stage=snap.target,
        pql=target_pql_times(config, data.events),
    )
    left_out = dict(snapshots.attrs.get(LEFT_OUT, {}))
    if split_method(config, data) == "stratified":
        snapshots["split"] = lead_stratified_split(
            snapshots,
            test_fraction=config.split.test_fraction,
            validation_fraction=config.split.validation_fraction,
            seed=config.split.seed,
        )
    else:
        snapshots["split"] = time_split(
            snapshots,
            test_fraction=config.split.test_fraction,
            validation_fraction=config.split.validation_fraction,
            gap_days=config.split.gap_days,
            horizon_days=snap.horizon_days,
        )
    if snap.weighting == "lead":
        snapshots["weight"] = lead_weights(snapshots, snapshots["split"])
    else:
        snapshots["weight"] = 1.0
    snapshots.attrs[LEFT_OUT] = left_out
    return snapshots


def nightly_replay(config: PipelineConfig, trainset: TrainSet, *, max_rows: int = 1_000_000) -> pd.DataFrame | None:
    """The validation period's nightly scoring runs rebuilt: every open lead every night, with its features.

    ``lead_id``, ``as_of``, ``created_at`` and the fitted feature columns; ``attrs["fraction"]`` is the
    share of leads kept under ``max_rows`` (see :func:`~leadml.features.snapshots.replay_snapshots`).
    Under ``mql.capacity_by`` / ``mql.value_column`` each night also carries its lead's group and value
    (``mql__group``, ``mql__value``: :mod:`leadml.data.mql_columns`). None for flat data or a training set without labelled validation snapshots. The capacity policy
    counts the MQL spells these nights would start.
    """
    data = trainset.data
    frame = trainset.frame
    valid = frame.loc[(frame["split"] == "validation").to_numpy() & frame[LABEL_COLUMN].notna().to_numpy()]
    if data.flat is not None or not len(valid):
        return None
    nights = replay_snapshots(
        data.leads, data.outcomes, valid["as_of"].min(), valid["as_of"].max(), stage=config.snapshots.target,
        pql=target_pql_times(config, data.events), max_rows=max_rows,
    )  # fmt: skip
    features = trainset.builder.transform(nights[["lead_id", "as_of"]], data.leads, data.events)
    parts = [nights, features]
    mql = config.mql
    if mql.capacity_by is not None or mql.value_column is not None:  # each night carries its lead's group / value
        from leadml.data.mql_columns import mql_columns_of

        columns = mql_columns_of(data.leads, nights["lead_id"], mql.capacity_by, mql.value_column)
        parts.append(columns.set_axis(nights.index))
    replay = pd.concat(parts, axis=1)
    replay.attrs["fraction"] = nights.attrs["fraction"]
    return replay


def build_trainset(config: PipelineConfig, data: PipelineData | None = None) -> TrainSet:
    """Run a pipeline config into a training set: snapshots, features, label and split.

    The feature builder is fitted on the ``train`` rows only, so rare-level grouping never sees the
    validation or test rows.
    """
    data = data if data is not None else load_pipeline_data(config.data)
    builder = FeatureBuilder(
        config.features, config.profile, leaky=data.leaky, borderline=data.borderline, id_columns=data.id_columns
    )
    flat = data.flat
    if flat is not None:  # data.is_flat
        split_method(config, data)  # stratified: flat data has no time
        split = stratified_split(
            flat[LABEL_COLUMN],
            test_fraction=config.split.test_fraction,
            validation_fraction=config.split.validation_fraction,
            seed=config.split.seed,
        )
        builder.fit_flat(flat.loc[(split == "train").to_numpy()])
        features = builder.transform_flat(flat)
        keys = pd.DataFrame({"lead_id": flat["lead_id"], "as_of": pd.NaT, "split": split.to_numpy()})
        frame = pd.concat([keys, flat[[LABEL_COLUMN]], features], axis=1)
        return TrainSet(frame=frame, builder=builder, data=data)
    snapshots = make_snapshots(config, data)
    train_rows = snapshots.loc[(snapshots["split"] == "train").to_numpy()]
    builder.fit(train_rows if len(train_rows) else snapshots, data.leads, data.events)
    features = builder.transform(snapshots, data.leads, data.events)
    frame = pd.concat([snapshots[["lead_id", "as_of", "split", LABEL_COLUMN, "weight"]], features], axis=1)
    return TrainSet(frame=frame, builder=builder, data=data, left_out=dict(snapshots.attrs.get(LEFT_OUT, {})))

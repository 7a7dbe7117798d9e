"""Features of the open leads at one as_of: the rows a batch scoring job (or `leadml features`) needs.

It runs the same :class:`~leadml.features.build.FeatureBuilder` as training, on a fixed-as_of
snapshot of every lead that exists and is not closed by then, so a lead scored at T gets exactly the
features its training snapshot at T had.
"""

from __future__ import annotations

import os

import pandas as pd

from leadml.core.config import PipelineConfig, load_pipeline, parse_pipeline
from leadml.core.errors import ConfigError
from leadml.data import contract
from leadml.data.sources import PipelineData, load_pipeline_data
from leadml.features.build import FeatureBuilder, make_snapshots
from leadml.features.snapshots import LEFT_OUT, build_snapshots, to_utc


def open_lead_snapshots(
    data: PipelineData, as_of: pd.Timestamp, *, target: str = "won", pql: pd.Series | None = None
) -> pd.DataFrame:
    """One row per prospect at ``as_of``: created by then, not closed and not past ``target`` before it.

    ``frame.attrs["left_out"]`` counts the leads left out as ``closed`` and as ``past_target``
    (already at the target stage or a later one: no longer a prospect to qualify).
    """
    snapshots = build_snapshots(data.leads, data.outcomes, policy="fixed", as_of=as_of, horizon_days=1,
                                data_end=as_of, stage=target, pql=pql)  # fmt: skip
    left_out = dict(snapshots.attrs.get(LEFT_OUT, {}))
    snapshots = snapshots[["lead_id", "as_of"]].reset_index(drop=True)
    snapshots.attrs[LEFT_OUT] = left_out
    return snapshots


def fitted_builder(config: PipelineConfig, data: PipelineData, fallback: pd.DataFrame) -> FeatureBuilder:
    """A feature builder fitted as training would fit it (on the train snapshots when there are outcomes)."""
    builder = FeatureBuilder(config.features, config.profile)
    if data.outcomes is not None and len(data.outcomes):
        snapshots = make_snapshots(config, data)
        train = snapshots.loc[(snapshots["split"] == "train").to_numpy()]
        if len(train):
            return builder.fit(train, data.leads, data.events)
    return builder.fit(fallback, data.leads, data.events)


def features_at(
    pipeline: str | os.PathLike | PipelineConfig | None,
    leads_path: str | os.PathLike | None,
    events_path: str | os.PathLike | None,
    as_of: object,
    *,
    drop_orphans: bool = False,
    builder: FeatureBuilder | None = None,
    data: PipelineData | None = None,
) -> pd.DataFrame:
    """Features of every open lead at ``as_of``: ``lead_id``, ``as_of`` and the feature columns.

    With no pipeline, ``leads_path`` (and optionally ``events_path``) are read with default windows
    and every event type present. ``data`` skips loading when the caller has the tables already.
    """
    stamp = to_utc(as_of)
    if pipeline is None:
        if leads_path is None:
            raise ConfigError("give a pipeline file or --leads (and --events)")
        config = parse_pipeline({"name": "features"})
        leads = contract.load_leads(leads_path)
        events = (
            contract.load_events(events_path, leads=leads, on_orphans="drop" if drop_orphans else "error")
            if events_path
            else None
        )
        data = PipelineData(leads=leads, events=events)
    else:
        config = pipeline if isinstance(pipeline, PipelineConfig) else load_pipeline(pipeline)
        if config.is_flat:
            raise ConfigError(f"{config.name}: a flat pipeline has no events; its table already holds the features")
        data = data if data is not None else load_pipeline_data(config.data, need_outcomes=False)
    snapshots = open_lead_snapshots(data, stamp)
    if builder is None:
        builder = fitted_builder(config, data, snapshots)
    features = builder.transform(snapshots, data.leads, data.events)
    return pd.concat([snapshots, features], axis=1)

"""Simulated leads with a fitted feature builder: the set-up the chunk tests share."""

from __future__ import annotations

import warnings

import pandas as pd

from leadml.core.config import parse_pipeline
from leadml.data.sources import PipelineData, load_pipeline_data
from leadml.features.build import FeatureBuilder
from leadml.features.scoring_set import fitted_builder, open_lead_snapshots
from leadml.features.snapshots import to_utc


def simulated_with_builder(
    name: str, leads: int, seed: int, as_of: str
) -> tuple[PipelineData, FeatureBuilder, pd.Timestamp]:
    """(data with outcomes, a builder fitted on the leads open at ``as_of``, as_of) of simulated leads."""
    config = parse_pipeline({"name": name, "data": {"simulator": {"leads": leads, "seed": seed}}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_pipeline_data(config.data)
        stamp = to_utc(as_of)
        builder = fitted_builder(config, data, open_lead_snapshots(data, stamp))
    return data, builder, stamp

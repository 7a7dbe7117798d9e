"""Behaviour (implicit) features: what a lead did before as_of, counted in windows.

``features`` builds them from frames, ``matrix`` fills the float32 matrix, ``parquet`` and
``partitioned`` stream them from Parquet events, ``text`` names and words each column.
"""

from leadml.features.behaviour.features import (
    AttributeCounts,
    Scenarios,
    behaviour_features,
    parse_step,
    present_event_types,
    timeline_features,
)

__all__ = [
    "AttributeCounts",
    "Scenarios",
    "behaviour_features",
    "parse_step",
    "present_event_types",
    "timeline_features",
]

"""What a scoring job did: rows, tiers, MQLs, timing, drift and notes (the same for every engine)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["ScoreSummary"]


@dataclass
class ScoreSummary:
    """What a scoring job did."""

    out: Path
    as_of: pd.Timestamp
    model_uri: str
    model_name: str
    model_version: str
    rows: int = 0
    leads_read: int = 0
    chunks: int = 0
    seconds: float = 0.0
    tiers: dict[str, int] = field(default_factory=dict)
    mql: int = 0
    orphans: int = 0
    streamed: bool = False
    reasons: bool = False
    drift: pd.DataFrame | None = None
    drift_path: Path | None = None
    unseen: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    history_path: Path | None = None

    @property
    def leads_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")

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
    out_of_range: dict[str, int] = field(default_factory=dict)  # leads by the first feature outside training's range
    past_target: int = 0  # leads left out: already at the target stage or past it
    streamed: bool = False
    reasons: bool = False
    drift: pd.DataFrame | None = None
    drift_path: Path | None = None
    unseen: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    history_path: Path | None = None

    @property
    def out_of_range_leads(self) -> int:
        """Scored leads with a feature (their age, often) outside what training saw."""
        return sum(self.out_of_range.values())

    def out_of_range_note(self) -> str | None:
        """One sentence on the out-of-range leads, the features that put most of them there first."""
        if not self.out_of_range:
            return None
        common = sorted(self.out_of_range.items(), key=lambda item: (-item[1], item[0]))
        shown = ", ".join(f"{name} {count:,}" for name, count in common[:5])
        return (f"{self.out_of_range_leads:,} of {self.rows:,} leads lie outside what training saw "
                f"(column out_of_range; by first feature: {shown}); read their scores with care")  # fmt: skip

    @property
    def leads_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")

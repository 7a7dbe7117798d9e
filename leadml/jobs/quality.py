"""Data quality of a scored batch: what the scoring summary reports beside the scores.

Unseen categories are not an error at scoring time: the model maps them to ``other`` (or
``missing``), and the summary counts them per column so that a new lead source or a renamed country
is noticed. A column that varied in training but is all missing or constant in the batch (a broken
export, a field no longer filled in) is reported too: the model still scores, on less information.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadml.features.profile import MISSING, OTHER


class QualityCounter:
    """Counts, chunk by chunk, other/missing levels per categorical column and what each column holds."""

    def __init__(self, reference: dict | None = None):
        self.reference = reference
        self.rows = 0
        self.other: dict[str, int] = {}
        self.missing: dict[str, int] = {}
        self.non_null: dict[str, int] = {}
        self.low: dict[str, object] = {}
        self.high: dict[str, object] = {}

    def add(self, features: pd.DataFrame) -> None:
        self.rows += len(features)
        for column in features.columns:
            values = features[column]
            if isinstance(values.dtype, pd.CategoricalDtype):
                self.other[column] = self.other.get(column, 0) + int((values == OTHER).sum())
                self.missing[column] = self.missing.get(column, 0) + int((values == MISSING).sum())
                present = values[(values != MISSING) & values.notna()]
                codes = present.cat.codes.to_numpy()
            else:
                codes = values.to_numpy(dtype=float)
                codes = codes[np.isfinite(codes)]
            self.non_null[column] = self.non_null.get(column, 0) + len(codes)
            if len(codes):
                low, high = codes.min(), codes.max()
                self.low[column] = min(self.low.get(column, low), low)
                self.high[column] = max(self.high.get(column, high), high)

    def varied_in_training(self, column: str) -> bool:
        """True when the training reference saw more than one bin or level of the column."""
        spec = (self.reference or {}).get("columns", {}).get(column)
        return spec is not None and sum(share > 0 for share in spec.get("shares", [])) > 1

    def notes(self) -> list[str]:
        """Sentences for the scoring summary: unseen levels, and informative columns now empty or constant."""
        notes = []
        unseen = {c: n for c, n in self.other.items() if n}
        if unseen:
            listed = ", ".join(f"{c} {n:,}" for c, n in sorted(unseen.items(), key=lambda kv: -kv[1]))
            notes.append(f"values mapped to 'other' (a level unseen in training, or too rare to keep): {listed}")
        empty = [c for c, n in self.non_null.items() if n == 0 and self.varied_in_training(c)]
        constant = [
            c
            for c, n in self.non_null.items()
            if n > 0 and self.low.get(c) == self.high.get(c) and self.varied_in_training(c) and self.rows > 1
        ]
        if empty:
            notes.append(f"columns that varied in training are all missing in this batch: {', '.join(empty)}")
        if constant:
            notes.append(f"columns that varied in training are constant in this batch: {', '.join(constant)}")
        return notes

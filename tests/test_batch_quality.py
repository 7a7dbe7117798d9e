"""The scoring summary's data quality: unseen levels counted, informative columns gone empty or constant."""

import numpy as np
import pandas as pd

from leadml.jobs.quality import QualityCounter
from leadml.modeling.drift_reference import make_reference


def _frame(levels, budget, n=6):
    return pd.DataFrame(
        {
            "source": pd.Categorical(levels, categories=["web", "ads", "other", "missing"]),
            "budget": np.asarray(budget, dtype=float),
            "flag": np.zeros(n),
        }
    )


def test_unseen_levels_are_counted_and_emptied_columns_reported():
    training = _frame(["web", "ads", "web", "ads", "web", "missing"], [1, 5, 9, 3, np.nan, 7])
    counter = QualityCounter(make_reference(training, np.linspace(0, 1, 6)))
    counter.add(_frame(["other", "other", "web"], [np.nan, np.nan, np.nan], n=3))
    counter.add(_frame(["other", "web", "web"], [np.nan, np.nan, np.nan], n=3))
    assert counter.other == {"source": 3}
    notes = counter.notes()
    assert notes[0] == "values mapped to 'other' (a level unseen in training, or too rare to keep): source 3"
    assert notes[1] == "columns that varied in training are all missing in this batch: budget"
    assert len(notes) == 2  # 'flag' was constant in training too: nothing to say


def test_a_column_stuck_at_one_value_is_reported():
    training = _frame(["web", "ads"] * 3, [1, 2, 3, 4, 5, 6])
    counter = QualityCounter(make_reference(training, np.linspace(0, 1, 6)))
    counter.add(_frame(["web"] * 6, [4] * 6))
    assert counter.notes() == ["columns that varied in training are constant in this batch: source, budget"]

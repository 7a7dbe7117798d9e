"""``clean_categorical`` cleans each distinct spelling once and gives exactly the row-by-row text."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from leadml.features.profile import MISSING, clean_categorical


def cleaned_row_by_row(values: pd.Series, tokens: set[str]) -> list[object]:
    """The definition: every present value as text, whitespace runs as one space, trimmed, lower case."""
    out: list[object] = []
    for value in values.astype(object):
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            out.append(MISSING)
            continue
        text = re.sub(r"\s+", " ", str(value)).strip().lower()
        out.append(MISSING if text in tokens else text)
    return out


def test_export_spellings_fold_to_one_level_each() -> None:
    values = pd.Series(["  VP  Sales", "vp sales", "VP\tSales ", "Select", "", None, np.nan, "Unknown", "Ünïcode ÉTÉ",
                        3, 3.0, True, 1.5])  # fmt: skip
    got = clean_categorical(values, missing_tokens=("select", "", "unknown")).tolist()
    assert got == ["vp sales", "vp sales", "vp sales", MISSING, MISSING, MISSING, MISSING, MISSING, "ünïcode été",
                   "3", "3.0", "true", "1.5"]  # fmt: skip


def test_numeric_and_category_columns_clean_as_their_text() -> None:
    floats = pd.Series([1.0, np.nan, 2.5, 1.0])
    assert clean_categorical(floats).tolist() == ["1.0", MISSING, "2.5", "1.0"]
    category = pd.Series(pd.Categorical(["Web ", None, "web"]), index=[7, 3, 9])
    got = clean_categorical(category)
    assert got.tolist() == ["web", MISSING, "web"] and got.index.tolist() == [7, 3, 9]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=6), st.integers(-3, 3), st.floats(allow_nan=True, width=32),
                          st.booleans()), max_size=40))  # fmt: skip
def test_equals_the_row_by_row_definition(items: list[object]) -> None:
    values = pd.Series(items, dtype=object)
    tokens = ("select", "", "n/a")
    assert clean_categorical(values, missing_tokens=tokens).tolist() == cleaned_row_by_row(values, set(tokens))

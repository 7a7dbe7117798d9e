"""The leads columns an MQL rule reads: the group of each lead (``mql.capacity_by``) and its expected
deal value (``mql.value_column``), checked and carried under reserved names.

Training (the replayed nightly runs, the validation snapshots) and scoring (every chunk, the lead
rows of the pyfunc) read them with :func:`lead_mql_columns`, so both see the same values: the group
as text (a missing or blank value is ``None``: the ``default`` group), the value as a float (missing
is NaN: the model fills it with the training median). The reserved names keep them apart from the
model's features, which may encode the same column (rare levels grouped into ``other``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError

GROUP_COLUMN = "mql__group"  # the lead's group (text; None: missing)
VALUE_COLUMN = "mql__value"  # the lead's expected deal value (float; NaN: missing)
DEFAULT_GROUP = "default"  # the group of leads without a value (and the mapping key of groups not listed)


def group_text(values: pd.Series) -> pd.Series:
    """Groups as stripped text (object), ``None`` where missing or blank; mapped once per distinct value."""
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    text = np.array([str(v).strip() or None for v in distinct] + [None], dtype=object)
    return pd.Series(text[codes], index=values.index, dtype=object)


def deal_values(values: pd.Series, column: str, source: str, lead_ids: pd.Series | None = None) -> pd.Series:
    """Expected deal values as float64 (NaN where missing).

    Raises:
        LeadDataError: a value is not a number, is infinite or is negative; the message names the
            source, the column and up to three example rows (lead id and value).
    """
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    present = values.notna().to_numpy() & ~values.astype(str).str.strip().isin(["", "nan", "NaN"]).to_numpy()
    for bad, what in ((present & numbers.isna().to_numpy(), "is not a number"),
                      (~np.isfinite(numbers.fillna(0).to_numpy()), "is infinite"),
                      (numbers.fillna(0).to_numpy() < 0, "is negative")):  # fmt: skip
        if bad.any():
            rows = np.flatnonzero(bad)[:3]
            ids = lead_ids.iloc[rows].astype(str).tolist() if lead_ids is not None else [str(r) for r in rows]
            shown = ", ".join(f"lead {i}: {v!r}" for i, v in zip(ids, values.iloc[rows].tolist()))
            raise LeadDataError(f"{source}: column {column!r} (mql.value_column, expected deal value) {what} in "
                                f"{int(bad.sum()):,} row(s), e.g. {shown}; give a number >= 0 or leave it empty")  # fmt: skip
    return numbers


def lead_mql_columns(
    leads: pd.DataFrame, group_column: str | None, value_column: str | None, source: str = "leads"
) -> pd.DataFrame:
    """``GROUP_COLUMN`` and ``VALUE_COLUMN`` (those asked for) of each row of ``leads``, indexed like it.

    Raises:
        LeadDataError: the leads table lacks a column (the message names the key that asks for it
            and the columns present) or holds a bad value (:func:`deal_values`).
    """
    out = pd.DataFrame(index=leads.index)
    for column, key in ((group_column, "mql.capacity_by"), (value_column, "mql.value_column")):
        if column is not None and column not in leads.columns:
            present = ", ".join(map(str, list(leads.columns)[:15]))
            raise LeadDataError(f"{source}: {key} names the column {column!r}, which the leads table lacks "
                                f"(columns present: {present})")  # fmt: skip
    if group_column is not None:
        out[GROUP_COLUMN] = group_text(leads[group_column])
    if value_column is not None:
        ids = leads["lead_id"] if "lead_id" in leads.columns else None
        out[VALUE_COLUMN] = deal_values(leads[value_column], value_column, source, ids)
    return out


def mql_columns_of(
    leads: pd.DataFrame, lead_ids: pd.Series | np.ndarray, group_column: str | None, value_column: str | None,
    source: str = "leads",
) -> pd.DataFrame:  # fmt: skip
    """:func:`lead_mql_columns` of the given leads, one row per id in ``lead_ids`` (in their order,
    ids repeated as often as given; an id the table lacks gets missing values)."""
    columns = lead_mql_columns(leads, group_column, value_column, source)
    columns.index = pd.Index(leads["lead_id"].astype(str).to_numpy(), name="lead_id")
    columns = columns[~columns.index.duplicated(keep="last")]
    return columns.reindex(pd.Index(np.asarray(lead_ids, dtype=object).astype(str))).reset_index(drop=True)

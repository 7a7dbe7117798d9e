"""Training from a training set file (``leadml train PIPELINE --trainset trainset.parquet``).

``leadml trainset PIPELINE --out trainset.parquet`` writes the snapshot rows: ``lead_id``, ``as_of``,
``split``, ``converted``, ``weight`` and every feature. The file holds no fitted
:class:`~leadml.features.build.FeatureBuilder`, and a model cannot be served without one (scoring
builds a lead's features with the very builder its training fitted). So :func:`load_trainset` refits
the builder on the file's ``train`` rows from the pipeline's data, exactly as
:func:`~leadml.features.build.build_trainset` fits it, and then holds the file to it: the feature
columns must be the builder's, and a sample of rows rebuilt from the data must equal the file's.
The rows, labels, splits and weights of the file are the ones trained on; its feature values are
what the pipeline's data gives at each ``as_of`` (a file whose features were edited, or built from
other data or settings, is refused rather than trained into a model that would be served other
features than it learned from).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.core.config import PipelineConfig
from leadml.core.errors import LeadDataError
from leadml.data.sources import PipelineData, load_pipeline_data
from leadml.features.build import FeatureBuilder, TrainSet

KEYS = ("lead_id", "as_of", "split", "converted", "weight")  # what `leadml trainset` writes first
CHECKED_ROWS = 500  # rows of the file rebuilt from the data and compared


def load_trainset(
    config: PipelineConfig, path: str | os.PathLike, *, data: PipelineData | None = None, seed: int = 0
) -> TrainSet:
    """The training set of a file written by ``leadml trainset``, with its feature builder refitted.

    Parameters:
        config: the pipeline the file was built from (its data and feature settings refit the builder).
        path: the file (``.parquet``, or ``.csv``: categories are read back as text and checked).
        data: the pipeline's data, when already loaded.
        seed: which rows are rebuilt and compared (up to :data:`CHECKED_ROWS`).

    Raises:
        LeadDataError: a column train needs is missing, a column is not a feature of the pipeline's
            feature set (or a feature is missing), or a feature's values are not the ones the data
            gives; the message names the file and the column.
    """
    from leadml.data.io import read_table

    path = Path(path)
    frame = read_table(path)
    data = data if data is not None else load_pipeline_data(config.data)
    flat = data.flat is not None
    for column in KEYS:
        if column not in frame.columns and not (flat and column == "weight"):  # flat data has no weights
            raise LeadDataError(f"{path}: column '{column}' is missing; a training set file holds "
                                f"{', '.join(KEYS)} and the features, as `leadml trainset` writes it")  # fmt: skip
    as_of = pd.to_datetime(frame["as_of"], utc=True).dt.as_unit("ns")
    frame = frame.assign(split=frame["split"].astype(object), as_of=as_of)
    builder = FeatureBuilder(config.features, config.profile, leaky=data.leaky, borderline=data.borderline,
                             id_columns=data.id_columns)  # fmt: skip
    train = frame.loc[(frame["split"] == "train").to_numpy()]
    if flat:
        assert data.flat is not None
        builder.fit_flat(data.flat.loc[data.flat["lead_id"].isin(train["lead_id"]).to_numpy()])
    else:
        builder.fit(train if len(train) else frame, data.leads, data.events)
    names = list(builder.feature_names_)
    keys = [c for c in KEYS if c in frame.columns]
    extra = [c for c in frame.columns if c not in names and c not in keys]
    if extra:
        raise LeadDataError(f"{path}: column '{extra[0]}' is not a feature of pipeline {config.name}'s feature set "
                            f"({len(names)} features); the file was built with other settings or data: rebuild it "
                            "with `leadml trainset`")  # fmt: skip
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise LeadDataError(f"{path}: column '{missing[0]}' is missing: it is a feature of pipeline {config.name}'s "
                            "feature set; the file was built with other settings or data: rebuild it with "
                            "`leadml trainset`")  # fmt: skip
    frame = frame[[*keys, *names]]
    rebuilt = _rebuilt_sample(builder, frame, data, seed)
    frame = _as_built(frame, rebuilt, path)
    _check_values(frame.loc[rebuilt.index, names], rebuilt, path)
    return TrainSet(frame=frame.reset_index(drop=True), builder=builder, data=data)


def _rebuilt_sample(builder: FeatureBuilder, frame: pd.DataFrame, data: PipelineData, seed: int) -> pd.DataFrame:
    """The features of up to CHECKED_ROWS rows of the file, built anew from the pipeline's data."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(frame), size=min(CHECKED_ROWS, len(frame)), replace=False))
    sample = frame.iloc[rows]
    if data.flat is not None:
        by_lead = data.flat.set_index("lead_id")
        rebuilt = builder.transform_flat(by_lead.loc[sample["lead_id"]].reset_index())
    else:
        rebuilt = builder.transform(sample[["lead_id", "as_of"]].reset_index(drop=True), data.leads, data.events)
    rebuilt.index = sample.index
    return rebuilt


def _as_built(frame: pd.DataFrame, rebuilt: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The file's feature columns in the builder's dtypes (a CSV gives categories as text)."""
    frame = frame.copy()
    for name in rebuilt.columns:
        dtype = rebuilt[name].dtype
        if frame[name].dtype == dtype:
            continue
        if isinstance(dtype, pd.CategoricalDtype):
            text = frame[name].astype(object).where(frame[name].notna())
            unknown = ~text.isna() & ~text.isin(dtype.categories)
            if unknown.any():
                raise LeadDataError(f"{path}: column '{name}' holds {text[unknown].iloc[0]!r}, not a level of the "
                                    "pipeline's feature set; rebuild the file with `leadml trainset`")  # fmt: skip
            frame[name] = pd.Categorical(text, dtype=dtype)
        else:
            frame[name] = pd.to_numeric(frame[name], errors="raise").astype(dtype)
    return frame


def _check_values(stored: pd.DataFrame, rebuilt: pd.DataFrame, path: Path) -> None:
    for name in rebuilt.columns:
        left, right = stored[name], rebuilt[name]
        if isinstance(right.dtype, pd.CategoricalDtype):
            same = (left.astype(object) == right.astype(object)) | (left.isna() & right.isna())
        else:
            a, b = left.to_numpy(dtype=float), right.to_numpy(dtype=float)
            same = pd.Series(np.isclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True), index=left.index)
        if not same.all():
            row = stored.index[~same.to_numpy()][0]
            raise LeadDataError(
                f"{path}: column '{name}' does not hold the features the pipeline's data gives ({int((~same).sum())} "
                f"of {len(same)} rows checked differ, first at row {row + 1}: {left[row]!r}, the data gives "
                f"{right[row]!r}); the file was built from other data or settings, or edited: rebuild it with "
                "`leadml trainset`"
            )

"""The peer of ``leadml score``: a plain LightGBM script scoring a features file with a saved booster.

    python benchmarks/peers/score_lightgbm.py FEATURES.parquet BOOSTER.txt COLUMNS.json OUT.parquet

What a data scientist writes without leadml: read the features (``lead_id`` and the model's
columns, categoricals as text, as ``leadml features`` writes them), make the text columns pandas
categoricals with the booster's own training levels (LightGBM keeps them in the model file), call
``Booster.predict`` on the frame, and write ``lead_id`` and the probability to Parquet.
``COLUMNS.json`` lists the file's columns in the booster's order (LightGBM renames some). No
calibration, tiers, sub-scores, decisions, history or drift: the booster's probability only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightgbm as lgb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def main(features: str, booster_file: str, columns_file: str, out: str) -> None:
    booster = lgb.Booster(model_file=booster_file)
    columns = json.loads(Path(columns_file).read_text())
    frame = pd.read_parquet(features, columns=["lead_id", *columns])
    text = [name for name in columns if not pd.api.types.is_numeric_dtype(frame[name])]
    for name, levels in zip(text, booster.pandas_categorical or []):
        frame[name] = pd.Categorical(frame[name], categories=levels)
    inputs = frame[columns].set_axis(booster.feature_name(), axis=1)
    probability = booster.predict(inputs)
    table = pa.table({"lead_id": pa.array(frame["lead_id"], pa.string()), "probability": pa.array(probability)})
    pq.write_table(table, out)


if __name__ == "__main__":
    main(*sys.argv[1:5])

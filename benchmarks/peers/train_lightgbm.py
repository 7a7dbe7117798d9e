"""The peer of ``leadml train``: plain LightGBM fitted on a training set file, as a data scientist would.

    python benchmarks/peers/train_lightgbm.py trainset.parquet [--predictions out.npy]

Reads the file ``leadml trainset`` wrote (``split``, ``converted``, ``weight`` and the feature
columns), keeps the labelled ``train`` and ``validation`` rows, turns the features into one float32
matrix (a categorical column becomes its category codes, missing as NaN, declared categorical to
LightGBM) and fits ``lightgbm.train`` with leadml's default ``models.lightgbm`` settings: weighted,
early stopping on the weighted validation log loss. Prints one JSON line: the rows and features fitted,
the trees kept and a hash of the raw probabilities of the labelled ``test`` rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

KEYS = ("lead_id", "as_of", "split", "converted", "weight")
# leadml's LightGBMConfig defaults (num_leaves 7, learning rate 0.05, up to 1,000 trees, ...), seed 0
PARAMS = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 7, "min_child_samples": 50,
    "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0,
    "cat_smooth": 20.0, "cat_l2": 10.0, "min_data_per_group": 100, "max_cat_to_onehot": 4,
    "random_state": 0, "deterministic": True, "force_row_wise": True, "num_threads": 2, "verbose": -1,
    "metric": "binary_logloss",
}  # fmt: skip
TREES, STOP_ROUNDS = 1000, 50


def matrix(table: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The feature columns as one float32 matrix (category codes for categoricals, NaN for missing)."""
    out = np.empty((len(table), len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        column = table[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy()
            out[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            out[:, j] = column.to_numpy(dtype=np.float32, na_value=np.nan)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trainset")
    parser.add_argument("--predictions", help="write the raw test probabilities here (.npy)")
    args = parser.parse_args()
    started = time.perf_counter()
    table = pq.read_table(args.trainset).to_pandas()
    features = [c for c in table.columns if c not in KEYS]
    categorical = [j for j, name in enumerate(features) if isinstance(table[name].dtype, pd.CategoricalDtype)]
    labelled = table["converted"].notna().to_numpy()
    parts = {s: labelled & (table["split"] == s).to_numpy() for s in ("train", "validation", "test")}
    X = {s: matrix(table.loc[rows], features) for s, rows in parts.items()}
    y = {s: table.loc[rows, "converted"].to_numpy(dtype=np.float64) for s, rows in parts.items()}
    w = {s: table.loc[rows, "weight"].to_numpy(dtype=np.float64) for s, rows in parts.items()}
    del table
    train = lgb.Dataset(X["train"], y["train"], weight=w["train"], categorical_feature=categorical,
                        free_raw_data=True)  # fmt: skip
    valid = lgb.Dataset(X["validation"], y["validation"], weight=w["validation"], reference=train)
    booster = lgb.train(PARAMS, train, TREES, valid_sets=[valid],
                        callbacks=[lgb.early_stopping(STOP_ROUNDS, first_metric_only=True, verbose=False)])  # fmt: skip
    p = booster.predict(X["test"], num_iteration=booster.best_iteration)
    if args.predictions:
        np.save(args.predictions, p)
    print(json.dumps({
        "train_rows": len(y["train"]), "validation_rows": len(y["validation"]), "test_rows": len(y["test"]),
        "features": len(features), "trees": booster.best_iteration,
        "test_predictions_sha256": hashlib.sha256(np.ascontiguousarray(p).tobytes()).hexdigest()[:16],
        "seconds": round(time.perf_counter() - started, 2),
        "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))  # fmt: skip


if __name__ == "__main__":
    main()

"""Features files: the model's features of the open leads written out, and scored back.

:func:`write_features` writes exactly the features :func:`~leadml.jobs.score.score_batch` scores,
with the model's feature spec in the Parquet metadata; :func:`score_features` scores such a file
(or any frame with the model's columns) and refuses one built under another spec, naming the
differences. The MLflow pyfunc takes the same columns: ``mlflow models predict`` on the feature
columns of such a file gives the same probabilities as the scoring job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from leadml.core.config import PipelineConfig
from leadml.core.errors import ConfigError
from leadml.features.snapshots import to_utc
from leadml.jobs.feature_source import feature_source
from leadml.jobs.output import timestamps
from leadml.jobs.progress import Progress, ProgressBar
from leadml.modeling.loading import check_builder, check_spec, load_model

SPEC_KEY = b"leadml.feature_spec"
SPEC_FILE = "_leadml_feature_spec.json"


def write_features(
    config: PipelineConfig,
    as_of: object,
    out: str | os.PathLike,
    *,
    model_uri: str | os.PathLike | None = None,
    chunk_leads: int = 100_000,
    progress: bool | Progress | None = None,
) -> Path:
    """Write the model's features of every open lead at ``as_of``: ``lead_id``, ``as_of`` and the features.

    The features are exactly those :func:`score_batch` scores (the model's own feature set). A
    Parquet file records the feature spec in its metadata, so :func:`score_features` can refuse it
    for another model; CSV stores every number as float64 text, so reading it back loses nothing.
    """
    from leadml.data.io import check_output_path, table_format
    from leadml.jobs.output import ScoresWriter, unnamed_output

    stamp, fmt = to_utc(as_of), table_format(out)
    check_output_path(out)  # a folder is refused before any work
    loaded = load_model(config, model_uri)
    check_builder(loaded.scoring)
    builder = loaded.scoring.builder
    source = feature_source(config, builder, stamp, chunk_leads=chunk_leads)
    bar = ProgressBar(progress, source.total_leads, f"features at {stamp:%Y-%m-%d}")
    writer = None
    try:
        with unnamed_output(out) as sink:
            for chunk in source.chunks:
                table = features_table(chunk.snapshots, chunk.features, wide=fmt == "csv")
                if writer is None:
                    spec = json.dumps(builder.spec(), sort_keys=True, default=str)
                    writer = ScoresWriter(sink, out, table.schema, {SPEC_KEY.decode(): spec})
                writer.write(table)
                bar.advance(chunk.leads_read)
            if writer is None:
                raise ConfigError(f"{config.name}: no leads to write features for")
            writer.close()
    finally:
        bar.close()
    return Path(out)


def features_table(snapshots: pd.DataFrame, features: pd.DataFrame, *, wide: bool = False) -> pa.Table:
    """``lead_id``, ``as_of`` and the features as Arrow; categoricals as text.

    ``wide`` (for CSV): every number as float64 text that reads back as a float (``3.0``, not
    ``3``), exact to the bit; MLflow's schema check refuses integer columns for ``double`` inputs.
    """
    columns = {
        "lead_id": pa.array(snapshots["lead_id"].to_numpy(dtype=object), pa.string()),
        "as_of": timestamps(snapshots["as_of"]),
    }
    for name in features.columns:
        values = features[name]
        if isinstance(values.dtype, pd.CategoricalDtype):
            columns[name] = pa.array(values.astype(object).to_numpy(), pa.string())
        elif wide:
            columns[name] = float_text(values.to_numpy(dtype=np.float64))
        else:
            columns[name] = pa.array(values.to_numpy())
    return pa.table(columns)


def float_text(values: np.ndarray) -> pa.Array:
    """Floats as their shortest exact text, whole numbers with ``.0``.

    Example:
        >>> float_text(np.array([3.0, 0.1, np.nan, -2.0, 1e-5])).to_pylist()
        ['3.0', '0.1', 'nan', '-2.0', '0.00001']
    """
    import pyarrow.compute as pc

    text = pc.cast(pa.array(values, pa.float64()), pa.string())
    whole = pc.match_substring_regex(text, r"^-?[0-9]+$")
    return pc.if_else(whole, pc.binary_join_element_wise(text, pa.scalar(".0"), ""), text)


def read_feature_spec(path: str | os.PathLike) -> dict | None:
    """The feature spec a features file records (None: not recorded, or a CSV file).

    A Parquet file keeps it in its metadata; a Parquet folder written by Spark in
    ``_leadml_feature_spec.json``.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        sidecar = path / SPEC_FILE
        return json.loads(sidecar.read_text()) if sidecar.exists() else None
    if path.suffix.lower() not in (".parquet", ".pq"):
        return None
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[SPEC_KEY]) if SPEC_KEY in metadata else None


def score_features(
    features: pd.DataFrame | str | os.PathLike,
    *,
    config: PipelineConfig | None = None,
    model_uri: str | os.PathLike | None = None,
    spec: dict | None = None,
) -> pd.DataFrame:
    """Score a features table (a frame or a file with the model's feature columns).

    A file written by :func:`write_features` (or ``leadml features --engine spark``) carries its
    feature spec, and a frame may pass one as ``spec``; features built under another spec than
    the model's are refused, naming the differences.

    Returns:
        ``probability``, ``score``, ``tier`` and ``is_mql`` per row (with ``lead_id`` and
        ``as_of`` when the table has them).

    Raises:
        ModelError: the spec differs from the model's, or model columns are missing.
    """
    from leadml.data.io import read_output

    if not isinstance(features, pd.DataFrame):
        spec = spec if spec is not None else read_feature_spec(features)
        features = read_output(features)
    loaded = load_model(config, model_uri)
    check_builder(loaded.scoring)
    check_spec(loaded.scoring, spec)
    scores = loaded.scoring.score(features)
    keys = [c for c in ("lead_id", "as_of") if c in features.columns]
    return pd.concat([features[keys], scores], axis=1) if keys else scores

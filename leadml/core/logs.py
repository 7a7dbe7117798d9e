"""Quieter libraries: leadml's own output stays readable in a terminal, a notebook or a job log.

MLflow logs its database migrations and "registered model" lines at INFO, draws a progress bar for
every artifact it copies back while logging a model, and reminds, for every model it saves, that
pyfunc models are pickles (leadml's README says so once); Jupyter's tqdm warns about missing widgets. :func:`quiet` turns these down; the CLI calls it on start, a
notebook or script calls ``leadml.quiet()``. Warnings and errors still show.
"""

from __future__ import annotations

import logging
import os
import warnings

_DONE = False


def _not_the_pickle_reminder(record: logging.LogRecord) -> bool:
    return "CloudPickle" not in record.getMessage()


def quiet() -> None:
    """Turn the libraries' INFO chatter down to warnings (safe to call more than once)."""
    global _DONE
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if not _DONE:
        logging.getLogger("mlflow.pyfunc").addFilter(_not_the_pickle_reminder)
        warnings.filterwarnings("ignore", message="IProgress not found")
        _DONE = True

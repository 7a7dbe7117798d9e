"""The reasons step of the scoring job: which leads get reasons, and their reason columns.

Reasons (SHAP, :mod:`leadml.explain`) cost about a hundred predictions per lead, so by default only
the MQLs and the top 20 % by probability get them; the other rows keep empty reason columns. A
rules model has no SHAP: the same leads get the rules that fired as reasons (:meth:`ExplainReasons.of_rules`).

The top is the top of the whole run (:mod:`leadml.explain.selection`): a run scored in several
pieces first measures it (:func:`chunks_with_run_cut` on the pandas engine, the Spark engine over
its scored leads) and gives the step the cut (:meth:`ExplainReasons.with_cut`).
"""

from __future__ import annotations

import contextlib
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from leadml.explain.selection import TopCut, top_count, top_cut

__all__ = [
    "REASON_COLUMNS",
    "ExplainReasons",
    "ReasonsStep",
    "chunks_with_run_cut",
    "default_reasons",
    "needs_run_cut",
    "reasons_step",
]

REASON_COLUMNS = ("reason_1", "reason_2", "reason_3", "counter_reason_1", "counter_reason_2", "reasons")
ReasonsStep = Callable[[object, pd.DataFrame, np.ndarray], pd.DataFrame]


def reasons_step(reasons: bool | str | ReasonsStep) -> ReasonsStep | None:
    """The step a job's ``reasons`` option asks for: a function as given, a selection (``all``,
    ``mql``, ``top:N``, ``top:N%``) or True (the default selection) through :func:`default_reasons`,
    None for False. Every engine reads the option through here, so they explain the same leads.
    """
    if callable(reasons):
        return reasons
    if not reasons:
        return None
    return default_reasons(reasons if isinstance(reasons, str) else "default")


def default_reasons(which: str = "default") -> ReasonsStep | None:
    """The reasons step of :mod:`leadml.explain`, when that module offers it (else None).

    ``which`` picks the leads explained (SHAP costs ~100x a prediction): ``default`` (the MQLs and
    the top 20 %), ``all``, ``mql``, ``top:N`` or ``top:N%``; the other rows get empty reasons.
    """
    try:  # what the step needs, checked once here
        from leadml.explain.sentences import reason_table  # noqa: F401
        from leadml.modeling.contributions import explain_margin  # noqa: F401
    except ImportError:
        return None
    try:  # an unknown selection fails before any work
        top_count(which, 0)
    except ValueError as exc:
        from leadml.core.errors import ConfigError

        raise ConfigError(f"--reasons: {exc}") from None
    return ExplainReasons(which)


class ExplainReasons:
    """The reasons step of :mod:`leadml.explain` for the leads ``which`` picks (see :func:`default_reasons`).

    ``cut``: the top of the whole run (:func:`~leadml.explain.selection.top_cut`), for a run
    explained in pieces; without it, each call is taken for the whole run. Given ``lead_ids``,
    ties at the cut are split by id, as in every engine.
    """

    def __init__(self, which: str = "default", cut: TopCut | None = None):
        self.which = which
        self.cut = cut

    @property
    def needs_cut(self) -> bool:
        """Whether the selection has a top part, which a run in pieces must measure first."""
        return top_count(self.which, 0) is not None

    def with_cut(self, cut: TopCut | None) -> ExplainReasons:
        """This step with the run's top ``cut``."""
        return type(self)(self.which, cut)

    def of_rules(
        self, scores: pd.DataFrame, probability: np.ndarray, threshold: float | np.ndarray, lead_ids: Any = None
    ) -> pd.DataFrame:
        """A rules model's reason columns: the rules that fired (``RuleSet.score*`` output ``scores``)."""
        from leadml.explain.selection import rows_to_explain
        from leadml.explain.sentences import rules_reason_table

        rows = rows_to_explain(probability, threshold, self.which, cut=self.cut, lead_ids=lead_ids)
        out = pd.DataFrame(index=scores.index, columns=list(REASON_COLUMNS), dtype=object)
        if len(rows):
            table = rules_reason_table(scores.iloc[rows])
            for name in REASON_COLUMNS:
                out.iloc[rows, out.columns.get_loc(name)] = table[name].astype(object).to_numpy()
        return out

    def __call__(
        self, scoring, features: pd.DataFrame, probability: np.ndarray, lead_ids: Any = None, threshold: Any = None,
        matrix: np.ndarray | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """The SHAP reason columns of a model's selected leads (empty for the others); ``threshold``:
        each lead's own MQL threshold when the model's MQL rule has one per lead (default: the model's);
        ``matrix``: the booster's input for ``features`` (``LeadScoringModel.booster_matrix``), which
        the explainer then reads instead of converting the frame again."""
        from leadml.explain.selection import rows_to_explain
        from leadml.explain.sentences import reason_table
        from leadml.modeling.contributions import explain_margin

        info = scoring.builder.feature_info_
        bar = np.broadcast_to(np.asarray(scoring.threshold if threshold is None else threshold, dtype=float),
                              np.shape(probability))  # fmt: skip
        rows = rows_to_explain(probability, bar, self.which, cut=self.cut, lead_ids=lead_ids)
        if len(rows) == len(features):
            contributions = explain_margin(scoring.model, features, info, matrix=matrix)
            return reason_table(contributions, features, info, probability=probability, threshold=bar)
        out = pd.DataFrame(index=features.index, columns=list(REASON_COLUMNS), dtype=object)
        if len(rows):
            chosen = features.iloc[rows]
            contributions = explain_margin(scoring.model, chosen, info,
                                           matrix=matrix[rows] if matrix is not None else None)  # fmt: skip
            table = reason_table(contributions, chosen, info, probability=probability[rows], threshold=bar[rows])
            for name in REASON_COLUMNS:
                if name in table.columns:
                    out.iloc[rows, out.columns.get_loc(name)] = table[name].astype(object).to_numpy()
        return out


def needs_run_cut(step: ReasonsStep | None) -> bool:
    """Whether ``step`` picks a top that a run in several pieces must measure before explaining."""
    return isinstance(step, ExplainReasons) and step.needs_cut and step.cut is None


@contextlib.contextmanager
def chunks_with_run_cut(
    chunks: Iterable[Any],
    step: ExplainReasons,
    probability: Callable[[Any], np.ndarray],
    folder: str | Path,
) -> Iterator[tuple[Iterator[Any], ExplainReasons]]:
    """Measure a chunked run before explaining it: the chunks again, and ``step`` with the run's cut.

    Every chunk (a :class:`~leadml.jobs.feature_source.FeatureChunk`) is scored once here by
    ``probability(chunk)`` and kept in a temporary folder under ``folder`` (removed at the end,
    even on failure), so its features are not built twice; memory keeps one float and one id a lead.
    """
    with tempfile.TemporaryDirectory(prefix=".leadml-chunks-", dir=folder) as scratch:
        probabilities: list[np.ndarray] = []
        lead_ids: list[pa.Array] = []
        files: list[Path] = []
        for chunk in chunks:
            probabilities.append(np.asarray(probability(chunk), dtype=float))
            lead_ids.append(pa.array(chunk.snapshots["lead_id"].astype(str).to_numpy(dtype=object), pa.string()))
            files.append(Path(scratch) / f"{len(files):06d}.pickle")
            with open(files[-1], "wb") as file:
                pickle.dump(chunk, file, protocol=pickle.HIGHEST_PROTOCOL)
            del chunk
        p = np.concatenate(probabilities) if probabilities else np.zeros(0)
        cut = top_cut(p, pa.chunked_array(lead_ids, pa.string()), step.which)
        del probabilities, lead_ids, p

        def kept() -> Iterator[Any]:
            for path in files:
                with open(path, "rb") as file:
                    chunk = pickle.load(file)  # written by this run, just above
                path.unlink()
                yield chunk

        yield kept(), step.with_cut(cut)

"""The reasons step of the scoring job: which leads get reasons, and their reason columns.

Reasons (SHAP, :mod:`leadml.explain`) cost about a hundred predictions per lead, so by default only
the MQLs and the top 20 % by probability get them; the other rows keep empty reason columns. A
rules model has no SHAP: the same leads get the rules that fired as reasons (:meth:`ExplainReasons.of_rules`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

__all__ = ["REASON_COLUMNS", "ExplainReasons", "ReasonsStep", "default_reasons", "reasons_step"]

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
        from leadml.explain.sentences import reason_table, rows_to_explain  # noqa: F401
        from leadml.modeling.contributions import explain_margin  # noqa: F401
    except ImportError:
        return None
    try:  # an unknown selection fails before any work
        rows_to_explain(np.zeros(0), None, which)
    except ValueError as exc:
        from leadml.core.errors import ConfigError

        raise ConfigError(f"--reasons: {exc}") from None
    return ExplainReasons(which)


class ExplainReasons:
    """The reasons step of :mod:`leadml.explain` for the leads ``which`` picks (see :func:`default_reasons`)."""

    def __init__(self, which: str = "default"):
        self.which = which

    def of_rules(self, scores: pd.DataFrame, probability: np.ndarray, threshold: float) -> pd.DataFrame:
        """A rules model's reason columns: the rules that fired (``RuleSet.score*`` output ``scores``)."""
        from leadml.explain.sentences import rows_to_explain, rules_reason_table

        rows = rows_to_explain(probability, threshold, self.which)
        out = pd.DataFrame(index=scores.index, columns=list(REASON_COLUMNS), dtype=object)
        if len(rows):
            table = rules_reason_table(scores.iloc[rows])
            for name in REASON_COLUMNS:
                out.iloc[rows, out.columns.get_loc(name)] = table[name].astype(object).to_numpy()
        return out

    def __call__(self, scoring, features: pd.DataFrame, probability: np.ndarray) -> pd.DataFrame:
        """The SHAP reason columns of a model's selected leads (empty for the others)."""
        from leadml.explain.sentences import reason_table, rows_to_explain
        from leadml.modeling.contributions import explain_margin

        which = self.which
        info = scoring.builder.feature_info_
        rows = rows_to_explain(probability, scoring.threshold, which)
        if len(rows) == len(features):
            contributions = explain_margin(scoring.model, features, info)
            return reason_table(contributions, features, info, probability=probability, threshold=scoring.threshold)
        out = pd.DataFrame(index=features.index, columns=list(REASON_COLUMNS), dtype=object)
        if len(rows):
            chosen = features.iloc[rows]
            contributions = explain_margin(scoring.model, chosen, info)
            table = reason_table(
                contributions, chosen, info, probability=probability[rows], threshold=scoring.threshold
            )
            for name in REASON_COLUMNS:
                if name in table.columns:
                    out.iloc[rows, out.columns.get_loc(name)] = table[name].astype(object).to_numpy()
        return out

"""One lead's explanation at one as_of: what ``leadml explain PIPELINE --lead ID`` prints.

:func:`explain_lead` rebuilds the lead's features at ``as_of`` exactly as the batch scoring job
would (the model's own fitted feature set, :mod:`leadml.features.scoring_set`), scores it with the
model the job would use (the pipeline's champion unless ``model_uri`` says otherwise,
:mod:`leadml.modeling.loading`), and explains the score: every reason with its contribution
(log-odds) and its effect in probability points, and for a lead below the MQL threshold the
smallest behaviour change that would cross it, checked against the model
(:mod:`leadml.explain.counterfactual`). With ``model_uri="rules"`` the pipeline's points rules
score the lead and the explanation is their exact breakdown. A registered rules model (a cold
start or a rules win) is explained by the breakdown of the rules it carries, with the probability,
score and tier the batch job gives. :func:`format_explanation` renders it for the terminal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadml.core.config import PipelineConfig, load_pipeline
from leadml.core.errors import ConfigError, LeadDataError
from leadml.data.sources import PipelineData, load_pipeline_data
from leadml.explain.sentences import LOWERS, RAISES, describe_lead, format_number, rule_text
from leadml.features.metadata import FeatureInfo
from leadml.features.snapshots import data_end_of, to_utc
from leadml.modeling.contributions import Contributions

RULES = "rules"  # the model_uri that explains with the pipeline's points rules


@dataclass(frozen=True, eq=False)
class LeadExplanation:
    """Why one lead got its score at one as_of.

    Attributes:
        lead_id, as_of: the lead and the instant it was scored at (only events before it count).
        model: what scored it, e.g. ``cli-model version 3`` or ``rules seed-points``.
        probability: the calibrated probability (None for the rules baseline).
        score: the 0-100 score of a model, or the points of the rules.
        tier, is_mql: the tier and the MQL flag, as the batch scoring job writes them.
        threshold: the MQL threshold (a probability, or the MQL tier's points for rules).
        reasons: one row per reason, raising ones first, strongest first: ``sentence``,
            ``direction`` (``raises``/``lowers``), ``feature`` (the rule, for rules), ``value``,
            ``contribution`` (log-odds), ``points`` (probability points; rule points for rules)
            and ``decisive`` (the reason alone decided the MQL flag).
        counterfactual: for a lead below the threshold, the smallest change that would make it an
            MQL ("2 more pricing-page visits ... would make it an MQL"); "" otherwise.
    """

    lead_id: str
    as_of: pd.Timestamp
    model: str
    probability: float | None
    score: float
    tier: str
    is_mql: bool
    threshold: float | None
    reasons: pd.DataFrame = field(repr=False)
    counterfactual: str = ""
    contributions: Contributions | None = field(default=None, repr=False)
    features: pd.DataFrame | None = field(default=None, repr=False)
    feature_info: Sequence[FeatureInfo] = field(default=(), repr=False)
    points: float | None = None  # a rules model's input: the lead's rules points


# -- the lead and its as_of ---------------------------------------------------------------------
def default_as_of(data: PipelineData) -> pd.Timestamp:
    """The end of the data: its ``data_end``, else the midnight after its last creation, event or close."""
    if data.data_end is not None:
        return to_utc(data.data_end)
    last = data_end_of(data.leads, data.events, data.outcomes)
    return (last + pd.Timedelta(1, "ns")).ceil("D")


def lead_data(data: PipelineData, lead_id: str, as_of: pd.Timestamp) -> PipelineData:
    """The tables of one lead, checked: it exists, was created by ``as_of`` and was still open.

    Raises:
        LeadDataError: the id is unknown (naming a few known ids), the lead was created after
            ``as_of``, or it was closed before ``as_of`` (a closed lead is no longer scored).
    """
    leads = data.leads
    assert leads is not None, "lead_data takes three-table data (leads and events), not a flat table"
    ids = leads["lead_id"].astype(str)
    one = leads.loc[(ids == lead_id).to_numpy()]
    if one.empty:
        examples = ", ".join(ids.head(3).tolist())
        raise LeadDataError(f"leads: no lead with lead_id {lead_id!r} among {len(leads):,} leads "
                            f"(known ids look like {examples})")  # fmt: skip
    created = one["created_at"].iloc[0]
    if created > as_of:
        raise LeadDataError(f"lead {lead_id} was created on {created:%Y-%m-%d %H:%M} UTC, after as_of "
                            f"{as_of:%Y-%m-%d %H:%M} UTC; explain it at a later as_of")  # fmt: skip
    outcomes = data.outcomes
    if outcomes is not None and len(outcomes):
        outcomes = outcomes.loc[(outcomes["lead_id"].astype(str) == lead_id).to_numpy()]
        closed = outcomes["closed_at"]
        if len(outcomes) and (closed < as_of).any():
            when = closed.min()
            result = "won" if int(outcomes["outcome"].iloc[0]) == 1 else "lost"
            raise LeadDataError(
                f"lead {lead_id} was closed ({result}) on {when:%Y-%m-%d %H:%M} UTC, before as_of "
                f"{as_of:%Y-%m-%d %H:%M} UTC, so it is no longer scored; explain it at an earlier "
                f"as_of, e.g. --as-of {when:%Y-%m-%d}"
            )
    events = data.events
    if events is not None:
        events = events.loc[(events["lead_id"].astype(str) == lead_id).to_numpy()]
    return PipelineData(leads=one, events=events, outcomes=outcomes, data_end=data.data_end)


# -- explaining ---------------------------------------------------------------------------------
def explain_lead(
    config: PipelineConfig | str | os.PathLike,
    lead_id: str,
    as_of: object | None = None,
    model_uri: str | os.PathLike | None = None,
    *,
    data: PipelineData | None = None,
) -> LeadExplanation:
    """Score and explain one lead at ``as_of`` as the batch scoring job would.

    Parameters:
        config: the pipeline (a loaded config or its YAML path): data, rules, MLflow.
        lead_id: the lead to explain.
        as_of: when (a date means 00:00 UTC); default: the end of the data.
        model_uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN/model``, a model
            folder, an in-memory ``LeadScoringModel``, or ``rules`` (the pipeline's points rules);
            default: the pipeline's champion.
        data: the pipeline's tables when the caller has them loaded (else they are read).

    Returns:
        A :class:`LeadExplanation`; :func:`format_explanation` renders it.

    Raises:
        LeadDataError: unknown lead id, or the lead is not open at ``as_of``.
        ConfigError: a flat pipeline (no events to rebuild features at an as_of), or ``rules``
            without a rules file in the pipeline.
        ModelError: the model cannot be loaded or its feature set cannot be rebuilt.
    """
    config = config if isinstance(config, PipelineConfig) else load_pipeline(config)
    if config.is_flat:
        raise ConfigError(f"{config.name}: a flat pipeline has no events to rebuild a lead's features at an "
                          "as_of; explain its leads with `leadml report`")  # fmt: skip
    rules = isinstance(model_uri, str) and model_uri == RULES
    if rules and config.rules is None:
        raise ConfigError(f"{config.name}: the pipeline names no rules file (key 'rules'), so "
                          "--model rules has nothing to explain; add e.g. rules: rules/seed_points.yaml")  # fmt: skip
    data = data if data is not None else load_pipeline_data(config.data, need_outcomes=False)
    stamp = to_utc(as_of) if as_of is not None else default_as_of(data)
    lead_id = str(lead_id)
    one = lead_data(data, lead_id, stamp)
    if rules:
        return _explain_rules(config, one, lead_id, stamp)
    return _explain_model(config, one, lead_id, stamp, model_uri)


def _explain_model(config, one: PipelineData, lead_id: str, stamp: pd.Timestamp, model_uri) -> LeadExplanation:
    from leadml.explain.counterfactual import counterfactuals
    from leadml.explain.sentences import reason_table
    from leadml.features.scoring_set import open_lead_snapshots
    from leadml.modeling.contributions import explain_margin
    from leadml.modeling.loading import check_builder, load_model, probabilities
    from leadml.modeling.policy import apply_policy

    loaded = load_model(config, model_uri)
    scoring = loaded.scoring
    check_builder(scoring)
    snapshot = open_lead_snapshots(one, stamp)
    if getattr(scoring, "needs_points", False):
        return _explain_rules_model(loaded, one, snapshot, lead_id, stamp)
    built = scoring.builder.transform(snapshot, one.leads, one.events)
    features = pd.concat([snapshot, built], axis=1)
    info = list(scoring.builder.feature_info_)
    p = probabilities(scoring, features)
    threshold = _own_threshold(scoring, p, one, snapshot)
    policy = apply_policy(p, threshold, scoring.tiers)
    contributions = explain_margin(scoring.model, features, info)
    everything = len(contributions.features)
    table = reason_table(contributions, features, info, probability=p, threshold=threshold,
                         top_positive=everything, top_negative=everything)  # fmt: skip
    reasons = _model_reasons(table)
    is_mql = bool(policy["is_mql"].iloc[0])
    counterfactual = ""
    if not is_mql:
        found = counterfactuals(scoring.model, features, info, threshold=threshold)
        counterfactual = str(found["counterfactual"].iloc[0])
    version = f" version {loaded.version}" if loaded.version else ""
    return LeadExplanation(
        lead_id=lead_id, as_of=stamp, model=f"{loaded.name}{version}", probability=float(p[0]),
        score=float(policy["score"].iloc[0]), tier=str(policy["tier"].iloc[0]), is_mql=is_mql,
        threshold=threshold, reasons=reasons, counterfactual=counterfactual,
        contributions=contributions, features=features, feature_info=tuple(info),
    )  # fmt: skip


def _own_threshold(scoring, p: np.ndarray, one: PipelineData, snapshot: pd.DataFrame) -> float:
    """The lead's own MQL threshold: its group's or its value's under an MQL rule per lead, else the model's."""
    if not hasattr(scoring, "lead_thresholds"):
        return float(scoring.threshold)
    threshold, _, _ = scoring.lead_thresholds(p, one.leads, snapshot["lead_id"])
    return float(np.asarray(threshold, dtype=float).reshape(-1)[0])


def _model_reasons(table: pd.DataFrame) -> pd.DataFrame:
    """The reason columns of one lead as one row per reason (the JSON entries beside their sentences)."""
    entries = json.loads(table["reasons"].iloc[0])
    slots = [c for c in table.columns if c.startswith(("reason_", "counter_reason_"))]
    sentences = [text for text in (table[c].iloc[0] for c in slots) if text]
    reasons = pd.DataFrame(entries, columns=["feature", "value", "contribution", "points", "decisive"])
    reasons.insert(0, "direction", np.where(reasons["contribution"] > 0, "raises", "lowers"))
    reasons.insert(0, "sentence", [s.removesuffix(RAISES).removesuffix(LOWERS) for s in sentences])
    return reasons


def _explain_rules_model(loaded, one: PipelineData, snapshot: pd.DataFrame, lead_id: str,
                         stamp: pd.Timestamp) -> LeadExplanation:  # fmt: skip
    """A rules model's explanation: its probability, score and tier, and the rules that fired."""
    from leadml.modeling.policy import apply_policy

    scoring = loaded.scoring
    scores = scoring.rules_scores(snapshot, one.leads, one.events)
    p = scoring.probability(snapshot, points=scores["points"])
    threshold = _own_threshold(scoring, p, one, snapshot)
    policy = apply_policy(p, threshold, scoring.tiers)
    version = f" version {loaded.version}" if loaded.version else ""
    return LeadExplanation(
        lead_id=lead_id, as_of=stamp, model=f"{loaded.name}{version} (the rules {scoring.ruleset().name}, scored as a model)",
        probability=float(p[0]), score=float(policy["score"].iloc[0]), tier=str(policy["tier"].iloc[0]),
        is_mql=bool(policy["is_mql"].iloc[0]), threshold=threshold,
        reasons=_fired_rules(scores["breakdown"].iloc[0]), points=float(scores["points"].iloc[0]),
    )  # fmt: skip


def _fired_rules(breakdown: str) -> pd.DataFrame:
    """The rules that fired (a breakdown's JSON) as reasons, adding points first, largest first."""
    fired = json.loads(breakdown or "[]")
    ordered = sorted(fired, key=lambda r: (r["points"] < 0, -abs(r["points"])))
    return pd.DataFrame({
        "sentence": [rule_text(r) for r in ordered],
        "direction": ["raises" if r["points"] > 0 else "lowers" for r in ordered],
        "feature": [r["rule"] for r in ordered],
        "value": [None] * len(ordered),
        "contribution": [float(r["points"]) for r in ordered],
        "points": [float(r["points"]) for r in ordered],
        "decisive": [False] * len(ordered),
    })  # fmt: skip


def _explain_rules(config, one: PipelineData, lead_id: str, stamp: pd.Timestamp) -> LeadExplanation:
    from leadml.rules.ruleset import RuleSet

    ruleset = RuleSet.load(config.rules)
    scores = ruleset.score(one.leads, one.events, stamp, warn=False)  # one lead's events: types are missing
    points = float(scores["points"].iloc[0])
    tier = str(scores["tier"].iloc[0])
    mql_tier = next((t for t in ruleset.tiers if t.name.lower() == "mql"), ruleset.tiers[0])
    reasons = _fired_rules(scores["breakdown"].iloc[0])
    return LeadExplanation(
        lead_id=lead_id, as_of=stamp, model=f"rules {ruleset.name}", probability=None, score=points, tier=tier,
        is_mql=tier == mql_tier.name, threshold=mql_tier.min_points, reasons=reasons,
    )  # fmt: skip


# -- the terminal -------------------------------------------------------------------------------
def format_explanation(explanation: LeadExplanation, *, top: int = 5) -> str:
    """The explanation as terminal text: the verdict, then the reasons with their direction and effect.

    A model's reasons show their contribution (log-odds) and effect in probability points, up to
    ``top`` each way, and a lead below the threshold gets its counterfactual; the rules baseline
    shows every fired rule and its points, adding up to the total exactly.
    """
    e = explanation
    head = f"Lead {e.lead_id} at {e.as_of:%Y-%m-%d %H:%M} UTC, scored by {e.model}"
    if e.points is not None and e.probability is not None and e.threshold is not None:  # a rules model
        verdict = "MQL" if e.is_mql else "Not an MQL"
        lines = [head, f"{verdict}: {100 * e.probability:.0f} % (threshold {100 * e.threshold:.0f} %); score "
                       f"{format_number(e.score)} of 100, tier {e.tier}"]  # fmt: skip
        lines.append("Rules that fired:" if len(e.reasons) else "No rule fired.")
        lines += [f"  {p:+6g}  {rule}" for rule, p in zip(e.reasons["feature"], e.reasons["points"])]
        lines.append(f"  {'=':>6}  {format_number(e.points)} points")
        return "\n".join(lines)
    if e.contributions is None:  # the rules baseline
        verdict = "" if e.tier.lower() == "mql" else (", an MQL" if e.is_mql else ", not an MQL")
        threshold = f" (MQL from {format_number(e.threshold)} points)" if e.threshold is not None else ""
        lines = [head, f"{format_number(e.score)} points: tier {e.tier}{verdict}{threshold}"]
        if len(e.reasons):
            lines.append("Rules that fired:")
            lines += [f"  {p:+6g}  {rule}" for rule, p in zip(e.reasons["feature"], e.reasons["points"])]
            lines.append(f"  {'=':>6}  {format_number(e.score)} points")
        else:
            lines.append("No rule fired.")
        return "\n".join(lines)
    body = describe_lead(e.contributions, e.features, e.feature_info, 0, threshold=e.threshold, top=top,
                         counterfactual="" if e.is_mql else e.counterfactual, title="why").splitlines()  # fmt: skip
    verdict = body[0].removeprefix("why: ")  # "MQL: 41 % (threshold 30 %)"
    return "\n".join([head, f"{verdict}; score {format_number(e.score)} of 100, tier {e.tier}", *body[1:]])

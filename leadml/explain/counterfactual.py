"""What would have made a lead an MQL: the smallest change in its behaviour, checked against the model.

For a lead below the MQL threshold, :func:`counterfactuals` tries ``k = 1, 2, ... max_events`` more
events of each actionable behaviour (an event type such as ``demo_request``, or an attribute count
such as ``page_view[pricing]``), rescores the changed features with the model itself, and keeps
the smallest ``k`` that crosses the threshold ("2 more pricing-page visits or 1 more demo request
would make it an MQL"). Nothing is guessed from contributions: every suggestion was scored.

The change is applied consistently across the features (:func:`apply_action`), as if the ``k``
events had happened just before ``as_of``:

- the action's counts in every window and the counts of its event type (a pricing visit is also a
  page view) grow by ``k``; its ``days_since_last`` becomes 0;
- the totals: ``events__count_<W>d`` and ``events__decayed_<H>d`` grow by ``k`` (a fresh event
  weighs 1), ``events__velocity_7d`` by ``k``, ``events__active_days_<W>d`` by one day (capped at
  ``W``; the new events share one day), ``events__days_since_last`` becomes 0;
- profile fields, lead age and scenario steps do not change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadml.features.metadata import FeatureInfo

COUNT = re.compile(r"^(?P<action>.+)__count_(?P<window>\d+(?:\.\d+)?)d$")
ACTIVE = re.compile(r"^events__active_days_(?P<window>\d+(?:\.\d+)?)d$")
DECAYED = re.compile(r"^events__decayed_\d+(?:\.\d+)?d$")

# Behaviours nobody should be asked for: opting out, the purchase itself, job hunting.
NOT_ACTIONABLE = ("unsubscribe", "email_unsubscribe", "form_submit[purchase]", "page_view[careers]")

# event type -> (one, many) as said after "1 more" / "2 more"
ACTION_NOUNS: dict[str, tuple[str, str]] = {
    "page_view": ("page view", "page views"),
    "site_visit": ("site visit", "site visits"),
    "email_open": ("opened e-mail", "opened e-mails"),
    "email_click": ("e-mail click", "e-mail clicks"),
    "form_submit": ("form submission", "form submissions"),
    "demo_request": ("demo request", "demo requests"),
    "contact_sales": ("request to talk to sales", "requests to talk to sales"),
    "pricing_view": ("look at pricing", "looks at pricing"),
    "webinar_register": ("webinar registration", "webinar registrations"),
    "webinar_attend": ("webinar attended", "webinars attended"),
    "download": ("download", "downloads"),
    "content_download": ("download", "downloads"),
    "community_join": ("community join", "community joins"),
    "community_post": ("community post", "community posts"),
    "trial_start": ("trial start", "trial starts"),
    "trial_signup": ("trial sign-up", "trial sign-ups"),
    "trial_login": ("trial login", "trial logins"),
    "product_login": ("product login", "product logins"),
    "product_usage": ("product use", "product uses"),
    "product_active_day": ("day of product use", "days of product use"),
    "feature_use": ("use of a product feature", "uses of product features"),
    "chat": ("chat", "chats"),
    "chat_message": ("chat message", "chat messages"),
    "meeting": ("meeting with sales", "meetings with sales"),
    "call": ("call with sales", "calls with sales"),
    "event_attend": ("event attended", "events attended"),
    "review_comment": ("review or comment", "reviews or comments"),
    "ad_click": ("ad click", "ad clicks"),
    "social_click": ("social media click", "social media clicks"),
}
ATTRIBUTE_NOUNS: dict[str, tuple[str, str]] = {
    "page_view": ("{v}-page visit", "{v}-page visits"),
    "site_visit": ("{v}-page visit", "{v}-page visits"),
    "download": ("{v} download", "{v} downloads"),
    "content_download": ("{v} download", "{v} downloads"),
    "form_submit": ("{v} form submission", "{v} form submissions"),
}


@dataclass(frozen=True)
class Action:
    """One actionable behaviour: an event type, or an event type with one attribute value."""

    name: str  # "demo_request" or "page_view[pricing]"
    event_type: str
    value: str | None = None

    def phrase(self, k: int) -> str:
        """``"1 more demo request"``, ``"2 more pricing-page visits"``."""
        if self.value is not None and self.event_type in ATTRIBUTE_NOUNS:
            one, many = (t.replace("{v}", self.value.replace("_", " ")) for t in ATTRIBUTE_NOUNS[self.event_type])
        elif self.event_type in ACTION_NOUNS:
            one, many = ACTION_NOUNS[self.event_type]
            if self.value is not None:
                one, many = f"{one} ({self.value.replace('_', ' ')})", f"{many} ({self.value.replace('_', ' ')})"
        else:
            label = self.name.replace("_", " ")
            one, many = f"'{label}' event", f"'{label}' events"
        return f"{k} more {one if k == 1 else many}"


def parse_action(name: str) -> Action:
    """``"page_view[pricing]"`` -> ``Action("page_view[pricing]", "page_view", "pricing")``."""
    typed = re.match(r"^(?P<type>[^\[]+)\[(?P<value>.+)\]$", name)
    return Action(name, typed["type"], typed["value"]) if typed else Action(name, name)


def find_actions(feature_info: Sequence[FeatureInfo], *, exclude: Sequence[str] = NOT_ACTIONABLE) -> list[Action]:
    """The behaviours the features count (``<action>__count_<W>d``), minus ``exclude``."""
    actions: dict[str, Action] = {}
    for info in feature_info:
        match = COUNT.match(info.name)
        if not match or info.group != "behaviour" or match["action"] == "events":
            continue
        name = match["action"]
        if name in exclude or name in actions:
            continue
        actions[name] = parse_action(name)
    return list(actions.values())


def apply_action(features: pd.DataFrame, action: Action | str, k: int) -> pd.DataFrame:
    """The features as if ``k`` more events of ``action`` had happened just before as_of (a copy)."""
    if isinstance(action, str):
        action = parse_action(action)
    changed = features.copy()
    grows = {action.name, action.event_type, "events"}
    for column in features.columns:
        count, active = COUNT.match(column), ACTIVE.match(column)
        if count and count["action"] in grows:
            changed[column] = features[column] + k
        elif column in (f"{action.name}__days_since_last", f"{action.event_type}__days_since_last",
                        "events__days_since_last"):  # fmt: skip
            changed[column] = features[column] * 0.0
            changed[column] = changed[column].fillna(0.0)
        elif DECAYED.match(column) or column == "events__velocity_7d":
            changed[column] = features[column] + k
        elif active:
            changed[column] = np.minimum(features[column] + 1, float(active["window"]))
    return changed


def _probability(model, features: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(features)[:, 1], dtype=float)


def counterfactuals(
    model,
    features: pd.DataFrame,
    feature_info: Sequence[FeatureInfo],
    *,
    threshold: float,
    max_events: int = 5,
    alternatives: int = 2,
    actions: Sequence[Action | str] | None = None,
    exclude: Sequence[str] = NOT_ACTIONABLE,
    rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """The smallest behaviour change that makes each lead below the threshold an MQL.

    Parameters:
        model: the model that scores (``predict_proba`` on the feature frame), calibrated.
        features: the leads' feature frame (only its feature columns are passed to the model).
        feature_info: the features' metadata (which counts exist).
        threshold: the MQL threshold (a calibrated probability).
        max_events: the most events of one kind tried.
        alternatives: how many different actions to name ("... or ...").
        actions: the behaviours to try (default: every counted one but ``exclude``).
        rows: positions of the leads to search (default: every lead below the threshold).

    Returns:
        A frame on ``features.index``: ``counterfactual`` (text, "" for MQLs and unsearched rows),
        ``counterfactual_action`` and ``counterfactual_events`` (the best change), and
        ``counterfactual_probability`` (the probability after it).
    """
    names = [info.name for info in feature_info if info.name in features.columns]
    X = features[names]
    if actions is None:
        chosen = find_actions(feature_info, exclude=exclude)
    else:
        chosen = [a if isinstance(a, Action) else parse_action(a) for a in actions]
    p = _probability(model, X)
    if rows is None:
        rows = np.flatnonzero(p < threshold)
    rows = np.asarray(rows, dtype=np.int64)
    rows = rows[p[rows] < threshold]
    n_actions = len(chosen)
    found_k = np.zeros((len(rows), n_actions), dtype=np.int64)  # 0 = not crossing within max_events
    found_p = np.zeros((len(rows), n_actions))
    for k in range(1, max_events + 1):
        open_rows = (found_k > 0).sum(axis=1) < alternatives
        for a, action in enumerate(chosen):
            todo = np.flatnonzero(open_rows & (found_k[:, a] == 0))
            if len(todo) == 0:
                continue
            changed = apply_action(X.iloc[rows[todo]], action, k)
            q = _probability(model, changed)
            hit = q >= threshold
            found_k[todo[hit], a] = k
            found_p[todo[hit], a] = q[hit]
    return _frame(features.index, rows, chosen, found_k, found_p, alternatives, max_events)


def _frame(index, rows, chosen, found_k, found_p, alternatives, max_events) -> pd.DataFrame:
    """Per lead, the best ``alternatives`` actions (fewest events, then highest probability) as text."""
    n = len(index)
    out = pd.DataFrame(index=index)
    text = np.full(n, "", dtype=object)
    best_action = np.full(n, None, dtype=object)
    best_k = pd.array(np.full(n, pd.NA), dtype="Int64")
    best_p = np.full(n, np.nan)
    if len(rows) and len(chosen):
        key = np.where(found_k > 0, found_k - found_p * 1e-3, np.inf)  # fewer events first, then higher p
        ranked = np.argsort(key, axis=1, kind="stable")[:, :alternatives]
        ranked_k = np.take_along_axis(found_k, ranked, axis=1)
        combos = np.where(ranked_k > 0, ranked * (max_events + 1) + ranked_k, -1)
        uniques, inverse = np.unique(combos, axis=0, return_inverse=True)
        sentences = np.array([_sentence(u, chosen, max_events) for u in uniques], dtype=object)
        text[rows] = sentences[inverse.ravel()]
        has = ranked_k[:, 0] > 0
        first = ranked[:, 0]
        best_action[rows[has]] = np.array([a.name for a in chosen], dtype=object)[first[has]]
        best_k[rows[has]] = ranked_k[has, 0]
        best_p[rows[has]] = found_p[np.flatnonzero(has), first[has]]
    out["counterfactual"] = pd.array(text, dtype="str")
    out["counterfactual_action"] = pd.array(best_action, dtype="str")
    out["counterfactual_events"] = best_k
    out["counterfactual_probability"] = best_p
    return out


def _sentence(combo: np.ndarray, chosen: Sequence[Action], max_events: int) -> str:
    parts = [chosen[c // (max_events + 1)].phrase(int(c % (max_events + 1))) for c in combo if c >= 0]
    if not parts:
        return f"No single behaviour of up to {max_events} more events would make it an MQL"
    return " or ".join(parts) + " would make it an MQL"

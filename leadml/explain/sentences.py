"""Reasons in plain language: SHAP contributions and rules breakdowns -> the reason columns.

:func:`reason_table` turns :class:`~leadml.modeling.contributions.Contributions` into the columns that
scoring writes beside the probability: ``reason_1..3`` (what raised the lead, strongest first),
``counter_reason_1..2`` (what lowered it), ``reasons`` (JSON: feature, value, contribution in
log-odds, effect in percentage points, and whether the reason alone decided the MQL flag) and
``why`` (MQL or not, against the threshold). :func:`rules_reason_table` gives the same columns
for the rules baseline from its exact breakdown. :func:`describe_lead` prints one lead for the
terminal, and :func:`rows_to_explain` picks the leads worth explaining (MQLs and the top 20 % by
default: a nightly job need not pay for reasons nobody reads).

Sentences come from the features' templates ("Viewed the pricing page {value} times in the last
30 days") with the direction added: "Viewed the pricing page 4 times in the last 30 days
(raises)". Behaviour features are worded for sales from their names (``text.wording``): a count
of 0 is an absence ("No pricing page visit in the last 30 days"), a recency is recent activity
when it raises the lead ("Requested a demo 2 days ago") and a gap when it lowers it ("No demo
request for 40 days"), "Never requested a demo" when there was none; days are whole ("today",
"1 day", "5 days"). Everything is vectorised over leads: a sentence is rendered once per distinct
(feature, value, direction), and the per-lead strings are assembled column-wise with Arrow kernels
(in Python for a few leads, such as the one lead a served event rescores: the same strings, cheaper).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.explain.selection import rows_to_explain  # noqa: F401  (still imported from here)
from leadml.features.behaviour.text import Wording, path_noun, wording
from leadml.features.metadata import FeatureInfo
from leadml.modeling.contributions import MISSING_SUFFIX, Contributions

RAISES, LOWERS = " (raises)", " (lowers)"
MISSING_LEVELS = frozenset({"missing"})
_ONCE = re.compile(r"(?<![\d.,])1 times\b")
_ONE_DAY = re.compile(r"(?<![\d.,])1 days\b")
DAY_FAMILIES = frozenset({"days_since", "lead_age"})
PLAIN_NUMBERS = (1e-4, 1e10)  # magnitudes that Arrow and Python's repr write alike (but for a trailing ".0")
SMALL_TABLE = 128  # leads: up to this many, reason_table joins its texts in Python (faster below ~300 leads)


# -- values and sentences ---------------------------------------------------------------------
def format_number(value: float) -> str:
    """A number as a sentence shows it: ``4.0 -> "4"``, ``2.345 -> "2.3"``, ``45000 -> "45,000"``."""
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    rounded = round(float(value), 1) + 0.0  # + 0.0: no "-0"
    return str(int(rounded)) if rounded.is_integer() else f"{rounded:.1f}"


def _fix_grammar(text: str) -> str:
    if "1 times" not in text and "1 days" not in text:  # nothing to fix (most sentences): no regex run
        return text
    return _ONE_DAY.sub("1 day", _ONCE.sub("once", text))


def missing_template(info: FeatureInfo, missing_info: FeatureInfo | None = None) -> str:
    """The sentence of a feature whose value is missing (no event yet, a field not given)."""
    if missing_info is not None:
        return missing_info.template
    template = info.template
    if (
        info.name.endswith("__days_since_last")
        and template.startswith("Last ")
        and template.endswith(" {value} days ago")
    ):
        return "No " + template[len("Last ") : -len(" {value} days ago")] + " yet"
    if info.name.endswith("__days_since_last") and " for {value} days" in template:
        return template.replace(" for {value} days", " yet")
    if template.endswith(": {value}"):
        return template[: -len(": {value}")] + " not given"
    return template.replace("{value}", "unknown")


def whole_days(days: float) -> int:
    """Days as a salesperson counts them: whole days gone by (``5.8 -> 5``, ``0.4 -> 0``)."""
    return max(math.floor(days), 0)


def days_ago(days: float) -> str:
    """``0.4 -> "today"``, ``1.9 -> "1 day ago"``, ``5.2 -> "5 days ago"``."""
    n = whole_days(days)
    return "today" if n == 0 else f"{_days(n)} ago"


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def _times(text: str, one: str, many: str) -> str:
    """``"1" -> "1 touch"``, ``"3" -> "3 touches"``."""
    return f"{text} {one if text == '1' else many}"


def _number(value_text: str | None) -> float | None:
    """The number a value text shows (``"45,000" -> 45000.0``); None when missing or not a number."""
    if value_text is None:
        return None
    try:
        return float(value_text.replace(",", ""))
    except ValueError:
        return None


def _worded(info: FeatureInfo, words: Wording, value_text: str | None, raises: bool | None) -> str:
    """The sales sentence of a behaviour feature: absences, recencies, whole days, never a NaN."""
    value = _number(value_text)
    family = words.family
    if family == "days_since":
        if value is None:
            return words.never
        days = whole_days(value)
        # a gap when it lowers the lead (or, for an unsubscribe, when it raises it); else the last time
        if days >= 1 and raises is not None and raises == words.negative:
            return f"No {words.noun} for {_days(days)}"
        return f"{words.did_once} {days_ago(days)}"
    if family == "lead_age":
        return "Lead creation date not known" if value is None else f"Became a lead {days_ago(value)}"
    if family == "velocity":
        if value is None:
            return "Change in touches over the last 7 days not known"
        if value == 0:
            return "As many touches in the last 7 days as in the 7 days before"
        more = "more" if value > 0 else "fewer"
        change = _times(format_number(abs(value)), f"{more} touch", f"{more} touches")
        return f"{change} in the last 7 days than in the 7 days before"
    if family == "decayed":
        tail = f"(older touches count less: half after {words.half_life} days)"
        if not value:
            return f"No recent engagement {tail}"
        return f"Engagement worth {_times(format_number(value), 'recent touch', 'recent touches')} {tail}"
    if not value:  # counts, active days and scenario steps at 0 (or not recorded): what did not happen
        if family == "count":
            return f"No {words.noun} {words.window}"
        if family == "active_days":
            return f"No active day {words.window}"
        if family == "value":  # no valued event in the window: the sum is 0, the mean and max missing
            return f"No {words.noun} {words.window}"
        steps = f"{words.steps} steps" if words.steps is not None else "steps"
        return f"Completed none of the {steps} of the {words.scenario}"
    if family == "scenario" and words.steps is not None and value >= words.steps:
        return f"Completed all {words.steps} steps of the {words.scenario}, in order"
    return _fix_grammar(info.template.format(value=value_text, name=info.name, window=info.window_days))


def render(
    info: FeatureInfo,
    value_text: str | None,
    missing_info: FeatureInfo | None = None,
    *,
    raises: bool | None = None,
) -> str:
    """One feature's sentence for one value (``None`` = missing).

    ``raises`` is the reason's direction (True raises the lead, False lowers it, None unknown): a
    recency reads as recent activity when it raises the lead and as a gap when it lowers it.
    """
    words = wording(info)
    if words is not None:
        return _worded(info, words, value_text, raises)
    if value_text is None:
        template = missing_template(info, missing_info)
    elif value_text == "0" and info.name.endswith(MISSING_SUFFIX) and info.template.endswith(" not given"):
        return info.template.removesuffix(" not given") + " given"  # the flag of a field that was given
    else:
        template = info.template
    text = template.format(value=value_text, name=info.name, window=info.window_days)
    return _fix_grammar(text)


def _value_texts(
    column: Any, rows: np.ndarray, by_day: bool = False
) -> tuple[list[str | None], np.ndarray, list[str] | None, np.ndarray | None]:
    """The values of ``column[rows]``: (distinct display texts, None = missing; each row's index into
    them; their JSON labels, one a text, or None for numbers; else each row's number for JSON).

    ``column`` is a column's own array (numpy, a Categorical or another pandas array, as
    :func:`_column` reads it): no Series per feature, so one lead costs little. Numbers are
    rounded to what a sentence shows before they are made distinct (``by_day``: down to whole
    days), so a continuous feature renders a few hundred sentences, not one per lead; their JSON
    values (rounded to 4 decimals, NaN = missing) are cast to text by the caller, for every feature
    at once.
    """
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        uniques, inverse = _distinct(column.codes[rows])
        categories = _category_texts(dtype)
        found = [None if u < 0 else categories[u] for u in uniques.tolist()]
        shown = [None if v is None or v in MISSING_LEVELS else v for v in found]
        labels = [json.dumps(v) if v is not None else "null" for v in shown]
        return [None if v is None else v.replace("_", " ") for v in shown], inverse, labels, None
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        if isinstance(dtype, np.dtype):  # what Series.to_numpy(dtype=float, na_value=nan) gives
            numbers = np.asarray(column)[rows].astype(float)
        else:
            numbers = column[rows].to_numpy(dtype=float, na_value=np.nan)
        if by_day:
            shown = np.floor(np.maximum(numbers, 0))
        else:
            shown = np.where(np.abs(numbers) >= 10_000, np.round(numbers), np.round(numbers, 1))
        uniques, inverse = _distinct(shown)  # NaN sorts last
        texts: list[str | None] = [None if np.isnan(u) else format_number(u) for u in uniques.tolist()]
        return texts, inverse, None, np.round(numbers, 4) + 0.0
    chosen = pd.Series(column[rows], dtype=dtype, copy=False)
    codes, levels_found = pd.factorize(chosen.astype(object), use_na_sentinel=True)
    levels = [str(u) for u in levels_found]
    texts = [v.replace("_", " ") if v.lower() not in MISSING_LEVELS else None for v in levels] + [None]
    inverse = np.where(codes < 0, len(levels), codes)
    return texts, inverse, [json.dumps(v) for v in levels] + ["null"], None


_CATEGORY_TEXTS: dict[int, tuple[pd.CategoricalDtype, list[str]]] = {}  # id -> (the dtype itself, its texts)


def _category_texts(dtype: pd.CategoricalDtype) -> list[str]:
    """Every category of ``dtype`` as text, read once per dtype object: a served lead's frame keeps
    its model's dtypes, and one category read off a text Index costs ~8 µs. Keyed by identity (the
    entry holds the dtype, so its id is not reused); equal dtypes may order their categories otherwise."""
    entry = _CATEGORY_TEXTS.get(id(dtype))
    if entry is None or entry[0] is not dtype:
        if len(_CATEGORY_TEXTS) >= 256:  # dtypes of frames gone by: start again
            _CATEGORY_TEXTS.clear()
        entry = (dtype, [str(category) for category in dtype.categories.tolist()])
        _CATEGORY_TEXTS[id(dtype)] = entry
    return entry[1]


def _column(features: pd.DataFrame, name: str) -> Any:
    """Column ``name``'s own array (numpy, a Categorical or another pandas array), read off the
    frame's blocks by position: ~2 µs where a frame lookup builds a Series for ~20 µs. By name
    where a pandas version lacks that reader or the name repeats."""
    read = getattr(features, "_get_column_array", None)  # pandas' own: the block's row or array
    if read is not None:
        position = features.columns.get_loc(name)
        array = read(position) if isinstance(position, int) else None  # a repeated name: a slice or mask
        if array is not None and getattr(array, "ndim", 1) == 1:
            return array
    column = features[name]
    return column.array if isinstance(column.dtype, pd.api.extensions.ExtensionDtype) else column.to_numpy()


def feature_label(name: str) -> str:
    """A short label of a feature for charts: ``page_view[pricing]__count_30d`` -> ``page view: pricing · count 30d``."""
    head, _, tail = name.partition("__")
    head = re.sub(r"\[(.+)\]", r": \1", head).replace("_", " ")
    return f"{head} · {tail.replace('_', ' ')}" if tail else head


# -- the reason columns of a model ------------------------------------------------------------
def _top(values: np.ndarray, count: int, positive: bool, min_effect: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``count`` largest (or most negative) columns, strongest first, and whether each
    clears ``min_effect``: ``count`` passes of argmax (argmin), faster than a partition for a few
    reasons. Picked cells are masked in place and restored, so the matrix is never copied."""
    n, k = values.shape
    count = min(count, k)
    rows = np.arange(n)
    idx = np.empty((n, count), dtype=np.int64)
    picked = np.empty((n, count))
    find, mask = (values.argmax, -np.inf) if positive else (values.argmin, np.inf)
    done = 0
    try:
        for slot in range(count):
            best = find(axis=1)  # the first of equal values: ties keep the feature order
            idx[:, slot] = best
            picked[:, slot] = values[rows, best]
            values[rows, best] = mask
            done += 1
    finally:
        for slot in range(done):
            values[rows, idx[:, slot]] = picked[:, slot]
    strength = picked if positive else -picked
    return idx, strength > min_effect


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``, without its fixed cost when there is one value (one lead)."""
    if len(values) == 1:
        return values, np.zeros(1, dtype=np.intp)
    return np.unique(values, return_inverse=True)


def _reason_texts(
    names: Sequence[str],
    features: pd.DataFrame,
    infos: dict[str, FeatureInfo],
    rows: np.ndarray,
    feats: np.ndarray,
    lowers: np.ndarray,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per reason (a lead ``rows[i]`` and its feature ``names[feats[i]]``, lowering the lead where
    ``lowers[i]``): its sentence with the direction, its JSON head and its JSON value.

    One pass per feature, not per lead: its column is read once for every lead it explains, and a
    sentence is rendered once per distinct value and direction. Returns (a pool of texts that starts
    with the JSON flags ``false}`` and ``true}``; ``(3, len(rows))`` positions of each reason's
    sentence, head and value in the pool followed by the JSON numbers; those numbers, rounded).
    """
    m = len(rows)
    pool = ["false}", "true}"]
    at = np.empty((3, m), dtype=np.int64)
    numbers: list[np.ndarray] = []
    numbered: list[np.ndarray] = []
    order = np.argsort(feats, kind="stable")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(feats[order])) + 1, [m]]) if m else np.zeros(1, np.int64)
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):  # none when no lead has a reason
        where = order[a:b]
        name = names[int(feats[where[0]])]
        info = infos.get(name) or FeatureInfo(name, "profile", name)
        words, by_day, head = _feature_words(info)
        texts, inverse, labels, values = _value_texts(_column(features, name), rows[where], by_day=by_day)
        missing = infos.get(name + MISSING_SUFFIX)
        # each distinct value said both ways: the raising sentences first, then the lowering ones
        at[0, where] = len(pool) + inverse + len(texts) * lowers[where]
        for raises, direction in ((True, RAISES), (False, LOWERS)):  # render() with the wording found above
            if words is None:
                pool += [render(info, t, missing, raises=raises) + direction for t in texts]
            else:
                pool += [_worded(info, words, t, raises) + direction for t in texts]
        at[1, where] = len(pool)
        pool.append(head)
        if values is not None:
            numbers.append(values)
            numbered.append(where)
        elif labels is not None:
            at[2, where] = len(pool) + inverse
            pool += labels
    if not numbers:
        return pool, at, np.empty(0)
    at[2, np.concatenate(numbered)] = len(pool) + np.arange(sum(len(v) for v in numbers))
    return pool, at, np.concatenate(numbers)


def _feature_words(info: FeatureInfo) -> tuple[Wording | None, bool, str]:
    """What a feature's reasons share whatever the value, worked out once per feature: its wording
    (None: its template), whether its values count whole days, and the head of its JSON entry."""
    try:
        return _cached_feature_words(info)
    except TypeError:  # an info that cannot be a key (a hand-made one with a list in it)
        return _cached_feature_words.__wrapped__(info)


@functools.lru_cache(maxsize=4096)
def _cached_feature_words(info: FeatureInfo) -> tuple[Wording | None, bool, str]:
    """:func:`_feature_words`, kept per info (equal infos say the same)."""
    words = wording(info)
    by_day = words is not None and words.family in DAY_FAMILIES
    return words, by_day, f', {{"feature": {json.dumps(info.name)}, "value": '


def _json_numbers(values: np.ndarray, contributions: np.ndarray, points: np.ndarray):
    """JSON numbers as Arrow strings, in one cast: the values (rounded to 4 decimals; NaN -> ``null``),
    then the contributions to 4 decimals and the points to 2 (+ 0.0 turns -0.0 into 0.0)."""
    import pyarrow as pa

    rounded, missing = _rounded(values, contributions, points)
    return pa.array(rounded, type=pa.float64(), mask=missing).cast(pa.string()).fill_null("null")


def _json_number_texts(values: np.ndarray, contributions: np.ndarray, points: np.ndarray) -> list[str]:
    """:func:`_json_numbers` as a list, written in Python for a few reasons (the Arrow calls cost
    more than a lead's whole text). Arrow writes a float as ``repr`` does, less a trailing ``.0``,
    where both write it plainly: 0 and magnitudes from 1e-4 up to 1e10 (checked against
    Arrow in tests/explain/test_reasons_fast_paths.py); any other number sends all of them to Arrow."""
    rounded, missing = _rounded(values, contributions, points)
    magnitude = np.abs(rounded)
    plain = (magnitude == 0) | ((magnitude >= PLAIN_NUMBERS[0]) & (magnitude < PLAIN_NUMBERS[1]))
    if not (plain | missing).all():
        return _json_numbers(values, contributions, points).to_pylist()
    return ["null" if gone else _plain_number(x) for x, gone in zip(rounded.tolist(), missing.tolist())]


def _plain_number(x: float) -> str:
    """A float as Arrow's cast to string writes it, for 0 and magnitudes in :data:`PLAIN_NUMBERS`."""
    text = repr(x)
    return text[:-2] if text.endswith(".0") else text


def _rounded(values: np.ndarray, contributions: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The JSON numbers before they are written, and which are missing (the values' NaN)."""
    rounded = np.concatenate([values, np.round(contributions, 4), np.round(points, 2)]) + 0.0
    missing = np.concatenate([np.isnan(values), np.zeros(2 * len(points), dtype=bool)])
    return rounded, missing


@dataclass(frozen=True)
class _Placed:
    """The texts of a table's reasons and where they go: reason ``i`` is lead ``rows[i]``'s slot
    ``slots[i]`` (the ``n_pos`` raising slots first); ``at[:, i]`` are the positions of its sentence,
    JSON head and value in ``pool`` followed by the first ``n_values`` of ``numbers`` (Arrow strings:
    the values, then each reason's contribution, then its points); ``decisive[i]`` its flag."""

    n: int
    n_pos: int
    n_slots: int
    rows: np.ndarray
    slots: np.ndarray
    at: np.ndarray
    decisive: np.ndarray
    pool: list[str]
    numbers: Any
    n_values: int

    def sentence_columns(self, sentences: Sequence, blank: Sequence, top_positive: int, top_negative: int) -> dict:
        """``reason_*`` and ``counter_reason_*`` from the slots' ``sentences``; ``blank`` for a slot
        that the model's features do not fill (more reasons asked than there are features)."""
        columns = {f"reason_{s + 1}": sentences[s] if s < self.n_pos else blank for s in range(top_positive)}
        for s in range(top_negative):
            slot = self.n_pos + s
            columns[f"counter_reason_{s + 1}"] = sentences[slot] if slot < self.n_slots else blank
        return columns


def _columns_in_arrow(placed: _Placed, top_positive: int, top_negative: int) -> dict:
    """The text columns (Arrow arrays) of many leads: a fixed number of vectorised Arrow calls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n, m, n_slots, n_values = placed.n, len(placed.rows), placed.n_slots, placed.n_values
    texts = pa.concat_arrays([pa.array(placed.pool, type=pa.string()), placed.numbers.slice(0, n_values)])
    said = texts.take(pa.array(placed.at.ravel()))  # each reason's sentence, head and value
    flags = pa.array(placed.pool[:2], type=pa.string()).take(pa.array(placed.decisive.astype(np.int64)))
    fragments = pc.binary_join_element_wise(
        said.slice(m, m), said.slice(2 * m, m), pa.scalar(', "contribution": '), placed.numbers.slice(n_values, m),
        pa.scalar(', "points": '), placed.numbers.slice(n_values + m, m), pa.scalar(', "decisive": '), flags, "",
    )  # fmt: skip
    # one gather puts every reason in its cell: (sentence or fragment, slot, lead) -> text; the last row is blank
    take = np.full((2 * n_slots + 1) * n, 2 * m, dtype=np.int64)
    take[placed.slots * n + placed.rows] = np.arange(m)
    take[(n_slots + placed.slots) * n + placed.rows] = m + np.arange(m)
    cells = pa.concat_arrays([said.slice(0, m), fragments, pa.array([""], type=pa.string())]).take(pa.array(take))
    sentences = [cells.slice(s * n, n) for s in range(n_slots)]
    columns = placed.sentence_columns(sentences, cells.slice(2 * n_slots * n, n), top_positive, top_negative)
    columns["reasons"] = _join([cells.slice((n_slots + s) * n, n) for s in range(n_slots)], n)
    return columns


def _columns_in_python(placed: _Placed, top_positive: int, top_negative: int) -> dict:
    """The text columns (lists) of a few leads, joined in Python: the same strings as
    :func:`_columns_in_arrow`, without its fixed cost per Arrow call (most of a lead's time)."""
    n, m, n_slots = placed.n, len(placed.rows), placed.n_slots
    texts = placed.pool + placed.numbers  # the numbers as a list (_json_number_texts)
    start = len(placed.pool) + placed.n_values  # each reason's contribution, then its points
    sentences = [[""] * n for _ in range(n_slots)]
    fragments = [[""] * n for _ in range(n_slots)]
    reasons = zip(placed.rows.tolist(), placed.slots.tolist(), *placed.at.tolist(), placed.decisive.tolist())
    for i, (row, slot, said, head, value, decisive) in enumerate(reasons):
        sentences[slot][row] = texts[said]
        fragments[slot][row] = (
            f'{texts[head]}{texts[value]}, "contribution": {texts[start + i]}, '
            f'"points": {texts[start + m + i]}, "decisive": {texts[int(decisive)]}'
        )
    columns = placed.sentence_columns(sentences, [""] * n, top_positive, top_negative)
    columns["reasons"] = ["[" + "".join(slot[row] for slot in fragments)[2:] + "]" for row in range(n)]
    return columns


def _join(parts: list, n_rows: int):
    """Join per-slot Arrow string arrays (each piece starts with ", " or is empty) into ``[...]`` lists."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not parts:
        return pa.array(np.full(n_rows, "[]", dtype=object), type=pa.string())
    inner = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")
    inner = pc.utf8_slice_codeunits(inner, start=2)
    return pc.binary_join_element_wise(pa.scalar("["), inner, pa.scalar("]"), "")


def reason_table(
    contributions: Contributions,
    features: pd.DataFrame,
    feature_info: Sequence[FeatureInfo],
    *,
    probability: np.ndarray | None = None,
    threshold: float | np.ndarray | None = None,
    top_positive: int = 3,
    top_negative: int = 2,
    min_effect: float = 1e-3,
) -> pd.DataFrame:
    """The reason columns of each lead, from its grouped SHAP contributions.

    Parameters:
        contributions: from :func:`~leadml.modeling.contributions.explain_margin` on ``features``.
        features: the feature frame that was explained (same rows, same order).
        feature_info: the features' metadata (templates).
        probability: the leads' calibrated probability (default: ``contributions.probability``).
        threshold: the MQL threshold, or one per lead (an MQL rule by group or by value); marks
            decisive reasons and fills ``why``.
        top_positive / top_negative: how many raising / lowering reasons to give.
        min_effect: contributions smaller than this (log-odds) are not given as reasons.

    Returns:
        A frame on ``contributions.index`` with ``reason_1..`` and ``counter_reason_1..`` (text,
        "" when there is none), ``reasons`` (JSON list of ``feature``, ``value``, ``contribution``,
        ``points``, ``decisive``) and ``why``.

    The texts are joined by Arrow for many leads and in Python for up to :data:`SMALL_TABLE` (a
    served lead): the same strings, as tests/explain/test_reasons_small.py checks.
    """
    n, k = contributions.values.shape
    if len(features) != n:
        raise LeadDataError(f"reason_table: {len(features)} feature rows for {n} explained leads")
    p = contributions.probability if probability is None else np.asarray(probability, dtype=float)
    infos = {info.name: info for info in feature_info}
    pos_idx, pos_ok = _top(contributions.values, top_positive, True, min_effect)
    neg_idx, neg_ok = _top(contributions.values, top_negative, False, min_effect)
    idx = np.hstack([pos_idx, neg_idx])
    rows_all, slots_all = np.nonzero(np.hstack([pos_ok, neg_ok]))
    n_pos = pos_idx.shape[1]
    feats_all = idx[rows_all, slots_all]
    points = contributions.points(rows_all, feats_all)
    decisive = _decisive(p, threshold, rows_all, slots_all < n_pos, points)

    pool, at, values = _reason_texts(contributions.features, features, infos, rows_all, feats_all, slots_all >= n_pos)
    small = n <= SMALL_TABLE
    said = contributions.values[rows_all, feats_all]
    numbers = _json_number_texts(values, said, points) if small else _json_numbers(values, said, points)
    placed = _Placed(n, n_pos, idx.shape[1], rows_all, slots_all, at, decisive, pool, numbers, len(values))
    columns = (_columns_in_python if small else _columns_in_arrow)(placed, top_positive, top_negative)
    if threshold is not None:
        columns["why"] = _why(p, threshold)
    if small:  # one conversion of every column's texts, then a slice per column
        text = pd.array([t for column in columns.values() for t in column], dtype="str")
        data = {name: text[i * n : (i + 1) * n] for i, name in enumerate(columns)}
    else:
        data = {name: pd.array(column, dtype="str") for name, column in columns.items()}
    return _text_frame(data, contributions.index)


def _text_frame(data: dict[str, Any], index: pd.Index) -> pd.DataFrame:
    """``pd.DataFrame(data, index=index)`` for columns that are already pandas text arrays of the
    index's length: the same frame, without the constructor's checks and copies per column (most
    of a served lead's table, ~0.4 ms) and with the column labels built once per set of names."""
    from_arrays = getattr(pd.DataFrame, "_from_arrays", None)  # pandas' own constructor from arrays
    if from_arrays is None:
        return pd.DataFrame(data, index=index)
    labels = _labels(tuple(data)).view()  # a new Index object on the same labels: its name stays its own
    return from_arrays(list(data.values()), columns=labels, index=index, verify_integrity=False)


@functools.lru_cache(maxsize=16)
def _labels(names: tuple[str, ...]) -> pd.Index:
    """The column labels of a reason table (an Index costs ~0.1 ms to infer from names)."""
    return pd.Index(list(names))


def _decisive(
    p: np.ndarray, threshold: float | np.ndarray | None, rows: np.ndarray, raising: np.ndarray, points: np.ndarray
) -> np.ndarray:
    """Per reason, whether it alone decided the lead's MQL flag: without it, the lead would fall
    below (a raising reason of an MQL) or reach (a lowering reason of another lead) the threshold."""
    if threshold is None:
        return np.zeros(len(rows), bool)
    p_without = p[rows] - points / 100.0
    bar = np.broadcast_to(np.asarray(threshold, dtype=float), p.shape)[rows]
    mql = p[rows] >= bar
    return np.where(raising, mql & (p_without < bar), ~mql & (p_without >= bar))


def describe_lead(
    contributions: Contributions,
    features: pd.DataFrame,
    feature_info: Sequence[FeatureInfo],
    position: int,
    *,
    threshold: float | None = None,
    top: int = 5,
    counterfactual: str = "",
    title: str = "",
) -> str:
    """One lead's explanation as terminal text (``leadml explain --lead ID``): every reason with its
    contribution (log-odds) and effect (percentage points), strongest first, up to ``top`` each way."""
    row = features.iloc[[position]]
    one = contributions.take([position])
    table = reason_table(one, row, feature_info, threshold=threshold, top_positive=top, top_negative=top)
    reasons = json.loads(table["reasons"].iloc[0])
    texts = [t for c in table.columns if c.startswith(("reason_", "counter_reason_")) for t in [table[c].iloc[0]] if t]
    p = float(one.probability[0])
    head = title or "Lead"
    lines = [f"{head}: {table['why'].iloc[0]}" if threshold is not None else f"{head}: probability {p:.1%}"]
    lines.append(f"average lead (base value): {one.base_value:+.2f} log-odds; this lead: {float(one.margin[0]):+.2f}")
    for label, sign in (("Raised by:", 1), ("Lowered by:", -1)):
        chosen = [(r, t) for r, t in zip(reasons, texts) if np.sign(r["contribution"]) == sign]
        if chosen:
            lines.append(label)
            lines += [f"  {r['contribution']:+.2f}  {t.rsplit(' (', 1)[0]}  ({r['points']:+.1f} points)"
                      + ("  <- decided the MQL flag" if r["decisive"] else "") for r, t in chosen]  # fmt: skip
    if counterfactual:
        lines.append(counterfactual)
    return "\n".join(lines)


def _percent(values: np.ndarray) -> list[str]:
    """Probabilities as percent texts: 0.342 -> "34 %", 0.004 -> "0.4 %" (formatted in Python, element by
    element: several times faster than numpy's string functions for a run, and cheap for one lead)."""
    pct = np.asarray(values, dtype=float) * 100
    whole = np.round(pct).astype(np.int64).tolist()
    return [f"{x:.1f} %" if x < 1 else f"{w} %" for x, w in zip(pct.tolist(), whole)]


def _why(p: np.ndarray, threshold: float | np.ndarray) -> list[str]:
    """ "MQL: 34 % (threshold 21 %)" / "Not an MQL: 8 % (threshold 21 %)" (each lead's own threshold)."""
    bar = np.broadcast_to(np.asarray(threshold, dtype=float), p.shape)
    mql = (p >= bar).tolist()
    return [
        f"{'MQL: ' if is_mql else 'Not an MQL: '}{shown} (threshold {limit})"
        for is_mql, shown, limit in zip(mql, _percent(p), _percent(bar))
    ]


# -- the reason columns of the rules baseline -------------------------------------------------
def rule_text(entry: dict) -> str:
    """What a fired rule of a breakdown says: its name, or for a scenario the steps done in order."""
    if "steps" in entry and "of" in entry:
        done, of = int(entry["steps"]), int(entry["of"])
        said = f"all {of}" if done >= of else f"{done} of {of}"
        return f"Completed {said} steps of the {path_noun(entry['rule'])}, in order"
    return str(entry["rule"])


def _rule_texts(breakdown: str, top_positive: int, top_negative: int) -> list[str]:
    fired = json.loads(breakdown) if breakdown else []
    pos = sorted((r for r in fired if r["points"] > 0), key=lambda r: -r["points"])[:top_positive]
    neg = sorted((r for r in fired if r["points"] < 0), key=lambda r: r["points"])[:top_negative]
    texts = [f"{rule_text(r)} (+{format_number(r['points'])} points)" for r in pos]
    texts += [""] * (top_positive - len(pos))
    texts += [f"{rule_text(r)} ({format_number(r['points'])} points)" for r in neg]
    return texts + [""] * (top_negative - len(neg))


def rules_reason_table(scores: pd.DataFrame, *, top_positive: int = 3, top_negative: int = 2) -> pd.DataFrame:
    """The reason columns of rules scores (``RuleSet.score*`` output), from the exact breakdown.

    ``reason_*`` are the rules that added points (most first), ``counter_reason_*`` those that took
    points away ("Student (-30 points)"); ``reasons`` is the breakdown itself (every fired rule
    and its points, adding up to ``points`` exactly); ``why`` names the tier and the points.
    Each distinct breakdown is parsed once, so a million leads cost little.
    """
    if "breakdown" not in scores.columns:
        raise LeadDataError("rules scores: no 'breakdown' column; score the leads with RuleSet.score* first")
    codes, uniques = pd.factorize(scores["breakdown"].fillna("[]").astype(str))
    table = np.array([_rule_texts(u, top_positive, top_negative) for u in uniques], dtype=object)
    table = table.reshape(len(uniques), top_positive + top_negative)
    out = pd.DataFrame(index=scores.index)
    for s in range(top_positive):
        out[f"reason_{s + 1}"] = pd.array(table[codes, s], dtype="str")
    for s in range(top_negative):
        out[f"counter_reason_{s + 1}"] = pd.array(table[codes, top_positive + s], dtype="str")
    out["reasons"] = scores["breakdown"].astype("str").to_numpy()
    if "points" in scores.columns:
        points = scores["points"].to_numpy(dtype=float)
        point_text = np.array([format_number(v) for v in np.unique(points)], dtype=object)
        shown = point_text[np.searchsorted(np.unique(points), points)]
        tier = scores["tier"].astype(str).to_numpy(dtype=object) + ": " if "tier" in scores.columns else ""
        out["why"] = pd.array(tier + shown + " points", dtype="str")
    return out

"""The behaviour feature matrix of a timeline, filled in snapshot order so that writers can stream it.

:class:`FeatureMatrix` names every column up front, computes the parts that need all snapshots at
once (attribute counts, scenarios, lead age, decay when a lead has several snapshots), then runs
the one pass of :func:`~leadml.features.timeline.kernel.standard_blocks` block by block. After
each block it reports how many leading snapshots are complete, so the Parquet path can encode
finished rows on a second thread while the next block is computed.

Columns are grouped in families (the counts of every type in one window, the days since each
type's last event, the totals per window, ...). A :class:`Layout` names the columns family by
family and gives each family the slice of matrix rows it occupies; :meth:`FeatureMatrix.fill`
writes every family into its slice, so names and values can never drift apart.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from leadml.core.errors import ConfigError, LeadDataError
from leadml.features.behaviour import text
from leadml.features.metadata import FeatureInfo
from leadml.features.timeline.engine import DAY_NS, EventTimeline, window_ns
from leadml.features.timeline.kernel import NONE, standard_blocks, value_stats

AttributeCounts = Mapping[str, Mapping[str, Sequence[str] | str]]
EventValues = Mapping[str, Sequence[str] | str]  # event type -> its numeric column(s)
Scenarios = Mapping[str, Sequence[str]]
_STEP = re.compile(r"^\s*([^\[\]]+?)\s*(?:\[\s*([^\[\]]*?)\s*\])?\s*$")
VELOCITY_DAYS = 7
DTYPE = np.float32  # every behaviour feature: counts are exact, days keep ~1 second of precision
_NO_TIME = np.iinfo(np.int64).min
Family = str | tuple  # "days_since", ("type_count", 30), ("attribute_count", "page_view", "page", 30), ...


class Layout:
    """The columns of the matrix in order, and the slice of matrix rows each feature family occupies.

    :meth:`add` appends a family's columns; :meth:`interleave` appends several families of equal
    length column by column (the first of each, then the second of each, ...), as an event type's
    counts per window and days since last sit side by side. Either way a family's columns form one
    slice, and the names in that slice are the infos the family was given.
    """

    def __init__(self) -> None:
        self.infos: list[FeatureInfo] = []
        self.slices: dict[Family, slice] = {}
        self.widths: dict[Family, int] = {}

    def add(self, family: Family, infos: Sequence[FeatureInfo]) -> None:
        self.interleave({family: infos})

    def interleave(self, families: Mapping[Family, Sequence[FeatureInfo]]) -> None:
        lengths = {family: len(infos) for family, infos in families.items()}
        if len(set(lengths.values())) > 1:
            raise AssertionError(f"interleaved behaviour families of unequal lengths: {lengths}")
        width, start, step = max(lengths.values(), default=0), len(self.infos), len(families)
        for j, family in enumerate(families):
            if family in self.slices:
                raise AssertionError(f"behaviour family {family!r} laid out twice")
            self.slices[family] = slice(start + j, start + step * width, step)
            self.widths[family] = width
        for i in range(width):
            self.infos.extend(infos[i] for infos in families.values())

    def copy(self) -> Layout:
        """A layout of its own with the same columns and slices (the infos themselves are frozen)."""
        twin = Layout()
        twin.infos, twin.slices, twin.widths = list(self.infos), dict(self.slices), dict(self.widths)
        return twin

    def slice_of(self, family: Family) -> slice:
        return self.slices[family]

    def names_of(self, family: Family) -> list[str]:
        return [info.name for info in self.infos[self.slices[family]]]

    def check(self) -> Layout:
        """Raise AssertionError unless the families' slices cover every column exactly once."""
        covered = np.zeros(len(self.infos), dtype=np.int64)
        for family, rows in self.slices.items():
            covered[rows] += 1
            if covered[rows].size != self.widths[family]:
                raise AssertionError(f"behaviour family {family!r}: {rows} is not {self.widths[family]} columns")
        wrong = np.flatnonzero(covered != 1)
        if len(wrong):
            raise AssertionError(
                "behaviour layout: columns "
                + ", ".join(f"{self.infos[i].name!r} in {covered[i]} families" for i in wrong[:5])
            )
        return self

    def check_filled(self, written: set) -> None:
        """Raise AssertionError if a family with columns is not among the ``written`` ones."""
        missing = [family for family, width in self.widths.items() if width and family not in written]
        if missing:
            raise AssertionError(f"behaviour families never written: {missing}")


_Named = tuple[Layout, tuple[str, ...], pd.Index]  # a layout, its column names, the same as an Index
_LAYOUTS: dict[tuple[type, str], _Named] = {}  # FeatureMatrix's layouts by class and options
_LAYOUTS_KEPT = 64
_LOOKUPS: dict[tuple[tuple[str, ...], tuple[str, ...]], np.ndarray] = {}  # event type lookups (_type_codes)
_LOOKUPS_KEPT = 4096


class FeatureMatrix:
    """Behaviour features of a timeline's snapshots: ``matrix[i]`` holds column ``infos[i]``.

    Construction checks the options and names the columns; :meth:`fill` computes the values and
    yields the number of leading snapshots whose row is final (ending with all of them);
    :meth:`frame` returns the filled features as a DataFrame (float32, one column per info).
    Options are those of :func:`~leadml.features.behaviour.features.behaviour_features`; ``created_at``
    is each snapshot's lead creation time in int64 ns (int64 min where unknown), or None to
    leave ``lead__age_days`` out.
    """

    def __init__(
        self,
        timeline: EventTimeline,
        *,
        event_types: Sequence[str],
        created_at: np.ndarray | None = None,
        windows: Sequence[float] = (7, 30, 90),
        attribute_counts: AttributeCounts | None = None,
        decay_half_lives: Sequence[float] = (30,),
        scenarios: Scenarios | None = None,
        velocity: bool = True,
        event_values: EventValues | None = None,
    ):
        self.timeline = timeline
        self.windows = positive(windows, "features.windows")
        self.half_lives = positive(decay_half_lives, "features.decay_half_lives")
        self.steps = {name: [parse_step(step, name) for step in path] for name, path in (scenarios or {}).items()}
        self.types = list(dict.fromkeys(map(str, event_types)))
        self.attribute_counts = {
            event_type: {
                column: list(dict.fromkeys(map(str, [values] if isinstance(values, str) else values)))
                for column, values in by_column.items()
            }
            for event_type, by_column in (attribute_counts or {}).items()
        }
        self.event_values = {
            event_type: list(dict.fromkeys(map(str, [columns] if isinstance(columns, str) else columns)))
            for event_type, columns in (event_values or {}).items()
        }
        self.created_at = created_at
        self.velocity = velocity
        self.layout, self._names, self._columns = self._cached_layout()
        self.infos = self.layout.infos
        self.matrix = np.empty((len(self.infos), timeline.n_snapshots), dtype=DTYPE)

    def _cached_layout(self) -> _Named:
        """A copy of the checked :class:`Layout` and its column names (as an Index too), made once per set of options.

        Naming ~100 columns costs a request of one lead more than computing them; the layout is a
        function of the class and the options alone (the ``repr`` tells 7 from 7.0, whose names
        differ). Each matrix gets a copy of its own; at most :data:`_LAYOUTS_KEPT` layouts are kept.
        """
        key = (type(self), repr((self.windows, self.half_lives, self.steps, self.types, self.attribute_counts,
                                 self.event_values, self.velocity, self.created_at is not None)))  # fmt: skip
        found = _LAYOUTS.get(key)
        if found is None:
            layout = self._lay_out().check()
            names = tuple(info.name for info in layout.infos)
            found = (layout, names, pd.Index(names))
            if len(_LAYOUTS) >= _LAYOUTS_KEPT:
                _LAYOUTS.clear()
            _LAYOUTS[key] = found
        return found[0].copy(), found[1], found[2]

    def _lay_out(self) -> Layout:
        """Name the columns, family by family, in the order of the output."""
        layout, windows, types = Layout(), self.windows, self.types
        by_type: dict[Family, list[FeatureInfo]] = {
            ("type_count", days): [text.type_count_info(t, days) for t in types] for days in windows
        }
        layout.interleave({**by_type, "days_since": [text.days_since_info(t) for t in types]})
        for event_type, by_column in self.attribute_counts.items():
            for column, values in by_column.items():
                layout.interleave({
                    ("attribute_count", event_type, column, days):
                        [text.attribute_count_info(event_type, column, value, days) for value in values]
                    for days in windows
                })  # fmt: skip
        for event_type, columns in self.event_values.items():
            for column in columns:
                layout.interleave({
                    ("value", event_type, column, stat): [text.value_info(event_type, column, stat, days) for days in windows]
                    for stat in text.VALUE_STATS
                })  # fmt: skip
                layout.add(("value_days_since", event_type, column), [text.value_days_since_info(event_type, column)])
        layout.add("events_count", [text.events_count_info(days) for days in windows])
        layout.add("active_days", [text.active_days_info(days) for days in windows])
        for half_life in self.half_lives:
            layout.add(("decayed", half_life), [text.decayed_info(half_life)])
        if self.velocity:
            layout.add("velocity", [text.velocity_info()])
        for name, path in self.steps.items():
            layout.add(("scenario", name), [text.scenario_info(name, len(path))])
        if self.created_at is not None:
            layout.add("lead_age", [text.lead_age_info()])
        return layout

    @property
    def names(self) -> list[str]:
        return [info.name for info in self.infos]

    def fill(self) -> Iterator[int]:
        """Compute every value; yield the count of leading snapshots whose row is final."""
        timeline, types, n_snapshots = self.timeline, self.types, self.timeline.n_snapshots
        written: set = set()
        put = self._writer(written)
        if timeline.n_events:
            type_codes, type_lookup = _type_codes(timeline, types)
        else:
            type_codes, type_lookup = np.zeros(0, np.int8), np.full(1, -1, np.int8)
        single = timeline.one_snapshot_per_lead() is not None
        self._fill_whole_columns(put, type_codes, type_lookup, decay=not single)
        # counts per type and window, days since last, totals, active days, velocity, decay: one pass
        blocks = standard_blocks(
            timeline,
            type_codes,
            type_lookup,
            len(types),
            [_window_ns(days) for days in self.windows],
            _window_ns(VELOCITY_DAYS) if self.velocity else None,
            [_window_ns(h) for h in self.half_lives] if single else [],
        )
        for block in blocks:
            rows, age = block.rows, block.type_age
            for days, counts in zip(self.windows, block.type_counts, strict=True):
                put(("type_count", days), counts, rows)
            put("days_since", np.where(age != NONE, age / DAY_NS, np.nan), rows)
            put("events_count", block.counts, rows)
            put("active_days", block.active_days, rows)
            if block.decayed is not None:
                for half_life, decayed in zip(self.half_lives, block.decayed, strict=True):
                    put(("decayed", half_life), decayed, rows)
            if block.velocity is not None:
                put("velocity", block.velocity, rows)
            if isinstance(rows, slice) and rows.stop < n_snapshots:
                yield rows.stop
        if n_snapshots:  # without snapshots there is nothing to write (and no block)
            self.layout.check_filled(written)
        yield n_snapshots

    def _writer(self, written: set) -> Callable[..., None]:
        """``put(family, values, rows)``: write a family's values (one row per column; a 1-D array
        for a family of one column) into its slice of the matrix, at snapshots ``rows``."""
        matrix, slices, widths = self.matrix, self.layout.slices, self.layout.widths

        def put(family: Family, values: np.ndarray, rows: slice | np.ndarray = slice(None)) -> None:
            n_columns = len(values) if values.ndim == 2 else 1 if values.ndim == 1 else None
            if n_columns != widths[family]:  # numpy would broadcast one row over a whole family
                raise AssertionError(f"{family!r}: values of shape {values.shape} for {widths[family]} columns")
            matrix[slices[family], rows] = values
            written.add(family)

        return put

    def _fill_whole_columns(self, put: Callable[..., None], type_codes, type_lookup, decay: bool) -> None:
        """The families that need every snapshot at once: attribute counts, scenarios, lead age and,
        when a lead has several snapshots, the decayed sums (from the running sums of the timeline)."""
        timeline, types, windows = self.timeline, self.types, self.windows
        for event_type, by_column in self.attribute_counts.items():
            if event_type in types:
                of_type = type_lookup[type_codes] == types.index(event_type)
            else:
                of_type = timeline.event_mask(event_type)
            for column, values in by_column.items():
                codes = np.where(of_type, _attribute_codes(timeline, column, values, event_type), -1)
                counts, _ = timeline.count_by(codes, len(values), windows)
                for days in windows:
                    put(("attribute_count", event_type, column, days), counts[days].T)
        for event_type, columns in self.event_values.items():
            if event_type in types:
                of_type = type_lookup[type_codes] == types.index(event_type)
            else:
                of_type = timeline.event_mask(event_type)
            for column in columns:
                numbers = np.where(of_type, event_values(timeline, column, event_type, of_type), np.nan)
                stats = value_stats(timeline, numbers, [_window_ns(days) for days in windows])
                with np.errstate(invalid="ignore", divide="ignore"):
                    means = np.where(stats.counts > 0, stats.sums / stats.counts, np.nan)
                put(("value", event_type, column, "sum"), stats.sums)
                put(("value", event_type, column, "mean"), means)
                put(("value", event_type, column, "max"), stats.maxima)
                age = stats.last_age
                put(("value_days_since", event_type, column), np.where(age != NONE, age / DAY_NS, np.nan))
        if decay:
            for half_life in self.half_lives:
                put(("decayed", half_life), timeline.decayed_sum(None, half_life))
        for name, path in self.steps.items():
            put(("scenario", name), scenario_steps(timeline, path))
        if self.created_at is not None:
            known = self.created_at != _NO_TIME
            age = (timeline.as_of - np.where(known, self.created_at, 0)) / DAY_NS
            put("lead_age", np.where(known, age, np.nan))

    def fill_all(self) -> FeatureMatrix:
        """Compute every value at once (the in-memory paths, which need no rows before the end)."""
        for _ in self.fill():
            continue
        return self

    def frame(self, index: pd.Index | None = None) -> pd.DataFrame:
        """The features (after :meth:`fill`), one row per snapshot, sharing the matrix's memory."""
        names = self.names
        return pd.DataFrame(
            self.matrix.T,
            columns=self._columns if tuple(names) == self._names else names,  # the Index made once, or the names now
            index=index if index is not None else pd.RangeIndex(self.timeline.n_snapshots),
            copy=False,
        )


@functools.lru_cache(maxsize=256)
def _window_ns(days: float) -> int:
    """:func:`~leadml.features.timeline.engine.window_ns`, once per width (a Timedelta costs ~5 us; a
    request asks for the same few each time). Equal numbers (7, 7.0) are one key and one width."""
    return window_ns(days)


def _type_codes(timeline: EventTimeline, types: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``timeline.coded("event_type", types)``, its lookup kept per (text categories, types).

    For a categorical column the codes are the column's own and the lookup maps each category's text
    to its place in ``types``: a function of the two lists alone, which a request of one lead would
    otherwise rebuild with two pandas indexes. The kept lookups are read-only.
    """
    column = timeline.column("event_type")
    if not (isinstance(column, pd.Categorical) and isinstance(column.categories.dtype, pd.StringDtype)):
        return timeline.coded("event_type", types)
    key = (tuple(column.categories.tolist()), tuple(types))
    lookup = _LOOKUPS.get(key)
    if lookup is None:
        codes, lookup = timeline.coded("event_type", types)
        lookup.flags.writeable = False
        if len(_LOOKUPS) >= _LOOKUPS_KEPT:
            _LOOKUPS.clear()
        _LOOKUPS[key] = lookup
    return column.codes, lookup


def parse_step(step: str, scenario: str) -> tuple[str, str | None]:
    """``"page_view[blog]"`` -> ``("page_view", "blog")``; ``"email_open"`` -> ``("email_open", None)``."""
    match = _STEP.match(str(step))
    if not match or not match.group(1).strip():
        raise ConfigError(f"features.scenarios.{scenario}: step {step!r} is not 'event_type' or 'event_type[value]'")
    value = match.group(2)
    return match.group(1), (value if value else None)


def scenario_steps(timeline: EventTimeline, path: Sequence[tuple[str, str | None]]) -> np.ndarray:
    """Per snapshot, how many steps of ``path`` the lead completed in order before as_of.

    Greedy: each step takes the earliest matching event strictly after the previous step's, which
    is the longest in-order prefix any choice of events could give.
    """
    done = np.zeros(timeline.n_snapshots, dtype=np.int64)
    alive = np.ones(timeline.n_snapshots, dtype=bool)
    previous = None
    for event_type, value in path:
        mask = timeline.event_mask(event_type)
        if value is not None:
            names = [c for c in timeline.column_names if c != "event_type"]
            hit = np.zeros(timeline.n_events, dtype=bool)
            for name in names:
                hit |= timeline.value_mask(name, value)
            mask &= hit
        when = timeline.first_after(mask, previous)
        alive &= when != _NO_TIME
        done += alive
        previous = when
    return done


def positive(values: Sequence[float], key: str) -> list[float]:
    """``values`` without repeats, each checked to be a positive number of days."""
    values = list(dict.fromkeys(values))
    bad = [v for v in values if not (isinstance(v, (int, float, np.number)) and v > 0)]
    if bad:
        raise ConfigError(f"{key}: every value must be a positive number of days, got {bad[0]!r}")
    return values


def _attribute_codes(timeline: EventTimeline, column: str, values: list[str], event_type: str) -> np.ndarray:
    if column in timeline.column_names:
        return timeline.codes_of(column, values)
    if timeline.n_events == 0:
        return np.zeros(0, dtype=np.int64)
    raise LeadDataError(
        f"<events table>: no column {column!r} for the attribute count {event_type}[{values[0]}] "
        f"(columns present: {', '.join(timeline.column_names)}); add it or fix features.attribute_counts"
    )


def value_columns(event_values: EventValues | None) -> set[str]:
    """The event columns that ``features.event_values`` reads."""
    return {
        c for columns in (event_values or {}).values() for c in ([columns] if isinstance(columns, str) else columns)
    }


def event_values(timeline: EventTimeline, column: str, event_type: str, of_type: np.ndarray) -> np.ndarray:
    """The numbers of an event column (float64, sorted events; NaN where missing), read for the
    events of ``event_type`` (``of_type``): text that is not a number there is an error that shows it."""
    if column not in timeline.column_names:
        if timeline.n_events == 0:
            return np.zeros(0)
        raise LeadDataError(
            f"<events table>: no column {column!r} for the event values of {event_type!r} "
            f"(columns present: {', '.join(timeline.column_names)}); add it or fix features.event_values"
        )
    raw = timeline.column(column)
    if isinstance(raw, pd.Categorical):
        text = pd.Series(raw.categories.astype(str)).str.strip()
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(float)
        blank = np.append(text.eq("").to_numpy(), True)[raw.codes]  # empty text and code -1 are missing
        looked_up = np.append(numbers, np.nan)[raw.codes]
        bad = of_type & ~blank & np.isnan(looked_up)
        bad_text = np.asarray(raw.categories.astype(str))[raw.codes[bad]] if bad.any() else []
        values = looked_up
    elif raw.dtype.kind in "iufb":
        values = raw.astype(np.float64)
        bad, bad_text = np.zeros(len(values), dtype=bool), []
    else:
        series = pd.Series(raw, copy=False)
        series = series.where(series.astype(str).str.strip().ne("") | series.isna())
        parsed = pd.to_numeric(series, errors="coerce")
        values = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = of_type & series.notna().to_numpy() & np.isnan(values)
        bad_text = series[bad].astype(str).to_numpy()
    infinite = of_type & np.isinf(values)
    if bad.any() or infinite.any():
        texts = np.empty(len(values), dtype=object)
        texts[bad] = bad_text
        texts[infinite] = values[infinite].astype(str)
        wrong = np.flatnonzero(bad | infinite)
        shown = ", ".join(
            f"{texts[i]!r} at {pd.Timestamp(timeline.times[i], tz='UTC'):%Y-%m-%d %H:%M}" for i in wrong[:3]
        )
        raise LeadDataError(
            f"<events table>: column {column!r} of the {event_type!r} events holds {len(wrong)} value(s) that "
            f"are not finite numbers (e.g. {shown}); features.event_values reads numbers "
            "(write them without thousands separators or units)"
        )
    return values

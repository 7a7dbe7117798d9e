"""The ``data`` section of a pipeline: where the tables are and how each one is read.

A table (``data.leads``, ``data.events``, ``data.outcomes``) is a path, or a mapping with the path
and how to read that file: its column names, CSV separator, encoding and timestamp format (the
outcomes also say which values mean won, lost and still open). ``data.columns``,
``data.csv_separator``, ``data.encoding`` and ``data.timestamp_format`` are the shared defaults; a
table's own keys win, and its ``columns`` merge over ``data.columns``.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import Annotated, Any, Literal, overload

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

TableName = Literal["leads", "events", "outcomes"]
TABLES: tuple[TableName, ...] = ("leads", "events", "outcomes")
EPOCH_FORMATS = ("epoch_ms", "epoch_s")


class Strict(BaseModel):
    """The base of every config section: frozen, and an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_timestamp_format(value: str | None) -> str | None:
    """A strftime format (``%d/%m/%Y %H:%M``) or ``epoch_ms`` / ``epoch_s``; None means ISO 8601."""
    if value is not None and value not in EPOCH_FORMATS and "%" not in value:
        raise ValueError(
            f"timestamp_format {value!r} is neither a strftime format (e.g. '%d/%m/%Y %H:%M') "
            "nor epoch_ms / epoch_s; leave it out for ISO 8601"
        )
    return value


def check_encoding(value: str | None) -> str | None:
    """A text encoding Python knows (``utf-8``, ``latin-1``, ``cp1252``, ...)."""
    if value is not None:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}; e.g. utf-8, latin-1, cp1252") from None
    return value


TimestampFormat = Annotated[str | None, AfterValidator(check_timestamp_format)]
Encoding = Annotated[str | None, AfterValidator(check_encoding)]


class TableConfig(Strict):
    """One input table: its file and, when they differ from the shared ``data`` keys, how to read it."""

    path: Path
    columns: dict[str, str] = Field(default_factory=dict)
    csv_separator: str | None = None
    encoding: Encoding = None
    timestamp_format: TimestampFormat = None

    def reading(self) -> dict[str, Any]:
        """The reading keywords of the data contract's loaders (``separator``, ``encoding``, ``timestamp_format``)."""
        return {"separator": self.csv_separator, "encoding": self.encoding, "timestamp_format": self.timestamp_format}


class OutcomesConfig(TableConfig):
    """The outcomes table, with the values of its outcome column that mean won, lost or still open.

    ``won: [closedwon]``, ``lost: [closedlost]``, ``open: [appointmentscheduled, ...]``; a single
    value may be written without the list. Left out, won/lost, yes/no, true/false and 1/0 are read.
    """

    won: list[str] | None = None
    lost: list[str] | None = None
    open: list[str] | None = None

    @field_validator("won", "lost", "open", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        if isinstance(value, str | int | float | bool):
            value = [value]
        if isinstance(value, list):
            return [str(v) if isinstance(v, str | int | float | bool) else v for v in value]
        return value

    @model_validator(mode="after")
    def _values_apart(self) -> OutcomesConfig:
        named = {"won": self.won or [], "lost": self.lost or [], "open": self.open or []}
        for first, second in (("won", "lost"), ("won", "open"), ("lost", "open")):
            shared = sorted(set(named[first]) & set(named[second]))
            if shared:
                raise ValueError(f"outcome value(s) {', '.join(map(repr, shared))} are in both {first} and {second}")
        return self


class SimulatorConfig(Strict):
    """Simulated data: how many leads, the seed and the base rate (see leadml.data.simulate.world)."""

    leads: int = Field(20_000, gt=0)
    seed: int = 7
    base_rate: float = Field(0.08, gt=0, lt=1)
    months: int = Field(18, gt=0)


class DataConfig(Strict):
    """Where the data comes from: the simulator, three tables (leads/events/outcomes) or a flat table.

    ``source`` may be left out: it is ``tables`` when ``leads`` is given, ``flat`` with ``flat``,
    ``public`` with ``public``, and the simulator only when no data is named at all. Tables named
    beside ``source: simulator`` are an error, never silently replaced by simulated data.
    """

    source: Literal["simulator", "tables", "flat", "public"] = "simulator"
    simulator: SimulatorConfig = SimulatorConfig()
    leads: TableConfig | None = None
    events: TableConfig | None = None
    outcomes: OutcomesConfig | None = None
    flat: Path | None = None
    public: str | None = None
    datasets_dir: Path | None = None
    label: str | None = None
    id_column: str | None = None
    csv_separator: str | None = None
    encoding: Encoding = None
    timestamp_format: TimestampFormat = None
    on_orphans: Literal["error", "drop"] = "error"
    on_early_outcomes: Literal["error", "drop"] = "drop"
    columns: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _source_from_what_is_named(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        named = [key for key in ("leads", "events", "outcomes", "flat", "public") if raw.get(key) is not None]
        if "source" not in raw:
            source = "flat" if "flat" in named else "public" if "public" in named else "tables" if named else None
            return {**raw, "source": source} if source else raw
        if raw["source"] == "simulator" and named:
            raise ValueError(
                f"source 'simulator' makes its own data, but data.{named[0]} is given; "
                "leave out data.source (or write source: tables) to read your files"
            )
        return raw

    @field_validator("leads", "events", "outcomes", mode="before")
    @classmethod
    def _path_alone(cls, value: Any) -> Any:
        """``leads: exports/contacts.csv`` is short for ``leads: {path: exports/contacts.csv}``."""
        if isinstance(value, str | os.PathLike):
            return {"path": value}
        if value is not None and not isinstance(value, dict | TableConfig):
            raise ValueError(
                "give the table's path, or a mapping with its path and how to read it "
                "(path, columns, csv_separator, encoding, timestamp_format)"
            )
        return value

    @model_validator(mode="after")
    def _paths_for_source(self) -> DataConfig:
        if self.source == "tables" and self.leads is None:
            raise ValueError("source 'tables' needs data.leads (data.outcomes to train; data.events is optional)")
        if self.source == "flat" and (self.flat is None or self.label is None):
            raise ValueError("source 'flat' needs data.flat and data.label")
        if self.source == "public" and self.public is None:
            raise ValueError("source 'public' needs data.public (x_education, bank_marketing, ...)")
        return self

    @overload
    def table(self, name: Literal["outcomes"]) -> OutcomesConfig | None: ...
    @overload
    def table(self, name: Literal["leads", "events"]) -> TableConfig | None: ...
    def table(self, name: TableName) -> TableConfig | None:
        """A table's settings with the shared ones filled in (None: the pipeline has no such table).

        The table's own keys win; its ``columns`` merge over ``data.columns``.

        Example:
            >>> data = DataConfig(source="tables", columns={"lead_id": "Id"}, csv_separator=";",
            ...                   leads={"path": "contacts.csv", "columns": {"created_at": "Created"}})
            >>> leads = data.table("leads")
            >>> leads.columns, leads.csv_separator
            ({'lead_id': 'Id', 'created_at': 'Created'}, ';')
        """
        own: TableConfig | None = getattr(self, name)
        if own is None:
            return None
        return own.model_copy(
            update={
                "columns": {**self.columns, **own.columns},
                "csv_separator": own.csv_separator or self.csv_separator,
                "encoding": own.encoding or self.encoding,
                "timestamp_format": own.timestamp_format or self.timestamp_format,
            }
        )

    def reshaping_keys(self) -> list[str]:
        """The keys set that rename columns or read values another way (column maps, timestamp formats,
        outcome values), by key path.

        Parquet streaming (``jobs.inputs``) and the Spark engine read the tables as the data contract
        names them: with any of these keys the tables go through the pandas loaders instead (or, for
        Spark, are refused).
        """
        keys = [f"data.{key}" for key in ("columns", "timestamp_format") if getattr(self, key)]
        for name in TABLES:
            own = getattr(self, name)
            if own is None:
                continue
            shaping = ["columns", "timestamp_format", *(("won", "lost", "open") if name == "outcomes" else ())]
            keys += [f"data.{name}.{key}" for key in shaping if getattr(own, key)]
        return keys

"""The pipeline config: one YAML file per pipeline, read once into frozen, validated objects.

Configuration flows one way: YAML -> :func:`load_pipeline` -> :class:`PipelineConfig` -> function
arguments. Unknown keys are errors that name the file and the key path, with a suggestion for a
near miss ("models.lightgbm.num_leafs is not a known key; did you mean num_leaves?"). Relative paths
in the file are resolved against the file's folder. The ``data`` section (the tables and how each one
is read) lives in :mod:`leadml.core.data_config`; its classes import from here too.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from leadml.core.data_config import DataConfig
from leadml.core.data_config import OutcomesConfig as OutcomesConfig  # every section imports from here
from leadml.core.data_config import SimulatorConfig as SimulatorConfig
from leadml.core.data_config import Strict as _Strict
from leadml.core.data_config import TableConfig as TableConfig
from leadml.core.errors import ConfigError
from leadml.core.yaml_files import read_yaml_file


class ProfileConfig(_Strict):
    """Explicit (profile) features: which columns, how rare levels are grouped, derived fields."""

    columns: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    allow_leaky: list[str] = Field(default_factory=list)
    include_borderline: bool = True
    min_frequency: float = Field(0.005, ge=0, lt=1)
    max_levels: int = Field(50, gt=1)
    missing_tokens: list[str] = Field(
        default_factory=lambda: ["", "select", "unknown", "n/a", "na", "none", "null", "-", "?"]
    )
    job_title_column: str | None = "job_title"
    email_column: str | None = "email_domain"


STAGES = ("mql", "pql", "sql", "opportunity", "won")  # the funnel, earliest first (mql and pql side by side)


class SnapshotConfig(_Strict):
    """When leads are scored for training, the label horizon and the target stage.

    The default (``every_days``) snapshots each lead every ``every_days`` days of its open life, at
    most ``max_per_lead`` snapshots a lead (evenly spread over its life when it lived longer), so the
    training rows cover every age that a scoring run meets. With ``weighting: lead`` each lead's
    snapshots share one unit of weight in the fit, so old leads (many snapshots) do not dominate.
    ``target`` is the stage the label asks about (``label_stage`` is its 0.1 name).
    """

    policy: Literal["every_days", "days_after_creation", "fixed"] = "every_days"
    days_after_creation: int = Field(14, ge=0)
    every_days: int = Field(14, gt=0)
    max_per_lead: int | None = Field(26, gt=0)
    weighting: Literal["lead", "none"] = "lead"
    as_of: datetime | date | None = None
    horizon_days: int = Field(120, gt=0)
    target: Literal["won", "sql", "opportunity", "mql", "pql"] = "won"

    @model_validator(mode="before")
    @classmethod
    def _label_stage_is_target(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "label_stage" in raw:
            raw = dict(raw)
            stage = raw.pop("label_stage")
            if "target" in raw and raw["target"] != stage:
                raise ValueError(f"label_stage ({stage}) and target ({raw['target']}) disagree; keep target")
            raw["target"] = stage
        return raw

    @model_validator(mode="after")
    def _fixed_needs_as_of(self) -> SnapshotConfig:
        if self.policy == "fixed" and self.as_of is None:
            raise ValueError("policy 'fixed' needs snapshots.as_of")
        return self

    @property
    def label_stage(self) -> str:
        """The 0.1 name of :attr:`target`."""
        return self.target


class PQLConfig(_Strict):
    """The product-qualified stage: a lead is a PQL from its ``min_events``-th product event."""

    event_types: list[str] = Field(default_factory=list)
    min_events: int = Field(1, ge=1)


class StagesConfig(_Strict):
    """Stages defined by events rather than by a column of the outcomes table."""

    pql: PQLConfig = PQLConfig()


class FeatureConfig(_Strict):
    """Implicit (behaviour) features: windows, event types, attribute counts, event values, decay, scenarios.

    ``event_values`` names the numeric column of an event type (``{purchase: amount}``): each gets
    its sum, mean and max per window and the days since its last valued event.
    """

    windows: list[int] = Field(default_factory=lambda: [7, 30, 90])
    event_types: list[str] | None = None
    attribute_counts: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    event_values: dict[str, list[str]] = Field(default_factory=dict)
    decay_half_lives: list[float] = Field(default_factory=lambda: [30.0])
    scenarios: dict[str, list[str]] = Field(default_factory=dict)
    velocity: bool = True
    flat_behaviour: list[str] = Field(default_factory=list)

    @field_validator("event_values", mode="before")
    @classmethod
    def _value_columns(cls, value):
        """``{purchase: amount}`` is ``{purchase: [amount]}``; the key columns hold no values."""
        if not isinstance(value, Mapping):
            return value
        columns = {event_type: [c] if isinstance(c, str) else c for event_type, c in value.items()}
        for event_type, names in columns.items():
            reserved = [c for c in names or [] if c in ("lead_id", "timestamp", "event_type")]
            if reserved:
                raise ValueError(f"{event_type}: {reserved[0]!r} is a key column of the events, not a value")
        return columns


FLAT_HAS_NO_TIME = (
    "'time' needs snapshots in time, and flat data (one row per lead) has none; "
    "write stratified, or leave split.method out"
)


class SplitConfig(_Strict):
    """How snapshots are split: by time (the default for three-table data) or stratified at random
    (the default, and the only way, for flat data).

    ``method: stratified`` on three-table data splits the *leads* at random, stratified by whether
    they converted, and each lead's snapshots follow it (a lead never straddles two parts); the
    fractions are then shares of leads, and ``gap_days`` and the purge do not apply.

    By time, the default purges: a training (or validation) snapshot is dropped only when its label
    window ``[as_of, as_of + horizon)`` reaches into the next part's period *and* its lead has a
    snapshot in that part (the same conversion would be a label on both sides). ``gap_days`` instead
    drops every snapshot within that many days before the test part (an embargo of whole days).
    """

    method: Literal["time", "stratified"] | None = None
    test_fraction: float = Field(0.2, gt=0, lt=1)
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    gap_days: int | None = Field(None, ge=0)
    seed: int = 0


class LogisticConfig(_Strict):
    enabled: bool = True
    C: float = Field(1.0, gt=0)
    class_weight: Literal["balanced"] | None = None
    max_iter: int = Field(2000, gt=0)


class LightGBMConfig(_Strict):
    enabled: bool = True
    num_leaves: int = Field(7, gt=1)
    learning_rate: float = Field(0.05, gt=0)
    n_estimators: int = Field(1000, gt=0)
    early_stopping_rounds: int = Field(50, gt=0)
    min_child_samples: int = Field(50, gt=0)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    reg_lambda: float = Field(1.0, ge=0)
    cat_smooth: float = Field(20.0, ge=0)
    cat_l2: float = Field(10.0, ge=0)
    min_data_per_group: int = Field(100, gt=0)
    max_cat_to_onehot: int = Field(4, gt=0)


class ModelsConfig(_Strict):
    """Which models compete with the rules, their settings, calibration and the seed."""

    seed: int = 0
    logistic: LogisticConfig = LogisticConfig()
    lightgbm: LightGBMConfig = LightGBMConfig()
    calibration: Literal["auto", "isotonic", "sigmoid", "none"] = "auto"
    select_metric: Literal["pr_auc", "roc_auc", "log_loss"] = "pr_auc"
    min_positives: int = Field(50, ge=0)
    min_negatives: int = Field(50, ge=0)


class TierConfig(_Strict):
    """A tier of the scores: leads whose probability reaches ``min`` (``mql``: the MQL threshold;
    none: the catch-all), and what sales or marketing does with them, by when."""

    name: str
    min: float | Literal["mql"] | None = None
    action: str | None = None
    within_hours: float | None = Field(None, gt=0)

    @field_validator("min")
    @classmethod
    def _probability(cls, value):
        if isinstance(value, float) and not 0 <= value <= 1:
            raise ValueError(f"min must be a probability between 0 and 1 or 'mql', got {value}")
        return value


class GridConfig(_Strict):
    """The fit x engagement grid: fit bands give letters (A, B, C...), engagement bands digits (1, 2, 3...).

    Each list holds descending lower bounds on the 0-100 sub-score: ``[67, 34]`` means A (or 1) from 67,
    B (or 2) from 34, C (or 3) below.
    """

    fit_bands: list[float] = Field(default_factory=lambda: [67.0, 34.0])
    engagement_bands: list[float] = Field(default_factory=lambda: [67.0, 34.0])

    @field_validator("fit_bands", "engagement_bands")
    @classmethod
    def _descending(cls, value: list[float]) -> list[float]:
        if not 1 <= len(value) <= 8:
            raise ValueError(f"give 1 to 8 bounds, got {len(value)}")
        if any(not 0 <= v <= 100 for v in value) or any(a <= b for a, b in zip(value, value[1:])):
            raise ValueError(f"bounds must be strictly descending numbers from 0 to 100, got {value}")
        return value


class MQLConfig(_Strict):
    """Which leads go to sales. The threshold is found on the validation snapshots by ``policy``:
    ``f1`` (the default: best F1), ``capacity`` (``capacity_per_week``), ``precision`` (also spelled
    ``precision_at``: the lowest threshold reaching ``target_precision``) or ``probability`` (a fixed
    value, chosen when only ``probability`` is given).

    ``capacity_by`` (a column of the leads table, such as ``owner``) makes the capacity one per group:
    ``capacity_per_week`` is then a number (the same for every group) or a mapping ``{team_a: 30,
    team_b: 20}`` whose ``default`` key covers groups not listed (and leads without a value).
    ``value`` ranks by expected value: a lead is an MQL when ``p * value - touch_cost >= 0``, with
    ``value`` read from ``value_column`` of the leads table; with ``capacity_per_week`` as well, the
    capacity caps it (see :mod:`leadml.modeling.group_policy`)."""

    policy: Literal["f1", "capacity", "precision", "probability", "value"] = "f1"
    capacity_per_week: int | dict[str, int] | None = None
    capacity_by: str | None = None
    value_column: str | None = None
    touch_cost: float | None = Field(None, ge=0)
    target_precision: float | None = Field(None, gt=0, lt=1)
    probability: float | None = Field(None, gt=0, lt=1)
    tiers: list[TierConfig] = Field(
        default_factory=lambda: [
            TierConfig(name="A", min=0.5),
            TierConfig(name="B", min=0.25),
            TierConfig(name="C", min=0.1),
            TierConfig(name="D"),
        ]
    )
    grid: GridConfig = GridConfig()

    @model_validator(mode="after")
    def _policy_values(self) -> MQLConfig:
        if self.policy == "capacity" and self.capacity_per_week is None:
            raise ValueError("policy 'capacity' needs mql.capacity_per_week")
        if self.policy == "precision" and self.target_precision is None:
            raise ValueError("policy 'precision' needs mql.target_precision")
        if self.policy == "probability" and self.probability is None:
            raise ValueError("policy 'probability' needs mql.probability (the fixed threshold)")
        self._capacity_values()
        return self

    def _capacity_values(self) -> None:
        """The capacity's and the value policy's keys: each one needs the others it works with."""
        capacity = self.capacity_per_week
        numbers = capacity.values() if isinstance(capacity, dict) else [] if capacity is None else [capacity]
        if any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in numbers):
            raise ValueError(f"mql.capacity_per_week must be a positive integer or a mapping group -> positive "
                             f"integer, got {capacity!r}")  # fmt: skip
        if isinstance(capacity, dict) and not capacity:
            raise ValueError("mql.capacity_per_week: the mapping of groups is empty")
        if isinstance(capacity, dict) and self.capacity_by is None:
            raise ValueError("mql.capacity_per_week is a mapping of groups: give mql.capacity_by (the leads "
                             "column that holds the group, such as owner)")  # fmt: skip
        if self.capacity_by is not None and (capacity is None or self.policy not in ("capacity", "value")):
            raise ValueError("mql.capacity_by needs mql.capacity_per_week under mql.policy capacity (or value)")
        if self.policy == "value" and (self.value_column is None or self.touch_cost is None):
            raise ValueError("policy 'value' needs mql.value_column (expected deal value) and mql.touch_cost")
        if self.policy != "value" and (self.value_column is not None or self.touch_cost is not None):
            raise ValueError("mql.value_column and mql.touch_cost belong to mql.policy: value")

    @property
    def capped(self) -> bool:
        """True when a capacity in new MQLs a week sets (or caps) the threshold."""
        return self.capacity_per_week is not None and self.policy in ("capacity", "value")

    @property
    def weekly_capacity(self) -> int | None:
        """``capacity_per_week`` as one number: itself, or the sum over the groups of a mapping
        (``default`` left out: how many groups it covers is known only from the data)."""
        capacity = self.capacity_per_week
        if isinstance(capacity, dict):
            return sum(n for group, n in capacity.items() if group != "default")
        return capacity

    @model_validator(mode="before")
    @classmethod
    def _policy_spellings(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        if raw.get("policy") == "precision_at":
            raw["policy"] = "precision"
        if "policy" not in raw and raw.get("probability") is not None:
            raw["policy"] = "probability"  # a fixed threshold written without its policy (0.1 files)
        return raw


class MLflowConfig(_Strict):
    """Where runs and models go; MLFLOW_TRACKING_URI wins over tracking_uri when set."""

    tracking_uri: str | None = None
    experiment: str = "leadml"
    registered_model: str = "leadml"
    promote_metric: Literal["pr_auc", "roc_auc"] = "pr_auc"
    # the challenger must beat the champion by more than this on promote_metric (0: any gain)
    promote_margin: float = Field(0.0, ge=0, lt=1)
    # interval: promote only when the 95 % paired interval of the gain lies above the margin; point: the gain alone
    promote_rule: Literal["interval", "point"] = "interval"


class LeakageConfig(_Strict):
    """The leakage guard: a single feature this predictive on its own is suspect."""

    max_auc: float = Field(0.95, gt=0.5, le=1)
    max_certain_share: float = Field(0.12, gt=0, le=1)
    allow: list[str] = Field(default_factory=list)
    # a column is accused only when the training rows hold at least this many of each class
    min_class_support: int = Field(30, ge=1)


class EvaluationConfig(_Strict):
    """How a model is judged beyond its overall metrics: segments and their minimum support."""

    segments: list[str] = Field(default_factory=lambda: ["source", "country"])
    # a segment level with fewer conversions is shown greyed, with a note, and no verdict is drawn on it
    min_conversions: int = Field(30, ge=1)


class HistoryConfig(_Strict):
    """The score history: every scoring run's scores kept by as_of, and what the sales report lists.

    ``path`` defaults to a ``score_history`` folder beside the scores file. A lead is *warming up*
    when its score rose the most over ``warming_days``. An MQL is *stuck* (one meaning for the
    history, the funnel and the sales report) when it has been an MQL for more than ``stuck_days``
    without sales accepting it (no ``sql_at`` by then) and without new engagement (its engagement
    sub-score, else its score, rose by at most ``stuck_points`` over those days).
    """

    enabled: bool = True
    path: Path | None = None
    warming_days: int = Field(7, ge=1)
    stuck_days: int = Field(14, ge=1)
    stuck_points: int = Field(2, ge=0, le=100)
    top: int = Field(20, ge=1)


class ReportConfig(_Strict):
    """What the sales report shows a manager beside each lead.

    ``display_columns`` are carried from the leads table (``[name, company, owner]``); ``crm_url``
    links each lead to its CRM record (``"https://crm.example.com/leads/{lead_id}"``).
    ``display_score`` is the 0-100 number shown: ``points`` puts the MQL threshold at 50 (linear in the
    probability below and above it, so 100 is certainty), ``percentile`` is the lead's rank among the
    leads of the run; the calibrated probability is always shown beside it.
    """

    display_columns: list[str] = Field(default_factory=list)
    crm_url: str | None = None
    display_score: Literal["points", "percentile"] = "points"

    @field_validator("crm_url")
    @classmethod
    def _has_lead_id(cls, value: str | None) -> str | None:
        if value is not None and "{lead_id}" not in value:
            raise ValueError(f"crm_url needs the placeholder {{lead_id}}, got {value!r}")
        return value


class ServeConfig(_Strict):
    """``leadml serve``: where its state lives and where tier-crossing alerts go.

    ``store`` is the SQLite file of leads, events, scores and the alert outbox (default
    ``serve/<pipeline name>.sqlite`` in the working folder); ``webhook_url`` receives each alert as
    a JSON POST, retried with backoff (none: alerts stay in the outbox, ``GET /alerts``);
    ``reload_seconds`` is how often the champion alias is checked to switch models (0: only on request);
    ``synchronous`` is SQLite's: ``full`` (every acknowledged request survives a power loss: a disk
    sync per request) or ``normal`` (it survives the process's crash or ``kill -9``; a power loss
    takes at most the last ``checkpoint_seconds``; no sync per request, which on a busy disk is most
    of a request's tail latency); ``checkpoint_seconds`` is how often a thread checkpoints the store's
    log off the request path (0: SQLite checkpoints inside the requests).
    """

    store: Path | None = None
    webhook_url: str | None = None
    reload_seconds: float = Field(60.0, ge=0)
    synchronous: Literal["full", "normal"] = "full"
    checkpoint_seconds: float = Field(1.0, ge=0)


class PipelineConfig(_Strict):
    """A whole pipeline: data, snapshots, features, rules, models, MQL policy and MLflow."""

    name: str
    description: str | None = None
    data: DataConfig = DataConfig()
    profile: ProfileConfig = ProfileConfig()
    snapshots: SnapshotConfig = SnapshotConfig()
    stages: StagesConfig = StagesConfig()
    features: FeatureConfig = FeatureConfig()
    split: SplitConfig = SplitConfig()
    rules: Path | None = None
    models: ModelsConfig = ModelsConfig()
    mql: MQLConfig = MQLConfig()
    mlflow: MLflowConfig = MLflowConfig()
    leakage: LeakageConfig = LeakageConfig()
    history: HistoryConfig = HistoryConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    report: ReportConfig = ReportConfig()
    serve: ServeConfig = ServeConfig()
    source_path: Path | None = Field(None, exclude=True)

    @property
    def is_flat(self) -> bool:
        """True when the data is one row per lead with a label (no events, no snapshots)."""
        return self.data.source in ("flat", "public")

    def resolved_dict(self) -> dict[str, Any]:
        """The config as plain data, for logging with a run."""
        return self.model_dump(mode="json", exclude={"source_path"})

    def with_overrides(self, overrides: Mapping[str, Any]) -> PipelineConfig:
        """A copy with some keys replaced, validated again as if they had been written in the YAML.

        Keys are dotted paths (``"mlflow.promote_margin"``, ``"models.lightgbm.n_estimators"``); a
        relative path resolves against the pipeline file's folder, as in the file. Unknown keys and
        bad values raise :class:`ConfigError` naming the key, as a YAML file would. A table keeps
        its settings when only its file changes (``"data.leads.path"``); ``"data.leads"`` given a
        path replaces the table, settings included.

        Example:
            >>> config = parse_pipeline({"name": "demo"})
            >>> config.with_overrides({"snapshots.horizon_days": 60}).snapshots.horizon_days
            60
        """
        raw = self.resolved_dict()
        for dotted, value in overrides.items():
            *sections, key = dotted.split(".")
            node = raw
            for depth, section in enumerate(sections):
                if node.get(section) is None:  # a section left out (or null) in the file
                    node[section] = {}
                child = node[section]
                if not isinstance(child, dict):
                    raise ConfigError(f"{self.name}: override {dotted!r}: {'.'.join(sections[: depth + 1])} is a "
                                      f"value, not a section")  # fmt: skip
                node = child
            node[key] = value
        source = str(self.source_path) if self.source_path else f"<pipeline {self.name}>"
        base = self.source_path.resolve().parent if self.source_path else None
        return parse_pipeline(raw, source=source, base=base)


_PATH_KEYS = (
    ("data", "leads"),
    ("data", "events"),
    ("data", "outcomes"),
    ("data", "leads", "path"),  # a table given as a mapping
    ("data", "events", "path"),
    ("data", "outcomes", "path"),
    ("data", "flat"),
    ("data", "datasets_dir"),
    ("rules",),
    ("history", "path"),
    ("serve", "store"),
)


def _resolve_paths(raw: dict, base: Path) -> dict:
    """Make relative paths in the raw YAML relative to the file's folder."""
    for keys in _PATH_KEYS:
        node: dict | None = raw
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(keys[-1]), str):
            value = os.path.expandvars(os.path.expanduser(node[keys[-1]]))
            path = Path(value)
            node[keys[-1]] = str(path if path.is_absolute() else (base / path).resolve())
    return raw


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the config model at a key path, for 'did you mean'."""
    current: Any = model
    for part in loc[:-1]:
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            return []
    return list(current.model_fields) if hasattr(current, "model_fields") else []


def _format_error(source: str, exc: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        where = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            known = _known_keys(model, loc)
            close = difflib.get_close_matches(loc[-1], known, n=1)
            hint = f"; did you mean {close[0]}?" if close else f" (known keys: {', '.join(known)})"
            lines.append(f"{where} is not a known key{hint}")
        elif err["type"] == "missing":
            lines.append(f"{where} is required")
        else:
            lines.append(f"{where}: {err['msg']} (got {err.get('input')!r})")
    return f"{source}: " + "; ".join(lines)


def parse_pipeline(raw: dict, source: str = "<pipeline>", base: Path | None = None) -> PipelineConfig:
    """Validate a pipeline given as a dict; relative paths are resolved against ``base``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a pipeline must be a YAML mapping, got {type(raw).__name__}")
    raw = _resolve_paths(dict(raw), base or Path.cwd())
    try:
        config = PipelineConfig(**raw, source_path=Path(source) if base else None)
    except ValidationError as exc:
        raise ConfigError(_format_error(source, exc, PipelineConfig)) from exc
    if config.is_flat and config.split.method == "time":
        raise ConfigError(f"{source}: split.method: {FLAT_HAS_NO_TIME}")
    return config


def load_pipeline(path: str | os.PathLike) -> PipelineConfig:
    """Read and validate a pipeline YAML file.

    Raises:
        ConfigError: the file is missing, is not YAML, or holds unknown keys or bad values; the
            message names the file and the key path.

    Example:
        >>> from leadml.core.config import parse_pipeline
        >>> parse_pipeline({"name": "demo", "snapshots": {"horizon_days": 90}}).snapshots.horizon_days
        90
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: pipeline file not found")
    raw = read_yaml_file(path, "pipeline file")  # a file over the size limit is refused unread
    if raw is None:
        raise ConfigError(f"{path}: the pipeline file is empty")
    return parse_pipeline(raw, source=str(path), base=path.resolve().parent)

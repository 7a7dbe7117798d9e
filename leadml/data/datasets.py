"""Real public lead data sets, mapped to the flat contract (one row per lead, label in ``converted``).

The files are not shipped with leadml: they live in a folder of their own (``../shared/datasets``
beside the repository by default, or wherever ``LEADML_DATASETS`` points), one sub-folder per data
set with a ``SOURCE.md`` that records origin, licence, checksums, columns and quirks. Each data set
declares its *leaky* columns (known only after contact or outcome; a realistic model must not see
them) and *borderline* ones (snapshots taken at extraction that may postdate the outcome). The loader
keeps them in the frame so that a leaky benchmark stays possible; :func:`feature_columns` is the
place that leaves them out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from leadml.core.errors import LeadDataError
from leadml.data.columns import check_required
from leadml.data.contract import LABEL_COLUMN, validate_flat
from leadml.data.io import read_table

DATASETS_ENV = "LEADML_DATASETS"


@dataclass(frozen=True)
class PublicDataset:
    """A public data set and what its columns mean for lead scoring.

    ``path`` is relative to the data sets folder. The lead id comes from ``id_columns[0]`` when
    there is one (the others are pure ids, never features), else from the row number.
    """

    name: str
    path: str
    label: str
    leaky: tuple[str, ...]
    borderline: tuple[str, ...]
    id_columns: tuple[str, ...]
    description: str


X_EDUCATION = PublicDataset(
    name="x_education",
    path="x_education_leads/Leads.csv",
    label="Converted",
    leaky=(
        "Tags",
        "Lead Quality",
        "Lead Profile",
        "Asymmetrique Activity Index",
        "Asymmetrique Profile Index",
        "Asymmetrique Activity Score",
        "Asymmetrique Profile Score",
    ),
    borderline=("Last Activity", "Last Notable Activity"),
    id_columns=("Prospect ID", "Lead Number"),
    description=(
        "X Education online-course leads (upGrad case study; licence unknown, research and teaching "
        "only): 9,240 leads, 38.54% converted, profile form fields and web engagement aggregates, no "
        "timestamps. The value 'Select' is an unanswered form field, i.e. missing; it is left as is "
        "here and is a feature-cleaning concern (missingness carries signal)."
    ),
)

_BANK_NOTE = (
    " Rows are in time order but carry no year, so a time split uses row order (lead_id is the "
    "zero-padded row number). 'unknown' means missing; pdays 999 (additional) or -1 (full) means "
    "never contacted before. duration is known only after the call (UCI: benchmark only)."
)

BANK_MARKETING = PublicDataset(
    name="bank_marketing",
    path="bank_marketing/bank-additional-full.csv",
    label="y",
    leaky=("duration",),
    borderline=("campaign",),
    id_columns=(),
    description=(
        "UCI Bank Marketing, bank-additional-full (CC BY 4.0, Moro et al. 2014): 41,188 "
        "telemarketing calls for term deposits, May 2008 - Nov 2010, 11.27% subscribed; profile, "
        "contact history and monthly macro-economic context." + _BANK_NOTE
    ),
)

BANK_MARKETING_FULL = PublicDataset(
    name="bank_marketing_full",
    path="bank_marketing/bank-full.csv",
    label="y",
    leaky=("duration",),
    borderline=("campaign",),
    id_columns=(),
    description=(
        "UCI Bank Marketing, bank-full (CC BY 4.0, Moro et al. 2014): 45,211 telemarketing calls "
        "for term deposits, 11.70% subscribed; profile with balance and contact history, no "
        "macro-economic context." + _BANK_NOTE
    ),
)

_DATASETS = {d.name: d for d in (X_EDUCATION, BANK_MARKETING, BANK_MARKETING_FULL)}
_READ_OPTIONS = {"bank_marketing": {"sep": ";"}, "bank_marketing_full": {"sep": ";"}}


def default_datasets_dir() -> Path:
    """Where the public data sets live: ``$LEADML_DATASETS`` if set, else ``../shared/datasets``.

    The relative default is taken from the repository root (the folder holding the ``leadml``
    package), not from the working directory.
    """
    configured = os.environ.get(DATASETS_ENV, "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    repo_root = Path(__file__).resolve().parents[2]
    return (repo_root.parent / "shared" / "datasets").resolve()


def list_public() -> list[PublicDataset]:
    """The public data sets leadml knows, by name (``[d.name for d in list_public()]``)."""
    return [_DATASETS[name] for name in sorted(_DATASETS)]


def get_public(name: str) -> PublicDataset:
    """The description of one public data set; an unknown name raises listing the known ones."""
    if name not in _DATASETS:
        raise LeadDataError(f"unknown public data set {name!r}; known: {', '.join(sorted(_DATASETS))}")
    return _DATASETS[name]


def load_public(name: str, datasets_dir: str | os.PathLike | None = None) -> tuple[pd.DataFrame, PublicDataset]:
    """Read one public data set as a validated flat table and return it with its description.

    Parameters:
        name: ``"x_education"``, ``"bank_marketing"`` (bank-additional-full) or
            ``"bank_marketing_full"`` (bank-full).
        datasets_dir: the folder holding the data set folders; default :func:`default_datasets_dir`.

    Returns:
        The frame from :func:`~leadml.data.contract.validate_flat` (``lead_id`` first, label as int8
        in ``converted`` last, every other column kept as in the file, leaky ones included) and the
        :class:`PublicDataset`.

    Raises:
        LeadDataError: unknown name, folder or file not found, or a file that lacks a declared column.
    """
    dataset = get_public(name)
    folder = Path(datasets_dir).expanduser() if datasets_dir is not None else default_datasets_dir()
    hint = f"set {DATASETS_ENV} or pass datasets_dir"
    if not folder.is_dir():
        raise LeadDataError(f"{folder}: public data sets folder not found; {hint}")
    path = folder / dataset.path
    if not path.is_file():
        raise LeadDataError(f"{path}: file of public data set {name!r} not found; {hint}")
    id_column = dataset.id_columns[0] if dataset.id_columns else None
    raw = read_table(path, text_columns=[id_column] if id_column else (), **_READ_OPTIONS.get(name, {}))
    declared = [dataset.label, *dataset.id_columns, *dataset.leaky, *dataset.borderline]
    check_required(raw, declared, str(path), name)
    return validate_flat(raw, label=dataset.label, source=str(path), id_column=id_column), dataset


def feature_columns(frame: pd.DataFrame, dataset: PublicDataset, include_borderline: bool = True) -> list[str]:
    """The usable profile and behaviour columns of a loaded public data set, in frame order.

    Everything but ``lead_id``, the label, pure ids and the leaky columns; the borderline ones
    only when ``include_borderline``.
    """
    excluded = {"lead_id", LABEL_COLUMN, dataset.label, *dataset.id_columns, *dataset.leaky}
    if not include_borderline:
        excluded.update(dataset.borderline)
    return [column for column in frame.columns if column not in excluded]

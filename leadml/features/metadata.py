"""Feature metadata: where each feature comes from and how to say it in a sentence.

Every feature column leadml builds has a :class:`FeatureInfo`. Explanations use the template to turn
a (feature, value) pair into a sentence a sales manager reads ("Viewed the pricing page 4 times in
the last 30 days"); sub-scores use the group (``profile`` = fit, ``behaviour`` = engagement).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

import pandas as pd

FeatureGroup = Literal["profile", "behaviour"]


@dataclass(frozen=True)
class FeatureInfo:
    """Metadata of one feature column.

    Attributes:
        name: the column name, e.g. ``page_view[pricing]__count_30d``.
        group: ``profile`` (explicit signal) or ``behaviour`` (implicit signal).
        source: the raw field or event type it comes from, e.g. ``job_level`` or ``page_view``.
        kind: ``numeric`` or ``categorical``.
        window_days: the look-back window in days, when the feature has one.
        template: a sentence with ``{value}`` placeholders, e.g. "Job level: {value}".
        attribute: for attribute counts, ``(column, value)`` such as ``("page", "pricing")``.
    """

    name: str
    group: FeatureGroup
    source: str
    kind: Literal["numeric", "categorical"] = "numeric"
    window_days: int | None = None
    template: str = "{name}: {value}"
    attribute: tuple[str, str] | None = None

    def sentence(self, value: object) -> str:
        """Render the template for one value (numbers shown without needless decimals)."""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, float):
            value = round(value, 1)
        return self.template.format(value=value, name=self.name, window=self.window_days)


def metadata_frame(infos: Iterable[FeatureInfo]) -> pd.DataFrame:
    """One row per feature, for logging with a model and for reports."""
    rows = [asdict(info) for info in infos]
    return pd.DataFrame(rows, columns=list(FeatureInfo.__dataclass_fields__))

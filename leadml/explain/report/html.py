"""The HTML of every report: one jinja2 template per page, tables escaped, written atomically.

Pages are rendered from ``templates/`` beside this module; charts come from :mod:`.plots`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from leadml.core.version import __version__
from leadml.data.io import write_text

__all__ = ["TEMPLATES", "html_table", "render_page"]

TEMPLATES = Path(__file__).parent / "templates"


def render_page(template: str, path: str | os.PathLike, **context) -> Path:
    """Render one of the templates with ``context`` and write it atomically to ``path``."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)  # fmt: skip
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = env.get_template(template).render(version=__version__, generated=generated, **context)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_text(text, target)


def _cell(value, percent: bool, digits: int) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.1%}" if percent else f"{value:,.{digits}f}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def html_table(frame: pd.DataFrame, *, percent: bool = False, digits: int = 3, percent_columns: Sequence[str] = ()):
    """A frame as an escaped HTML table (floats rounded; rates as percents when ``percent``)."""
    import markupsafe

    rates = {c for c in frame.columns if percent and ("→" in str(c) or str(c) in ("from_previous", "from_lead"))}
    rates |= set(percent_columns)
    head = "".join(f"<th>{markupsafe.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(
            f"<td>{markupsafe.escape(_cell(v, c in rates, digits))}</td>" for c, v in zip(frame.columns, row)
        )
        body.append(f"<tr>{cells}</tr>")
    return markupsafe.Markup(
        f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )

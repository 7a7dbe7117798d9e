"""Self-contained HTML reports: the model card, the sales report and the funnel.

Every page is one HTML file: charts are embedded as base64 PNG (matplotlib, Agg) or inline SVG,
styles and the little JavaScript (search, sort, expand) are inline, nothing is fetched, so a page
opens offline and can be mailed around.

- :func:`write_model_card` (:mod:`.model_card`): for data scientists.
- :func:`write_sales_report` (:mod:`.sales`): for sales managers.
- :func:`write_funnel_report` (:mod:`.funnel`): lead -> MQL -> SQL -> won, by source and month.
"""

from leadml.explain.report.funnel import write_funnel_report
from leadml.explain.report.html import html_table, render_page
from leadml.explain.report.model_card import write_model_card
from leadml.explain.report.sales import write_sales_report

__all__ = ["html_table", "render_page", "write_funnel_report", "write_model_card", "write_sales_report"]

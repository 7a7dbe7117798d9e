"""The live queue page (``GET /``): the current MQLs in hand-off order, refreshed without a reload.

The page polls ``GET /queue`` every ``POLL_MS`` milliseconds and redraws its table; polling keeps
it to plain HTTP (no open connection per viewer) and a missed poll only delays the next draw.
"""

from __future__ import annotations

__all__ = ["POLL_MS", "queue_page"]

POLL_MS = 1000

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>leadml: MQL queue of {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; font-size: .9rem; }}
tr.overdue td {{ background: #fde8e8; }}
#status {{ color: #666; font-size: .85rem; }}
</style></head>
<body>
<h1>MQL queue: {name}</h1>
<p id="status">loading...</p>
<table><thead><tr><th>#</th><th>lead</th><th>probability</th><th>score</th><th>tier</th><th>due</th><th>SLA</th>
<th>next action</th><th>top reason</th></tr></thead><tbody id="queue"></tbody></table>
<script>
const cell = (text) => {{ const td = document.createElement("td"); td.textContent = text ?? ""; return td; }};
async function refresh() {{
  try {{
    const response = await fetch("queue");
    const body = await response.json();
    const rows = body.queue.map((lead, k) => {{
      const tr = document.createElement("tr");
      tr.dataset.lead = lead.lead_id;
      if (lead.sla === "overdue") tr.className = "overdue";
      [k + 1, lead.lead_id, lead.probability.toFixed(3), lead.score, lead.tier, lead.due_at, lead.sla,
       lead.next_action, lead.reason_1].forEach((v) => tr.appendChild(cell(v)));
      return tr;
    }});
    document.getElementById("queue").replaceChildren(...rows);
    document.getElementById("status").textContent =
      body.queue.length + " MQLs at " + body.as_of + " (model " + body.model_version + ")";
  }} catch (error) {{
    document.getElementById("status").textContent = "cannot reach the server: " + error;
  }}
}}
refresh();
setInterval(refresh, {poll_ms});
</script>
</body></html>
"""


def queue_page(name: str) -> str:
    """The page's HTML for the pipeline ``name``."""
    from html import escape

    return _PAGE.format(name=escape(name), poll_ms=POLL_MS)

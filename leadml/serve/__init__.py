"""``leadml serve``: the champion model behind HTTP, scoring leads as their events arrive.

The layer sits above :mod:`leadml.jobs` (it scores through the batch job's own chunk path, so a
served score equals ``leadml score --as-of`` at the same instant) and below :mod:`leadml.cli`.
One module per job: :mod:`~leadml.serve.store` (the SQLite state), :mod:`~leadml.serve.inputs`
(requests checked with the data contract), :mod:`~leadml.serve.scorer` (the batch code path on a
few leads), :mod:`~leadml.serve.alerts` (the outbox and its webhook), :mod:`~leadml.serve.service`
(ingest, score, alert in one transaction), :mod:`~leadml.serve.app` (the FastAPI routes) and
:mod:`~leadml.serve.server` (uvicorn). FastAPI and uvicorn are imported only by the last two.
"""

"""The Prometheus metrics of ``leadml serve``: events taken, their rate, the latency to a new score, the model.

Each app has its own registry (two apps in one process, as in the tests, do not share counters).
``leadml_serve_events_total`` counts stored events (Prometheus' ``rate()`` gives events/s; the
gauge ``leadml_serve_events_per_second`` is the same over the last minute, for a quick look);
``leadml_serve_ingest_seconds`` is the time from a request's arrival to its new scores stored;
``leadml_serve_model_switches_total{trigger}`` counts model loads after the start (``manual``: ``POST
/model/reload``; ``champion``: the alias moved).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "ServeMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServeMetrics:
    """Counters, the latency histogram and the model's version, in one registry."""

    def __init__(self, window_seconds: float = 60.0):
        self.registry = CollectorRegistry()
        self.events = Counter("leadml_serve_events", "Events stored.", registry=self.registry)
        self.leads = Counter("leadml_serve_leads", "Lead upserts stored.", registry=self.registry)
        self.refused = Counter("leadml_serve_refused", "Requests refused (422).", ["endpoint"], registry=self.registry)
        self.outcomes = Counter("leadml_serve_outcomes", "Outcome rows stored.", registry=self.registry)
        self.switches = Counter("leadml_serve_model_switches", "Models loaded again: by POST /model/reload "
                                "(manual) or because the champion alias moved (champion).", ["trigger"],
                                registry=self.registry)  # fmt: skip
        self.alerts = Counter("leadml_serve_alerts", "Tier-crossing alerts queued.", registry=self.registry)
        self.latency = Histogram("leadml_serve_ingest_seconds", "From request to new scores stored.", ["endpoint"],
                                 buckets=_BUCKETS, registry=self.registry)  # fmt: skip
        self.model = Gauge("leadml_serve_model_info", "The model served (value 1).", ["name", "version", "uri"],
                           registry=self.registry)  # fmt: skip
        self.rate = Gauge("leadml_serve_events_per_second", "Events stored a second over the last minute.",
                          registry=self.registry)  # fmt: skip
        self.rate.set_function(self._rate)
        self._window = window_seconds
        self._recent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def took_events(self, n: int, seconds: float) -> None:
        self.events.inc(n)
        self.latency.labels("events").observe(seconds)
        with self._lock:
            self._recent.append((time.monotonic(), n))

    def set_model(self, name: str, version: str, uri: str) -> None:
        self.model.clear()
        self.model.labels(name, version, uri).set(1)

    def _rate(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0][0] < now - self._window:
                self._recent.popleft()
            return sum(n for _, n in self._recent) / self._window

    def text(self) -> bytes:
        return generate_latest(self.registry)

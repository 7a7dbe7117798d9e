"""The webhook of tier crossings: the outbox table drained by a thread, retried with backoff.

Alerts are written to the store's ``outbox`` in the transaction of the scores that raised them
(:mod:`leadml.serve.service`), so none is lost to a crash and none is sent for a batch that was
refused. :class:`WebhookSender` posts each one as JSON to ``serve.webhook_url`` from its own
thread: ingestion only wakes it up, never waits for it. A failed delivery (an error, a timeout, a
status that is not 2xx) is tried again after 1, 2, 4, ... seconds, at most ``max_backoff`` apart;
after a restart the undelivered alerts go out first.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request

import pandas as pd

from leadml.serve.store import ServeStore

__all__ = ["WebhookSender", "backoff_seconds"]

log = logging.getLogger("leadml.serve.alerts")


def backoff_seconds(attempts: int, base: float = 1.0, most: float = 300.0) -> float:
    """Seconds to wait after ``attempts`` failed deliveries: ``base`` doubled each time, at most ``most``.

    Example:
        >>> [backoff_seconds(n) for n in (1, 2, 3, 12)]
        [1.0, 2.0, 4.0, 300.0]
    """
    return min(base * 2.0 ** max(attempts - 1, 0), most)


class WebhookSender:
    """A daemon thread that posts the outbox's due alerts to ``url``, oldest first."""

    def __init__(self, store: ServeStore, url: str, *, timeout: float = 5.0, base_backoff: float = 1.0,
                 max_backoff: float = 300.0):  # fmt: skip
        self.store, self.url, self.timeout = store, url, timeout
        self.base_backoff, self.max_backoff = base_backoff, max_backoff
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadml-webhook", daemon=True)
        self.delivered = 0
        self.failed = 0

    def start(self) -> WebhookSender:
        self._thread.start()
        return self

    def notify(self, alerts: list[dict] | None = None) -> None:
        """New alerts are in the outbox: send them now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent_any = self.send_due()
            except Exception:  # the store closing under us at shutdown, a bug: log it and keep the thread
                log.exception("the webhook sender failed; retrying")
                sent_any = False
            if not sent_any:
                self._wake.wait(0.5)
                self._wake.clear()

    def send_due(self) -> bool:
        """Try every due alert once; whether any was tried."""
        due = self.store.due_alerts(pd.Timestamp.now(tz="UTC").value)
        for alert_id, attempts, payload in due:
            if self._stop.is_set():
                break
            error = self._post(payload)
            if error is None:
                self.delivered += 1
                self.store.mark_alert(alert_id, delivered=True)
                continue
            self.failed += 1
            wait = backoff_seconds(attempts + 1, self.base_backoff, self.max_backoff)
            retry_at = pd.Timestamp.now(tz="UTC").value + int(wait * 1e9)
            log.warning("webhook %s: alert %s of lead %s not delivered (%s); next try in %.0f s",
                        self.url, alert_id, payload.get("lead_id"), error, wait)  # fmt: skip
            self.store.mark_alert(alert_id, delivered=False, error=error, retry_at=retry_at)
        return bool(due)

    def _post(self, payload: dict) -> str | None:
        """Post one alert; None when the receiver took it (2xx), else what went wrong."""
        body = json.dumps({"type": "tier_crossing", **payload}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return str(getattr(exc, "reason", exc))
        return None if 200 <= status < 300 else f"HTTP {status}"

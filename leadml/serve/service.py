"""What each request does, without HTTP: check, score, then store rows, scores and alerts in one transaction.

Ingestion is serialised (one batch at a time), and each batch is scored before anything is
written: the leads it touches are read back with their stored events, the new rows added, and
the lot scored by :class:`~leadml.serve.scorer.LiveScorer` at the service's instant. Only then
does one transaction append the rows, the scores and the alerts, so a request that fails at any
step leaves the store as it was. Readers wait only for that short write.

A lead *crosses* when its tier changes (or its first score is an MQL); the alert carries why:
the events since its last score and how its top reasons changed (:func:`crossing_alert`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from leadml.core.config import PipelineConfig
from leadml.serve.inputs import InvalidInput, check_events, check_leads, check_outcomes
from leadml.serve.scorer import LiveScorer, events_table, leads_frame, outcomes_frame
from leadml.serve.store import ServeStore

__all__ = ["Ingested", "ServeService", "crossing_alert"]

TOP_REASONS = ("reason_1", "reason_2", "reason_3")
LONE_LEADS = 10_000  # leads frames of one lead kept (a few kB each; then the lot is dropped)


@dataclass
class Ingested:
    """What one ingestion did: rows stored, the new score of each lead scored, alerts queued, seconds."""

    stored: int
    scores: list[dict]
    alerts: list[dict]
    seconds: float = 0.0
    leads: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        keep = ("lead_id", "as_of", "probability", "score", "tier", "is_mql", "reason_1", "reason_2", "reason_3")
        return {"stored": self.stored, "alerts": len(self.alerts),
                "scores": [{k: row.get(k) for k in keep} for row in self.scores]}  # fmt: skip


def crossing_alert(before: Mapping[str, Any] | None, after: Mapping[str, Any], events: Sequence[dict]) -> dict | None:
    """The alert of a lead whose tier moved (None when it did not): from and to, the events since its
    last score, and the reasons that came into or left its top three."""
    if before is None and not after.get("is_mql"):
        return None
    if before is not None and before.get("tier") == after.get("tier"):
        return None
    old = [before.get(k) for k in TOP_REASONS if before.get(k)] if before is not None else []
    new = [after.get(k) for k in TOP_REASONS if after.get(k)]
    return {
        "lead_id": after["lead_id"], "as_of": after["as_of"], "model_version": after.get("model_version"),
        "from_tier": before.get("tier") if before is not None else None, "to_tier": after.get("tier"),
        "is_mql": bool(after.get("is_mql")), "was_mql": bool(before.get("is_mql")) if before is not None else False,
        "probability": after.get("probability"),
        "previous_probability": before.get("probability") if before is not None else None,
        "score": after.get("score"), "previous_score": before.get("score") if before is not None else None,
        "next_action": after.get("next_action"), "due_at": after.get("due_at"),
        "events_since": list(events), "reasons": new, "previous_reasons": old,
        "reasons_added": [r for r in new if r not in old], "reasons_dropped": [r for r in old if r not in new],
    }  # fmt: skip


class ServeService:
    """Leads, events and scores of one pipeline behind one store and one model."""

    def __init__(self, config: PipelineConfig, store: ServeStore, scorer: LiveScorer,
                 clock: Callable[[], pd.Timestamp] | None = None,
                 on_alerts: Callable[[list[dict]], None] | None = None):  # fmt: skip
        self.config, self.store, self.scorer = config, store, scorer
        self.clock = clock or (lambda: pd.Timestamp.now(tz="UTC"))
        self.on_alerts = on_alerts
        self._ingest = threading.Lock()
        self._lone: dict[str, tuple[str, pd.DataFrame]] = {}  # lead_id -> (profile as JSON, its leads frame)

    def as_of(self) -> pd.Timestamp:
        """The instant scores are computed at: now, or the fixed instant of a replay."""
        return pd.Timestamp(self.clock()).tz_convert("UTC")

    # -- ingestion -----------------------------------------------------------------------------
    def post_events(self, records: Sequence[Mapping[str, Any]]) -> Ingested:
        """Store a batch of events and rescore their leads (all or nothing).

        Raises:
            InvalidInput: a row the contract refuses, or an event of a lead never posted.
        """
        started = time.perf_counter()
        checked = check_events(records, self.config)
        with self._ingest:
            known = self.store.profiles(checked.lead_ids)
            for row, (lead_id, *_) in enumerate(checked.rows):
                if lead_id not in known:
                    raise InvalidInput("lead_id", f"unknown lead {lead_id!r}: POST it to /leads first", row)
            new = {lead_id: [] for lead_id in checked.lead_ids}  # type: dict[str, list[dict]]
            for lead_id, stamp, kind, attributes in checked.rows:
                new[lead_id].append({"timestamp": pd.Timestamp(stamp, tz="UTC").isoformat(), "event_type": kind,
                                     **attributes})  # fmt: skip
            extra = [(0, lead_id, stamp, kind, attributes) for lead_id, stamp, kind, attributes in checked.rows]
            done = self._score_and_store(known, extra, new, events=checked.rows)
        done.seconds = time.perf_counter() - started
        return done

    def post_leads(self, records: Sequence[Mapping[str, Any]]) -> Ingested:
        """Insert or update lead profiles (fields given replace the stored ones) and rescore the leads.

        Raises:
            InvalidInput: a row the contract refuses (a new lead without ``created_at`` among them).
        """
        started = time.perf_counter()
        ids = [str(record.get("lead_id")) for record in records if record.get("lead_id") is not None]
        with self._ingest:
            checked = check_leads(records, self.store.profiles(ids), self.config)
            done = self._score_and_store(checked.profiles, [], {}, leads=checked)
        done.seconds = time.perf_counter() - started
        return done

    def post_outcomes(self, records: Sequence[Mapping[str, Any]]) -> Ingested:
        """Store outcome rows (closings, stage times such as ``sql_at``) and rescore their leads (all or
        nothing): a lead closed before the instant is no longer scored or queued, an MQL with ``sql_at``
        is accepted. The fields given replace the lead's stored ones.

        Raises:
            InvalidInput: a row the contract refuses, or an outcome of a lead never posted.
        """
        started = time.perf_counter()
        ids = [str(record.get("lead_id")) for record in records if record.get("lead_id") is not None]
        with self._ingest:
            known = self.store.profiles(ids)
            frame = leads_frame(list(known.values())) if known else pd.DataFrame({"lead_id": pd.Series([], str)})
            rows = check_outcomes(records, self.store.outcomes_of(ids), frame, self.config)
            profiles = {row["lead_id"]: known[row["lead_id"]] for row in rows}
            done = self._score_and_store(profiles, [], {}, outcomes=rows)
        done.seconds = time.perf_counter() - started
        return done

    def _score_and_store(self, profiles: Mapping[str, dict], extra: list, new: Mapping[str, list[dict]], *,
                         events: list | None = None, leads=None, outcomes: list[dict] | None = None) -> Ingested:  # fmt: skip
        ids = list(profiles)
        before = self.store.latest(ids)
        stored = self.store.events_of(ids) + extra
        closings = {**self.store.outcomes_of(ids), **{row["lead_id"]: row for row in outcomes or []}}
        as_of = self.as_of()
        spells = {k: pd.Timestamp(v["mql_since"]) for k, v in before.items() if v.get("is_mql") and v.get("mql_since")}
        rows = self.scorer.score(self._leads_frame(profiles), events_table(stored, self._attributes(extra)),
                                 as_of, pd.Series(spells, dtype="datetime64[ns, UTC]") if spells else None,
                                 outcomes_frame(list(closings.values())))  # fmt: skip
        closed = [k for k, v in closings.items() if v.get("closed_at") is not None and v["closed_at"] < as_of.value]
        alerts = [a for row in rows if (a := crossing_alert(before.get(row["lead_id"]), row,
                                                             new.get(row["lead_id"], []))) is not None]  # fmt: skip
        with self.store.transaction() as db:
            if leads is not None:
                self.store.upsert_leads(db, leads.profiles, leads.created)
            if events:
                self.store.add_events(db, events)
            if outcomes:
                self.store.upsert_outcomes(db, outcomes)
            last = dict(db.execute(f"SELECT lead_id, MAX(seq) FROM events WHERE lead_id IN ({','.join('?' * len(ids))}) "
                                   "GROUP BY lead_id", ids).fetchall()) if ids else {}  # fmt: skip
            self.store.add_scores(db, rows, last)
            self.store.add_alerts(db, alerts)
            self.store.drop_latest(db, [k for k in closed if k in before])  # closed: out of the queue
        if alerts and self.on_alerts is not None:
            self.on_alerts(alerts)
        stored_rows = len(events) if events else len(outcomes) if outcomes else len(profiles)
        return Ingested(stored_rows, rows, alerts, leads=ids)

    def _leads_frame(self, profiles: Mapping[str, dict]) -> pd.DataFrame:
        """The leads frame of the profiles; that of a lone lead is kept until its profile changes (a lead's
        events come one by one, and validating one row costs more than scoring it)."""
        if len(profiles) != 1:
            return leads_frame(list(profiles.values()))
        ((lead_id, profile),) = profiles.items()
        key = json.dumps(profile, sort_keys=True, default=str)
        found = self._lone.get(lead_id)
        if found is None or found[0] != key:
            if len(self._lone) >= LONE_LEADS:
                self._lone.clear()
            found = self._lone[lead_id] = (key, leads_frame([profile]))
        return found[1].copy()

    def _attributes(self, extra: list) -> list[str]:
        names = set(self.store.attribute_names())
        names.update(name for *_, attributes in extra for name in attributes)
        return sorted(names)

    # -- reading -------------------------------------------------------------------------------
    def lead(self, lead_id: str) -> dict | None:
        """The lead's last score (score, tier, reasons, decisions) and its score history; None: unknown."""
        if not self.store.profiles([lead_id]):
            return None
        latest = self.store.latest([lead_id]).get(lead_id)
        outcome = self.store.outcomes_of([lead_id]).get(lead_id)
        return {"lead_id": lead_id, "score": latest, "history": self.store.history(lead_id),
                "outcome": outcome["record"] if outcome is not None else None}  # fmt: skip

    def queue(self) -> list[dict]:
        """The current MQLs in hand-off order: the earliest deadline first, then the highest probability;
        each with its SLA state at the service's instant (``due``, ``overdue``, hours left, or ``accepted``:
        sales took it, ``sql_at`` by now, as ``leadml sla`` counts it). Leads closed by now are left out."""
        now = self.as_of()
        queue = []
        for row in self.store.latest_mqls(now.value):
            due = pd.Timestamp(row["due_at"]) if row.get("due_at") else None
            hours = (due - now).total_seconds() / 3600 if due is not None else None
            state = "no deadline" if due is None else "overdue" if hours is not None and hours < 0 else "due"
            if row.get("sql_at") is not None and row["sql_at"] <= now.value:
                state = "accepted"
            queue.append({**{k: row.get(k) for k in ("lead_id", "probability", "score", "tier", "mql_since", "due_at",
                                                       "next_action", "mql_route", "reason_1", "reason_2", "reason_3")},
                          "sla": state, "hours_left": hours})  # fmt: skip
        far = pd.Timestamp.max.tz_localize("UTC")
        queue.sort(key=lambda r: (pd.Timestamp(r["due_at"]) if r["due_at"] else far, -float(r["probability"] or 0.0),
                                  str(r["lead_id"])))  # fmt: skip
        return queue

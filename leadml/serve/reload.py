"""Follow the registry's champion: switch the served model when the alias moves, without a restart.

A service that serves an alias (``models:/NAME@champion``, the default) asks the registry every
``serve.reload_seconds`` which version the alias names; a registry look-up is cheap, a model load is
not, so the model is loaded only when the version changed. The switch is the one ``POST
/model/reload`` makes (:meth:`~leadml.serve.scorer.LiveScorer.reload`): requests in flight finish on
the model they started with, and none is dropped. A registry that does not answer is logged and
asked again at the next tick; the service keeps serving the model it has.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from leadml.core.config import PipelineConfig
from leadml.jobs.score import LoadedModel

__all__ = ["ChampionWatcher", "watched_uri"]

log = logging.getLogger("leadml.serve")


def watched_uri(config: PipelineConfig, model_uri: object) -> str | None:
    """The alias URI a service follows: the champion by default, any ``models:/NAME@ALIAS`` given;
    None for a fixed version, a run, a folder or a model in memory (nothing can move under them)."""
    from leadml.modeling.loading import default_model_uri

    if model_uri is None:
        return default_model_uri(config)
    if isinstance(model_uri, str) and model_uri.startswith("models:/") and "@" in model_uri:
        return model_uri
    return None


class ChampionWatcher:
    """A daemon thread that checks the alias every ``seconds`` and calls ``switch`` when its version moved.

    ``current()`` is the version served now; ``switch()`` loads the alias again and returns the
    model now served (the service's reload, which also updates the metrics).
    """

    def __init__(self, config: PipelineConfig, uri: str, seconds: float, current: Callable[[], str],
                 switch: Callable[[], LoadedModel]):  # fmt: skip
        self.config, self.uri, self.seconds = config, uri, seconds
        self.current, self.switch = current, switch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def registered_version(self) -> str:
        """The version the alias names in the registry now (no model is loaded)."""
        from leadml.modeling.loading import resolve_model_uri
        from leadml.modeling.registry import tracking_uri

        return resolve_model_uri(self.uri, tracking_uri(self.config)).version

    def check(self) -> LoadedModel | None:
        """One tick: switch models when the alias names another version; the model switched to, or None."""
        version = self.registered_version()
        if version == self.current():
            return None
        before = self.current()
        loaded = self.switch()
        if loaded.version == before:  # a manual reload got there first
            return None
        log.warning("champion %s v%s -> v%s", loaded.name, before, loaded.version)
        return loaded

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.check()
            except Exception as exc:  # the registry down, a version that fails to load: keep serving
                log.warning("champion check of %s failed, the model served stays: %s", self.uri, exc)

    def start(self) -> ChampionWatcher:
        self._thread = threading.Thread(target=self._run, name="leadml-champion", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

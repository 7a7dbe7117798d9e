"""Progress of long work: a rich bar on a terminal, a callback for notebooks and services, or nothing in a pipe."""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["Progress", "ProgressBar"]

Progress = Callable[[int, int], None]


class ProgressBar:
    """A rich progress bar on stderr, a callback, or nothing."""

    def __init__(self, progress: bool | Progress | None, total: int, label: str):
        self.callback = progress if callable(progress) else None
        show = progress if isinstance(progress, bool) else (progress is None and sys.stderr.isatty())
        self.bar = None
        self.done, self.total = 0, total
        if show and self.callback is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task(label, total=total)

    def advance(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

"""Whole-process timing for the command benchmarks: leadml's command and a peer's, in turn.

Each run is a fresh process started the way a user starts it; its wall time is measured from
outside and its peak memory is the ``ru_maxrss`` that ``os.wait4`` reports for it (the largest
resident set of the process and the children it waited for), taken by a small launcher process
so that the benchmark's own memory is not counted. Two commands alternate, A B A B, so
a machine that slows down during the run slows both; the ratio is taken pair by pair and the
median quoted. A run that fails stops the benchmark with the end of what it printed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Command:
    """A command line to time: ``label`` names it in the tables."""

    label: str
    argv: Sequence[str]
    env: dict[str, str] | None = None

    def shown(self) -> str:
        """The command as a user would type it (the interpreter's path shortened to ``python``)."""
        words = ["python" if word.endswith(("/python", "/python3")) else word for word in self.argv]
        return " ".join(words)


@dataclass
class Runs:
    """Wall seconds and peak memory (MB) of each counted run of one command."""

    command: Command
    seconds: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_peak_mb(self) -> float:
        return statistics.median(self.peak_mb)


# A small launcher between the benchmark and the command: on Linux a process started by fork and exec
# inherits the peak resident size of the process that forked it, so a command started straight from
# a benchmark holding outputs in memory would be charged for them. The launcher is a bare
# interpreter (about 10 MB); it times the command and reports the command's own peak.
_LAUNCHER = """
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(out, "w") as handle:
    handle.write(f"{seconds!r} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_once(command: Command) -> tuple[float, float]:
    """Run ``command`` once; its wall seconds and peak resident memory in MB (its own, see ``_LAUNCHER``)."""
    env = dict(os.environ, **(command.env or {}))
    with tempfile.TemporaryFile() as log, tempfile.TemporaryDirectory() as folder:
        result = os.path.join(folder, "result")
        launcher = [sys.executable, "-S", "-c", _LAUNCHER, result, *command.argv]
        subprocess.run(launcher, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
        with open(result) as handle:
            seconds_text, peak_kib, exit_code = handle.read().split()
        if int(exit_code) != 0:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{command.label} exited {exit_code}: {command.shown()}\n{tail}")
    return float(seconds_text), int(peak_kib) / 1024


def alternate(first: Command, second: Command | None, *, rounds: int = 3, warmup: int = 1) -> tuple[Runs, Runs | None]:
    """Time ``first`` and ``second`` in turn (A B A B ...), ``warmup`` uncounted rounds first."""
    runs_a, runs_b = Runs(first), Runs(second) if second is not None else None
    for round_number in range(warmup + rounds):
        for command, runs in ((first, runs_a), (second, runs_b)):
            if command is None or runs is None:
                continue
            seconds, peak = run_once(command)
            if round_number >= warmup:
                runs.seconds.append(seconds)
                runs.peak_mb.append(peak)
    return runs_a, runs_b


@dataclass
class Comparison:
    """One line of the result: leadml's command beside a peer's doing the same work.

    ``speed_target``: how many times faster than the peer leadml must be (peer seconds / leadml
    seconds); ``rate_target``: the work units a second leadml must reach; ``seconds_target``: the
    longest its median run may take; ``peak_target_mb``: the most memory leadml's process may use. ``agreement`` says what was compared between the two
    outputs and ``agreed`` whether they matched: a disagreement fails the whole benchmark.
    """

    work: str
    leadml: Runs
    peer: Runs | None
    agreement: str
    agreed: bool
    speed_target: float | None = None
    peak_target_mb: float | None = None
    units: int | None = None
    unit_name: str = "rows"
    rate_target: float | None = None
    seconds_target: float | None = None

    @property
    def ratio(self) -> float | None:
        """Median over the pairs of peer seconds / leadml seconds (above 1: leadml is faster)."""
        if self.peer is None:
            return None
        return statistics.median(p / a for a, p in zip(self.leadml.seconds, self.peer.seconds, strict=True))

    @property
    def rate(self) -> float | None:
        """leadml's work units a second at its median run."""
        return None if self.units is None else self.units / self.leadml.median_seconds

    def missed(self) -> list[str]:
        """The targets this line does not reach, in words."""
        misses = []
        if self.speed_target is not None and (self.ratio or 0.0) < self.speed_target:
            misses.append(f"speed {self.ratio:.2f}x < {self.speed_target}x")
        if self.rate_target is not None and (self.rate or 0.0) < self.rate_target:
            misses.append(f"{self.rate:,.0f} {self.unit_name}/s < {self.rate_target:,.0f}")
        if self.seconds_target is not None and self.leadml.median_seconds > self.seconds_target:
            misses.append(f"{self.leadml.median_seconds:.1f} s > {self.seconds_target:.0f} s")
        if self.peak_target_mb is not None and self.leadml.median_peak_mb > self.peak_target_mb:
            misses.append(f"peak {self.leadml.median_peak_mb:,.0f} MB > {self.peak_target_mb:,.0f} MB")
        return misses


def markdown_table(comparisons: Sequence[Comparison]) -> str:
    """The comparisons as a Markdown table: medians, ratio, rate, peaks, agreement, targets."""
    lines = [
        "| work | leadml | peer | leadml s | peer s | peer / leadml | leadml rate | leadml peak | peer peak "
        "| outputs | targets |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for item in comparisons:
        peer = item.peer
        ratio = "" if item.ratio is None else f"**{item.ratio:.2f}x**"
        rate = "" if item.rate is None else f"{item.rate:,.0f} {item.unit_name}/s"
        missed = item.missed()
        verdict = "met" if not missed else "missed: " + "; ".join(missed)
        lines.append(
            f"| {item.work} | {item.leadml.command.label} | {peer.command.label if peer else ''} "
            f"| {item.leadml.median_seconds:.2f} | {f'{peer.median_seconds:.2f}' if peer else ''} | {ratio} "
            f"| {rate} | {item.leadml.median_peak_mb:,.0f} MB | {f'{peer.median_peak_mb:,.0f} MB' if peer else ''} "
            f"| {'agree' if item.agreed else 'DISAGREE'}: {item.agreement} | {verdict} |"
        )
    return "\n".join(lines)

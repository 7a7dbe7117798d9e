"""The engines a job can run on: ``pandas`` (this process) or ``spark`` (:mod:`leadml.jobs.spark`).

One list and one check, so that the scoring job, the features command and any new job accept the
same names and refuse others with the same message.
"""

from __future__ import annotations

from leadml.core.errors import ConfigError

__all__ = ["ENGINES", "check_engine"]

ENGINES = ("pandas", "spark")


def check_engine(engine: str, *, option: str = "engine") -> str:
    """``engine`` when it is one of :data:`ENGINES`; ``option`` names it in the error (``--engine``).

    Raises:
        ConfigError: an unknown engine.

    Example:
        >>> check_engine("spark")
        'spark'
        >>> check_engine("dask")
        Traceback (most recent call last):
        ...
        leadml.core.errors.ConfigError: engine must be 'pandas' or 'spark', got 'dask'
    """
    if engine not in ENGINES:
        names = " or ".join(repr(name) for name in ENGINES)
        raise ConfigError(f"{option} must be {names}, got {engine!r}")
    return engine

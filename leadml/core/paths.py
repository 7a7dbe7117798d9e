"""Where the project's shipped files live (pipelines and rule sets)."""

from __future__ import annotations

from pathlib import Path

from leadml.core.errors import ConfigError


def pipelines_dir() -> Path:
    """The `pipelines/` folder of the checkout leadml runs from (installed with `pip install -e .`)."""
    folder = Path(__file__).resolve().parents[2] / "pipelines"
    if not folder.is_dir():
        raise ConfigError(
            f"{folder}: the shipped pipelines folder is missing; install leadml from a checkout "
            "(pip install -e .) or pass your own pipeline and rules files"
        )
    return folder

"""The ``leadml`` command: a thin typer app over the Python API (presentation only)."""

from leadml.cli.app import app, main

__all__ = ["app", "main"]

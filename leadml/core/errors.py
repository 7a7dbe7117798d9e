"""The error types leadml raises on bad input, so callers and the CLI can tell them from bugs."""

from __future__ import annotations


class LeadmlError(Exception):
    """Base class of every error leadml raises on purpose (bad data, bad config, missing model)."""


class LeadDataError(LeadmlError, ValueError):
    """An input table breaks the data contract: the message names the file, the column and example rows."""


class ConfigError(LeadmlError, ValueError):
    """A pipeline or rules file is invalid: the message names the file and the key path."""


class ModelError(LeadmlError, RuntimeError):
    """A model cannot be found, loaded or applied (missing alias, unreachable registry, spec mismatch)."""


class RegistryUnreachable(ModelError):
    """The MLflow tracking server does not answer: nothing about the model is known, so nothing is drawn instead."""


class OutputError(LeadmlError, OSError):
    """An output cannot be written (disk full, read-only folder, a folder where the file goes): names the path."""

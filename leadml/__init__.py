"""leadml: predictive lead scoring from closed deals, measured against the rules baseline."""

from leadml.errors import ConfigError, LeadDataError, LeadmlError, ModelError

__version__ = "0.1.0"

__all__ = ["ConfigError", "LeadDataError", "LeadmlError", "ModelError", "__version__"]

"""LightGBM internals: compiled trees (batch prediction), tabulated TreeSHAP, group effects for sub-scores."""

"""Layer 4: models: estimators, calibration, evaluation, MQL policy, contributions, sub-scores, the registry."""

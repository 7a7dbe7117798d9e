"""Layer 3: the points rules marketing uses today, scored like a model: rule sets, the baseline, learned points."""

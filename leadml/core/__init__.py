"""Layer 0, under everything: errors, the pipeline config, logging, shipped paths, the numba loader, the version."""

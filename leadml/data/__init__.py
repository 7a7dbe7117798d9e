"""Layer 1: the input tables: the data contract, reading and atomic writing, the simulator, the public data sets."""

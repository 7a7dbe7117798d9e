"""Input tables: the data contract, reading and atomic writing, the simulator and the public data sets."""

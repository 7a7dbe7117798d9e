"""The built-in data: a seeded simulator of leads, their events and their closed deals.

``world`` draws the leads and runs the story; ``profile``, ``events`` and ``outcomes`` draw each table.
"""

from leadml.data.simulate.world import DRIVER_FAMILIES, TABLES, TRUE_DRIVERS, Simulation, simulate, write_simulation

__all__ = ["DRIVER_FAMILIES", "TABLES", "TRUE_DRIVERS", "Simulation", "simulate", "write_simulation"]

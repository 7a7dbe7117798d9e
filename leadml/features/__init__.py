"""Layer 2: point-in-time features: snapshots, profile encoding, the timeline engine, behaviour features."""

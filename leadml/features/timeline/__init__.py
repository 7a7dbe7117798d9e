"""The point-in-time engine shared by the behaviour features and the event rules.

``engine`` holds the sorted event timeline and its window arithmetic; ``kernel`` the numba passes
over it; ``arrays`` and ``codes`` the integer codes of leads, types and attribute values.
"""

from leadml.features.timeline.engine import DAY_NS, EventTimeline, to_ns, window_ns

__all__ = ["DAY_NS", "EventTimeline", "to_ns", "window_ns"]

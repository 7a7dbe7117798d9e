"""A small bounded memo: values made once per key (a dtype, an Index), for calls made per request.

pandas checks what it is given each time a dtype or an Index is made (~0.1-0.3 ms); a served lead
asks for the same few at every request. The memo is emptied whole when full: the keys in use come
back at once, and nothing grows without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["BoundedMemo"]

V = TypeVar("V")


class BoundedMemo(Generic[V]):
    """``memo.get(key, make)``: ``make()`` the first time a key is asked for, the kept value after;
    at most ``size`` values are kept (then the lot is dropped)."""

    def __init__(self, size: int):
        self.size = size
        self._values: dict[Hashable, V] = {}

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        found = self._values.get(key)
        if found is None:
            if len(self._values) >= self.size:
                self._values.clear()
            found = self._values[key] = make()
        return found

    def __len__(self) -> int:
        return len(self._values)

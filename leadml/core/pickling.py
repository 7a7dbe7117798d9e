"""Pickles that are the same bytes in every process: what makes a saved model reproducible bit for bit.

Python orders a set of text by the strings' hashes, which change with ``PYTHONHASHSEED``; pydantic
models pickle such a set (their explicitly given field names). :func:`stable_pickle` makes the
configs a fitted object carries pickle sorted.
"""

from __future__ import annotations

__all__ = ["stable_pickle"]


class _SortedSet(set):
    """A set that pickles as a plain ``set`` of its items in sorted order.

    A set of text pickles in its iteration order, which follows the string hashes and so changes
    with ``PYTHONHASHSEED``; sorted, the bytes are the same in every process.
    """

    def __reduce__(self):
        return set, (sorted(self, key=repr),)

    def __reduce_ex__(self, protocol):
        return self.__reduce__()


def stable_pickle(value) -> None:
    """Make the pydantic configs in ``value`` (a model, or lists, tuples and dicts of them) pickle
    the same bytes under any hash seed.

    A pydantic model pickles the set of its explicitly given field names (``{'name', 'min'}`` of a
    tier), in an order that depends on the hash seed: the very bytes of a saved model would differ
    between two identical trainings. The set is swapped, in place, for an equal one that pickles
    sorted; the model itself is unchanged.
    """
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        fields_set = value.__pydantic_fields_set__
        if not isinstance(fields_set, _SortedSet):
            object.__setattr__(value, "__pydantic_fields_set__", _SortedSet(fields_set))
        for name in type(value).model_fields:
            stable_pickle(getattr(value, name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            stable_pickle(item)
    elif isinstance(value, dict):
        for item in value.values():
            stable_pickle(item)

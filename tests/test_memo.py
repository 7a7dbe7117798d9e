"""The bounded memo makes a value once per key and drops the lot when full."""

from __future__ import annotations

from leadml.core.memo import BoundedMemo


def test_a_value_is_made_once_per_key_and_the_memo_stays_bounded():
    made: list[int] = []
    memo: BoundedMemo[list[int]] = BoundedMemo(3)

    def make(key: int):
        return lambda: made.append(key) or [key]

    first = memo.get(1, make(1))
    assert memo.get(1, make(1)) is first and made == [1]
    for key in (2, 3):
        memo.get(key, make(key))
    assert len(memo) == 3 and made == [1, 2, 3]
    memo.get(4, make(4))  # full: emptied, then 4 kept
    assert len(memo) == 1 and made == [1, 2, 3, 4]
    assert memo.get(1, make(1)) is not first and made == [1, 2, 3, 4, 1]

"""The order in which read threads take a restore's ranges: far apart, each range once."""

from __future__ import annotations

import pytest

from snapfs.repository import _interleave


@pytest.mark.parametrize(("count", "ways"), [(10, 2), (11, 3), (64, 4), (7, 2)])
def test_every_range_is_taken_once_and_neighbours_go_to_different_threads(
    count: int, ways: int
) -> None:
    order = _interleave(list(range(count)), ways)
    assert sorted(order) == list(range(count))
    for i in range(0, count - ways, ways):  # each round of takes spans the whole plan
        assert max(order[i : i + ways]) - min(order[i : i + ways]) >= count // ways * (ways - 1)


def test_a_short_plan_or_one_thread_keeps_plan_order() -> None:
    assert _interleave(list(range(3)), 2) == [0, 1, 2]
    assert _interleave(list(range(9)), 1) == list(range(9))

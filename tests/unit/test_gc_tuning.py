"""``api.gc_tuning``: what a started process does to its garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from api import gc_tuning


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settling_freezes_what_exists_and_raises_the_young_threshold(restored: None) -> None:
    gc_tuning.settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == gc_tuning.THRESHOLDS


def test_cycles_made_after_settling_are_still_collected(restored: None) -> None:
    gc_tuning.settle()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    del a, b
    assert gc.collect() >= 2

"""gateway.gctune: the collector settings the daemon applies once started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway import gctune


@pytest.fixture
def restore_gc() -> Iterator[None]:
    """tune() is process-wide: put the test process's collector back as it was."""
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_tune_raises_the_thresholds_and_freezes_what_exists() -> None:
    kept = [[i] for i in range(1000)]  # container objects alive before tune()
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    gctune.tune()
    assert gc.get_threshold() == (
        gctune.GEN0_THRESHOLD,
        gctune.GEN1_THRESHOLD,
        gctune.GEN2_THRESHOLD,
    )
    assert gc.get_freeze_count() >= len(kept)
    first = kept[0]
    assert not any(o is first for o in gc.get_objects())  # out of the collector's sight


@pytest.mark.usefixtures("restore_gc")
def test_cycles_made_after_tune_are_still_collected() -> None:
    gctune.tune()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    alive = gc.get_count()[0]
    del a, b
    assert gc.collect() >= 2  # the cycle is found: tune() slows the collector, never stops it
    assert gc.get_count()[0] <= alive

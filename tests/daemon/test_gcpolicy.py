"""The GC policy freezes the long-lived heap once all targets are probed, after a
reload's targets are, and hourly; never before."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from daemon.gcpolicy import REFREEZE_EVERY, GcPolicy


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freezes_after_the_first_cycle_then_hourly_and_after_reloads() -> None:
    p = GcPolicy()
    assert not p.tick(False, now=10.0) and gc.get_freeze_count() == 0  # first cycle not done yet
    assert p.tick(True, now=20.0) and gc.get_freeze_count() > 0
    assert not p.tick(True, now=30.0)
    gc.unfreeze()
    assert p.tick(True, now=20.0 + REFREEZE_EVERY)  # baselines grew: refreeze hourly
    p.targets_changed()
    assert not p.tick(False, now=20.0 + REFREEZE_EVERY + 5)  # new targets not all probed yet
    assert p.tick(True, now=20.0 + REFREEZE_EVERY + 10)


def test_frozen_objects_are_still_freed_by_reference_counting() -> None:
    import weakref

    class Series:
        pass

    s = Series()
    ref = weakref.ref(s)
    GcPolicy().tick(True, now=1.0)
    del s
    assert ref() is None


def test_survivors_of_a_full_collection_are_frozen_at_the_next_tick() -> None:
    p = GcPolicy()
    p.install()
    try:
        assert p.tick(True, now=1.0)  # first cycle: frozen
        gc.unfreeze()
        assert not p.tick(True, now=2.0)
        gc.collect()  # a full collection ran
        assert p.tick(True, now=3.0) and gc.get_freeze_count() > 0
        assert not p.tick(True, now=4.0)
    finally:
        p.uninstall()


def test_what_reached_the_old_generation_is_checked_for_cycles_then_frozen_at_the_next_tick() -> None:
    """A full collection every tick over a few seconds' worth of promotions, not one a
    minute over all of them (40-70 ms of loop at 1,000 targets): garbage cycles among them
    are collected, the rest frozen."""
    import weakref

    class Node:
        me: object = None

    p = GcPolicy()
    p.install()
    try:
        assert p.tick(True, now=1.0)  # first cycle: frozen
        keep, dead = Node(), Node()
        dead.me = dead  # a cycle: only the cyclic collector frees it
        ref = weakref.ref(dead)
        gc.collect(1)  # a young collection: both reach the old generation
        del dead
        frozen = gc.get_freeze_count()
        assert p.tick(True, now=6.0)
        assert ref() is None  # collected, not frozen for good
        assert gc.get_freeze_count() > frozen
        assert not any(o is keep for o in gc.get_objects())  # frozen: no collection walks it again
    finally:
        p.uninstall()

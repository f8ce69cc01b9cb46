"""Participant split: seeded, disjoint, sized from the hold-out fraction."""
from __future__ import annotations

import pytest

from mmrqa_bids.train.split import split_participants

IDS = [f"{i:02d}" for i in range(1, 11)]


def test_split_is_disjoint_complete_and_sized():
    train, held = split_participants(IDS, 0.3, seed=0)
    assert len(held) == 3 and len(train) == 7
    assert set(train) | set(held) == set(IDS) and not set(train) & set(held)


def test_split_is_seeded_and_order_free():
    assert split_participants(IDS, 0.3, 1) == split_participants(list(reversed(IDS)), 0.3, 1)
    assert split_participants(IDS, 0.3, 1) != split_participants(IDS, 0.3, 2)


def test_split_edge_cases():
    assert split_participants(["01"], 0.3, 0) == (["01"], [])
    assert split_participants(["01", "02"], 0.1, 0)[1] != []  # at least one held out
    assert split_participants(IDS, 0.0, 0) == (IDS, [])
    assert len(split_participants(["01", "02"], 0.9, 0)[0]) == 1  # someone trains
    with pytest.raises(ValueError, match="holdout"):
        split_participants(IDS, 1.0, 0)
    with pytest.raises(ValueError, match="no participants"):
        split_participants([], 0.3, 0)


def test_stratified_split_halves_every_stratum():
    # 14 Good, 14 Medium, 14 Bad and 4 bold participants: a plain shuffle can leave a grade
    # with 4 of its 14 in training; the stratified split gives each stratum its share
    strata = {f"{i:02d}": ("Good", "Medium", "Bad")[i // 14] if i < 42 else "bold"
              for i in range(46)}
    train, held = split_participants(list(strata), 0.5, seed=0, strata=strata)
    assert len(held) == 23 and not set(train) & set(held)
    for stratum in ("Good", "Medium", "Bad"):
        assert sum(strata[p] == stratum for p in train) == 7
    assert sum(strata[p] == "bold" for p in train) == 2
    assert split_participants(list(strata), 0.5, 0, strata) == (train, held)  # seeded

"""Train / held-out split by participant, so no participant is on both sides."""
from __future__ import annotations

import random
from typing import Iterable, Mapping


def split_participants(participants: Iterable[str], holdout_fraction: float,
                       seed: int, strata: Mapping[str, str] | None = None
                       ) -> tuple[list[str], list[str]]:
    """``(train, held_out)`` participant lists.

    n_held = round(holdout_fraction * n), at least 1 when the fraction is positive and there
    are two participants or more, and at most n - 1 (training needs someone). The draw is a
    ``random.Random(seed)`` shuffle of the sorted ids: the same seed and ids give the same
    split on every machine.

    With ``strata`` (participant -> stratum, e.g. its grades), each stratum of n_s
    participants gives about holdout_fraction * n_s of the held-out ones: participant j of
    its stratum's shuffle gets the key (j + u_s) / n_s (u_s one uniform draw per stratum) and
    the n_held smallest keys are held out, so that a grade of a few rated participants is not
    all drawn to one side.
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout fraction must be within [0, 1), got {holdout_fraction}")
    ids = sorted(set(participants))
    if not ids:
        raise ValueError("no participants to split")
    n_held = round(holdout_fraction * len(ids))
    if holdout_fraction > 0 and len(ids) >= 2:
        n_held = max(n_held, 1)
    n_held = min(n_held, len(ids) - 1)
    shuffled = ids[:]
    rng = random.Random(seed)
    rng.shuffle(shuffled)
    if strata is not None:
        groups: dict[str, list[str]] = {}
        for p in shuffled:
            groups.setdefault(str(strata.get(p, "")), []).append(p)
        key: dict[str, float] = {}
        for _, members in sorted(groups.items()):
            offset = rng.random()
            for j, p in enumerate(members):
                key[p] = (j + offset) / len(members)
        shuffled.sort(key=lambda p: key[p])
    held = sorted(shuffled[:n_held])
    return [p for p in ids if p not in held], held

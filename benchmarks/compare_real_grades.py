#!/usr/bin/env python
"""Two gradings of the same real-head runs side by side, with paired intervals.

    python benchmarks/compare_real_grades.py A/results.tsv B/results.tsv [--boot 2000]

A and B are ``results.tsv`` files that ``benchmarks/real_head_study.py`` wrote for one built
dataset (``--reuse-dataset`` regrades it with another ``--model``). For each truth, the
severity truth (``truth_label``: clean and mild Good, moderate Medium, severe Bad) and the
project's measured label (``measured_label``; a clean run is Good), it prints A's and B's
accuracy and macro-F1, B - A with its paired-bootstrap 95% interval
(:func:`mmrqa_bids.evaluation.paired_bootstrap_difference`: every resample scores both on
the same runs), the clean runs each grades Good, and then every run whose grade changed.

Why: a round judged on ~100 real runs moves macro-F1 by 0.05-0.1 when a handful of runs
change grade; the interval says whether a difference is more than that.
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: (name, column, what an empty cell means) of the truths compared.
TRUTHS = (("severity truth", "truth_label", None), ("measured labels", "measured_label", "Good"))


def read_results(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    """(source, participant_id, suffix) -> row of a real_head_study results.tsv (or of
    several, concatenated under one header: the head keeps their runs apart)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    missing = {"source", "participant_id", "suffix", "truth", "truth_label",
               "measured_label", "grade"} - set(rows[0] if rows else ())
    if missing:
        raise SystemExit(f"{path}: not a real_head_study results.tsv (no "
                         f"{', '.join(sorted(missing))})")
    out = {(r["source"], r["participant_id"], r["suffix"]): r for r in rows}
    if len(out) < len(rows):
        raise SystemExit(f"{path}: {len(rows) - len(out)} run(s) listed twice")
    return out


def compare(a: dict, b: dict, n_boot: int = 2000) -> list[str]:
    """The printed lines (module docstring)."""
    from mmrqa_bids.evaluation import (accuracy, confusion, macro_f1,
                                       paired_bootstrap_difference)

    if set(a) != set(b):
        raise SystemExit(f"the two files grade different runs ({len(set(a) ^ set(b))} "
                         "not in both): regrade one dataset with --reuse-dataset")
    keys = sorted(a)
    lines = [f"{len(keys)} runs; B - A with paired-bootstrap 95% intervals ({n_boot} resamples)"]
    ga, gb = [a[k]["grade"] for k in keys], [b[k]["grade"] for k in keys]
    for name, column, empty in TRUTHS:
        truth = [a[k][column] or empty for k in keys]
        diff = paired_bootstrap_difference(truth, ga, gb, n_boot=n_boot)
        lines.append(f"{name}:")
        for metric, score in (("accuracy", accuracy),
                              ("macro_f1", lambda t, g: macro_f1(confusion(t, g)))):
            fa, fb = score(truth, ga), score(truth, gb)
            d, lo, hi = diff[metric]
            lines.append(f"  {metric:<9} A {fa:.3f}  B {fb:.3f}  B - A {d:+.3f} "
                         f"[{lo:+.3f}, {hi:+.3f}]")
    clean = [k for k in keys if a[k]["truth"] == "clean"]
    lines.append(f"clean runs Good: A {sum(a[k]['grade'] == 'Good' for k in clean)}, "
                 f"B {sum(b[k]['grade'] == 'Good' for k in clean)} of {len(clean)}")
    changed = Counter((a[k]["artifact"], a[k]["severity"], a[k]["truth_label"],
                       a[k]["measured_label"] or "Good", a[k]["grade"], b[k]["grade"])
                      for k in keys if a[k]["grade"] != b[k]["grade"])
    lines.append(f"runs whose grade changed: {sum(changed.values())}")
    lines.append(f"  {'artifact':<10}{'severity':<10}{'truth':<8}{'measured':<10}A -> B")
    for (art, sev, truth, measured, g1, g2), n in sorted(changed.items()):
        lines.append(f"  {art:<10}{sev:<10}{truth:<8}{measured:<10}{g1} -> {g2}"
                     + (f" (x{n})" if n > 1 else ""))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="results.tsv of grading A")
    parser.add_argument("b", type=Path, help="results.tsv of grading B (the same runs)")
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args(argv)
    print("\n".join(compare(read_results(args.a), read_results(args.b), args.boot)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

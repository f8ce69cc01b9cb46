"""``mmrqa-evaluate PREDICTIONS LABELS [--json OUT.json]``: grades against expert ratings.

PREDICTIONS is an mmrqa OUTPUT_DIR (the per-run JSON documents) or a group TSV
(``group_<suffix>.tsv``); LABELS is a ratings TSV (:mod:`mmrqa_bids.ratings`). Prints a table
and, with ``--json``, writes the figures (:mod:`mmrqa_bids.evaluation` defines them).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from mmrqa_bids.evaluation import EvaluationError, evaluate_files, format_table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmrqa-evaluate",
        description="Accuracy, macro-F1, balanced accuracy, confusion, per-class P/R and ECE "
                    "of mmrqa grades against a ratings TSV.")
    parser.add_argument("predictions", type=Path, help="mmrqa OUTPUT_DIR or group_<suffix>.tsv")
    parser.add_argument("labels", type=Path, help="ratings TSV (participant_id, ..., rating)")
    parser.add_argument("--json", type=Path, default=None,
                        help="write the figures here (default: print them only)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mmrqa_bids.ratings import RatingsError
    try:
        result = evaluate_files(args.predictions, args.labels)
    except (EvaluationError, RatingsError) as exc:
        print(f"mmrqa-evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.json:
        from mmrqa_bids.io import atomic_write_json
        atomic_write_json(args.json, result)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fault injection: every case of issue 22 through the real command line, as a table.

    python benchmarks/fault_injection.py [--only SUBSTRING ...] [--keep DIR]

Columns: the case; the exit code(s) of the invocation(s) (expected in brackets when they
differ); runs kept (runs with an outcome on disk, a valid run JSON or a failure record, of
the runs the case asked for); files valid (every JSON parses with a strict parser refusing
NaN/Infinity, every TOML parses, no temporary file and no work directory left); lost (the
case's own check: a run reported written but missing, a secret found in an output, a write
into the raw dataset...). Small generated data (4 T1w runs at 3 mm); the cases are listed in
:mod:`mmrqa_bids.testing.fault_cases`.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from mmrqa_bids.testing.fault_cases import CASES, case_name, shared_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=[], help="cases whose name contains these")
    parser.add_argument("--keep", type=Path, help="work here and keep the outputs")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return run_cases(args.keep, args.only)
    with tempfile.TemporaryDirectory(prefix="mmrqa_faults_") as tmp:
        return run_cases(Path(tmp), args.only)


def run_cases(root: Path, only: list[str]) -> int:
    """Run the cases (those whose name contains one of ``only``, or all) under ``root`` and
    print the table; 1 when any case is not as expected."""
    bids = shared_dataset(root)
    cases = [c for c in CASES if not only or any(o in case_name(c) for o in only)]
    rows, failed = [], 0
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        result = case(root / f"case{i:02d}", bids)
        seconds = time.perf_counter() - t0
        name, codes, kept, valid, lost = result.row()
        if result.exit_codes != result.expected:
            codes += f" [{','.join(map(str, result.expected))}]"
        rows.append((name, codes, kept, valid, lost, f"{seconds:.0f}", result.detail))
        failed += not result.ok
        for problem in result.problems + result.lost:
            print(f"  {name}: {problem}", file=sys.stderr)
    head = ("case", "exit code", "runs kept", "files valid", "lost", "s", "detail")
    widths = [max(len(str(r[k])) for r in [head, *rows]) for k in range(len(head))]
    for row in [head, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    print(f"\n{len(rows) - failed}/{len(rows)} cases as expected")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""``mmrqa-mriqc MRIQC_OUT OUTPUT_DIR``: grade existing MRIQC outputs, no images needed.

The parser and the exit codes; the grading is :func:`mmrqa_bids.mriqc.level.run`.
Exit codes: 0 every run graded; 1 some input files were unusable (the others were graded);
2 nothing could be graded (bad folder, too few runs, too few IQMs).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from mmrqa_bids import __version__
from mmrqa_bids.cli.console import configure as configure_console
from mmrqa_bids.mriqc.iqms import MriqcError
from mmrqa_bids.mriqc.level import EXIT_USAGE, SUFFIXES, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmrqa-mriqc",
        description="Grade MRIQC outputs Good/Medium/Bad from MRIQC's IQMs (no images needed). "
                    "Models that scale IQMs per site treat all runs given as one site.")
    parser.add_argument("mriqc_dir", type=Path, help="MRIQC output folder")
    parser.add_argument("output_dir", type=Path, help="where group_<suffix>.tsv/.html go")
    parser.add_argument("-m", "--modalities", nargs="+", choices=SUFFIXES, default=list(SUFFIXES),
                        metavar="SUFFIX", help=f"suffixes to grade, among {', '.join(SUFFIXES)}")
    parser.add_argument("--model", type=Path, metavar="MODEL.json",
                        help="IQM model (default: the one shipped with mmrqa)")
    parser.add_argument("--cohort-by", default="protocol",
                        metavar="{protocol,suffix,FILE.tsv,none}",
                        help="cohorts whose runs grade each other: protocol (suffix, acq- and "
                             "other entities, MRIQC's spacing and size), suffix, or a TSV with "
                             "the columns bids_name and cohort (e.g. one cohort per site); "
                             "cohorts smaller than the minimum keep the IQM model's grade; "
                             "none: every run keeps the IQM model's grade (on ABIDE's and "
                             "DS030's ratings it ranks a site's excluded runs better)")
    parser.add_argument("--no-reports", action="store_true", help="skip the HTML report")
    parser.add_argument("--version", action="version", version=f"mmrqa {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # its warnings (unusable input files) go to stderr, as they always have
    configure_console("mmrqa-mriqc", stderr_level=logging.WARNING)
    try:
        return run(args.mriqc_dir, args.output_dir, args.modalities, args.model,
                   reports=not args.no_reports, cohort_by=args.cohort_by)
    except MriqcError as exc:
        print(f"mmrqa-mriqc: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

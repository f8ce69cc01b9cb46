"""``mmrqa-mriqc MRIQC_OUT OUTPUT_DIR``: grade existing MRIQC outputs, no images needed.

Reads MRIQC's ``group_<suffix>.tsv`` (or its per-run JSONs), grades every run Good / Medium /
Bad with the IQM model (:mod:`mmrqa_bids.mriqc.model`) and writes ``OUTPUT_DIR/group_<suffix>.tsv``
and ``group_<suffix>.html``. A model with a ``site`` feature block scales the runs of one
invocation together as one site (one scanner and protocol): grade each site's MRIQC folder
separately. The shipped model uses the ``global`` block only (IQM levels against ABIDE).

Exit codes: 0 every run graded; 1 some input files were unusable (the others were graded);
2 nothing could be graded (bad folder, too few runs, too few IQMs).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from mmrqa_bids import __version__, vocabulary
from mmrqa_bids.derivatives import DerivativesLayout
from mmrqa_bids.io import atomic_write_text
from mmrqa_bids.mriqc.grade import grade_records, to_tsv
from mmrqa_bids.mriqc.iqms import MriqcError, available_suffixes, collect_mriqc
from mmrqa_bids.mriqc.model import IqmModel

# MRIQC computes no IQMs for FLAIR.
SUFFIXES = tuple(s for s in vocabulary.SUFFIXES if s != "FLAIR")
EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


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
    parser.add_argument("--no-reports", action="store_true", help="skip the HTML report")
    parser.add_argument("--version", action="version", version=f"mmrqa {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except MriqcError as exc:
        print(f"mmrqa-mriqc: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    model = IqmModel.load(args.model)
    if not args.mriqc_dir.is_dir():
        raise MriqcError(f"{args.mriqc_dir}: MRIQC output folder does not exist")
    found = available_suffixes(args.mriqc_dir, args.modalities)
    if not found:
        raise MriqcError(f"{args.mriqc_dir}: no MRIQC outputs for {', '.join(args.modalities)}")
    graded, partial = 0, False
    layout = DerivativesLayout(args.output_dir)
    for suffix in found:
        if suffix != model.suffix:
            print(f"[mmrqa-mriqc] {suffix}: not graded: the model {model.model_id} was trained on "
                  f"{model.suffix} ratings only (no public expert ratings of {suffix} IQMs)",
                  flush=True)
            continue
        records, errors = collect_mriqc(args.mriqc_dir, suffix)
        for error in errors:
            print(f"[mmrqa-mriqc] WARNING {error}; skipped", file=sys.stderr, flush=True)
        table = grade_records(records, model, suffix, str(args.mriqc_dir), errors)
        args.output_dir.mkdir(parents=True, exist_ok=True)
        tsv = atomic_write_text(layout.group_table(suffix),
                                to_tsv(table.rows, model.features))
        print(f"[mmrqa-mriqc] {suffix}: {len(table.rows)} run(s) graded: "
              + ", ".join(f"{k} {v}" for k, v in table.counts().items()) + f" -> {tsv}", flush=True)
        if table.missing_features:
            print(f"[mmrqa-mriqc] {suffix}: IQMs absent from these MRIQC outputs (imputed with the "
                  f"median: no contribution): {', '.join(table.missing_features)}", flush=True)
        if table.renamed:
            print(f"[mmrqa-mriqc] {suffix}: legacy IQM names mapped: "
                  + ", ".join(f"{k}->{v}" for k, v in sorted(table.renamed.items())), flush=True)
        if not args.no_reports:
            from mmrqa_bids.mriqc.report import write_report
            html = write_report(layout.group_report(suffix), table, model,
                                str(args.mriqc_dir))
            print(f"[mmrqa-mriqc] {suffix}: report {html}", flush=True)
        graded += 1
        partial = partial or bool(errors)
    if not graded:
        raise MriqcError(f"{args.mriqc_dir}: nothing to grade with the {model.suffix} model "
                         f"(found {', '.join(found)})")
    return EXIT_PARTIAL if partial else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

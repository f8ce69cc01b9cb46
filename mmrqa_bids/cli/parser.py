"""The argument parser: BIDS-App positional arguments plus option groups. No side effects."""
from __future__ import annotations

import argparse
from pathlib import Path

from mmrqa_bids import __version__
from mmrqa_bids.settings import Grading, Training
from mmrqa_bids.vocabulary import GRADERS, SUFFIXES

NIPYPE_PLUGINS = ("Linear", "MultiProc", "LegacyMultiProc", "SLURM", "SLURMGraph", "SGE",
                  "SGEGraph", "PBS", "PBSGraph", "LSF", "Condor", "DAGMan", "OAR")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {value}")
    return value


def _dropout(value: str) -> float:
    number = float(value)
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1), got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmrqa",
        description="MMRQA: MRI quality grades (Good/Medium/Bad) and clinical narratives from "
                    "signal metrics and a multimodal LLM, as a BIDS App.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("bids_dir", type=Path, help="the root folder of a BIDS dataset")
    parser.add_argument("output_dir", type=Path,
                        help="where derivatives go (e.g. BIDS_DIR/derivatives/mmrqa)")
    parser.add_argument("analysis_level", choices=["participant", "group", "train"],
                        help="participant: grade each run; group: dataset tables and report; "
                             "train: fine-tune on expert ratings")
    parser.add_argument("--version", action="version", version=f"mmrqa {__version__}")

    sel = parser.add_argument_group("Selecting runs")
    sel.add_argument("--participant-label", "--participant_label", nargs="+", default=[],
                     metavar="LABEL", help="participants to process (with or without 'sub-')")
    sel.add_argument("--session-id", nargs="+", default=[], metavar="ID")
    sel.add_argument("--run-id", nargs="+", default=[], metavar="ID")
    sel.add_argument("--task-id", nargs="+", default=[], metavar="ID")
    sel.add_argument("-m", "--modalities", nargs="+", choices=SUFFIXES,
                     default=list(SUFFIXES), metavar="SUFFIX",
                     help=f"suffixes to assess, among {', '.join(SUFFIXES)}")
    sel.add_argument("--bids-filter-file", type=Path, metavar="FILE.json",
                     help='extra pybids filters per suffix, e.g. {"t1w": {"acquisition": "mprage"}}')

    ex = parser.add_argument_group("Execution")
    ex.add_argument("-w", "--work-dir", type=Path, help="Nipype working directory, kept and "
                    "reused by --resume; runs naming the same one wait for each other (default: "
                    "a private folder in the system temp dir, removed at the end; with --resume "
                    "or the train level, $TMPDIR/mmrqa_work_<hash of OUTPUT_DIR>)")
    ex.add_argument("--nprocs", "--n_procs", type=_positive_int, default=1)
    ex.add_argument("--omp-nthreads", type=_positive_int, default=1)
    ex.add_argument("--mem-gb", type=float,
                    help="memory budget: MultiProc's limit, and the most one run may need (an "
                    "image whose header implies more is refused before it is read; default: "
                    "the machine's memory)")
    ex.add_argument("--plugin", choices=NIPYPE_PLUGINS, default=None,
                    help="Nipype execution plugin (default: MultiProc when --nprocs > 1)")
    ex.add_argument("--plugin-args", type=Path, metavar="FILE.json",
                    help="JSON object of arguments for the Nipype plugin")
    ex.add_argument("--mriqc-dir", type=Path, help="reuse MRIQC's IQMs from this output folder")
    ex.add_argument("--inu-method", choices=("polynomial", "n4"), default="polynomial",
                    help="bias-field estimate behind inu_med/inu_range: a quadratic fit of the "
                    "log intensities (default; the shipped classifier was trained on it) or "
                    "SimpleITK's N4 on a ~6 mm grid (0.15-0.45 s more per 1 mm volume)")
    ex.add_argument("--no-reports", action="store_true", help="skip HTML reports")
    ex.add_argument("--resume", action="store_true",
                    help="keep the work directory and reuse finished steps")
    ex.add_argument("-v", "--verbose", action="count", default=0,
                    help="more console output: -v mmrqa's debug lines and Nipype's INFO, -vv "
                         "Nipype's DEBUG")
    ex.add_argument("-q", "--quiet", action="count", default=0,
                    help="less console output: -q warnings and errors only, -qq errors only")

    gr = parser.add_argument_group("Grading")
    gr.add_argument("--grader", choices=list(GRADERS), default="classifier",
                    help="classifier: embedded metric model (CPU, no download); llava: "
                         "LLaVA-OneVision (+LoRA) in process; openai: an OpenAI-compatible server")
    gr.add_argument("--model", metavar="ID_OR_PATH",
                    help="llava: LLaVA-OneVision hub id or local folder; classifier: a model "
                         "folder that train --labels wrote (its metric classifier, and its "
                         "cohort models for the dataset grade: participant --reference and the "
                         "group level, which otherwise reads the folder the runs were graded "
                         "with from their provenance)")
    gr.add_argument("--adapter", type=Path, metavar="PATH", help="LoRA adapter folder")
    gr.add_argument("--llm-base-url", metavar="URL",
                    help="OpenAI-compatible endpoint; the API key is read from MMRQA_LLM_API_KEY "
                         "or OPENAI_API_KEY, never from the command line")
    gr.add_argument("--llm-model", metavar="NAME", help="model name on that endpoint")
    gr.add_argument("--batch-size", type=_positive_int, default=None,
                    help=f"runs graded per batch (participant; default {Grading.batch_size}) "
                         f"or per optimiser step (train; default {Training.batch_size})")
    gr.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    gr.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    gr.add_argument("--max-new-tokens", type=_positive_int, default=384,
                    help="longest answer a multimodal grader may generate (default 384)")

    co = parser.add_argument_group(
        "Dataset-relative grading",
        "The group level grades each run against the other runs of its cohort (same suffix "
        "and protocol); cohorts smaller than the minimum keep the absolute model's grade, "
        "flagged.")
    co.add_argument("--cohort-by", default="protocol", metavar="{protocol,suffix,FILE.tsv}",
                    help="how runs are grouped into cohorts: protocol (suffix, acq- and other "
                         "entities, voxel size, matrix, and the sidecar's sequence, TR, TE, TI, "
                         "flip angle, field strength and scanner model), suffix (one cohort per "
                         "suffix), or a TSV with the columns bids_name and cohort listing every run")
    co.add_argument("--reference", type=Path, metavar="OUTPUT_DIR_OR_FILE",
                    help="participant level: grade the runs at once against the cohort "
                         "references a group level stored (an output folder, or one "
                         "cohorts/<suffix>_<id>.json file); a run whose protocol matches no "
                         "reference is an error")

    tr = parser.add_argument_group("Training (analysis level 'train')")
    tr.add_argument("--labels", type=Path, metavar="RATINGS.tsv", help="expert ratings")
    tr.add_argument("--simulate", type=int, default=0, metavar="N",
                    help="degraded copies per run with simulated artifacts")
    tr.add_argument("--holdout-fraction", type=_fraction, default=0.3)
    tr.add_argument("--qa-source", choices=["template", "llm"], default="template")
    tr.add_argument("--qa-fraction", type=_fraction, default=1.0)
    tr.add_argument("--lora-r", type=_positive_int, default=16)
    tr.add_argument("--lora-alpha", type=_positive_int, default=16)
    tr.add_argument("--learning-rate", type=float, default=1e-4)
    tr.add_argument("--epochs", type=_positive_int, default=1)
    tr.add_argument("--base-model", metavar="ID_OR_PATH")
    tr.add_argument("--output-model", type=Path, metavar="DIR")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--lora-targets", choices=["language", "all-linear"], default="language",
                    help="LoRA targets: the language model's linear layers (MMRQA), or also "
                         "the multimodal projector (every linear layer but the vision tower)")
    tr.add_argument("--lora-dropout", type=_dropout, default=0.05,
                    help="dropout on the LoRA input (default 0.05, ms-swift's)")
    tr.add_argument("--lr-scheduler", choices=["cosine", "constant", "linear"], default="cosine",
                    help="learning-rate schedule (default cosine with 5%% warm-up, ms-swift's)")
    return parser

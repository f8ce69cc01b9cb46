"""``mmrqa-merge-adapter BASE ADAPTER OUT [--dtype float32] [--force]``: a LoRA adapter merged
into its base checkpoint (:func:`mmrqa_bids.merge.merge_adapter`), for servers without LoRA."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from mmrqa_bids.grading.base import GraderError
from mmrqa_bids.merge import merge_adapter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmrqa-merge-adapter",
        description="Merge a LoRA adapter into its LLaVA-OneVision base checkpoint, for "
                    "servers without LoRA.")
    parser.add_argument("base", help="base checkpoint: hub id or local folder")
    parser.add_argument("adapter", type=Path, help="LoRA adapter folder (from `mmrqa ... train`)")
    parser.add_argument("out", type=Path, help="folder for the merged checkpoint")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                        help="weights dtype of the merged checkpoint (default float32)")
    parser.add_argument("--force", action="store_true", help="overwrite a non-empty OUT")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = merge_adapter(args.base, args.adapter, args.out, args.dtype, args.force)
    except GraderError as exc:
        print(f"mmrqa-merge-adapter: error: {exc}", file=sys.stderr)
        return 2
    print(f"merged {args.adapter} into {args.base}: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

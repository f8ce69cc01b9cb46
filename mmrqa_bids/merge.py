"""Merge a LoRA adapter into its LLaVA-OneVision base checkpoint, for servers without LoRA.

    mmrqa-merge-adapter BASE ADAPTER OUT [--dtype bfloat16] [--force]

vLLM serves LLaVA-OneVision but does not list LoRA support for this model class, so a
fine-tuned adapter is served as a merged checkpoint: ``W' = W + (alpha / r) * B @ A`` for
every adapted weight (``PeftModel.merge_and_unload``). The processor, tokenizer and chat
template files of the base are copied unchanged (merging does not touch them), so OUT is
read by the same loaders, and by vLLM, as the base. ``OUT/mmrqa_merge.json`` records the
base, the adapter and the adapter's checksum.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Sequence

from mmrqa_bids import __version__
from mmrqa_bids.grading.base import GraderError
from mmrqa_bids.grading.llava import adapter_checksum, check_adapter, check_model
from mmrqa_bids.io import atomic_write_json

#: Base-checkpoint files that describe inputs, not weights: copied verbatim into OUT.
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "tokenizer.json",
                   "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "chat_template.json", "chat_template.jinja",
                   "video_preprocessor_config.json")


def base_files(base: str) -> Path:
    """Local folder of the base checkpoint (a hub id is resolved through the HF cache)."""
    path = Path(base).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(base, allow_patterns=list(PROCESSOR_FILES)))


def merge_adapter(base: str, adapter: str | Path, out: str | Path, dtype: str = "float32",
                  force: bool = False) -> Path:
    """Write the merged checkpoint to ``out``; returns it."""
    check_model(base)
    check_adapter(adapter)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise GraderError(f"{out}: output folder is not empty (use --force to overwrite)")
    import torch
    from peft import PeftModel
    from transformers import LlavaOnevisionForConditionalGeneration

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                   "float16": torch.float16}[dtype]
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(base, dtype=torch_dtype)
    try:
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise GraderError(f"{adapter}: cannot apply the LoRA adapter to {base} "
                          f"({str(exc).splitlines()[0]})") from exc
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    source = base_files(base)
    for name in PROCESSOR_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    atomic_write_json(out / "mmrqa_merge.json", {
        "base_model": base, "adapter": str(adapter), "adapter_checksum": adapter_checksum(adapter),
        "dtype": dtype, "merged_by": f"mmrqa {__version__}"})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmrqa-merge-adapter",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("base", help="base checkpoint: hub id or local folder")
    parser.add_argument("adapter", type=Path, help="LoRA adapter folder (from `mmrqa ... train`)")
    parser.add_argument("out", type=Path, help="folder for the merged checkpoint")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                        help="weights dtype of the merged checkpoint (default float32)")
    parser.add_argument("--force", action="store_true", help="overwrite a non-empty OUT")
    args = parser.parse_args(argv)
    try:
        out = merge_adapter(args.base, args.adapter, args.out, args.dtype, args.force)
    except GraderError as exc:
        print(f"mmrqa-merge-adapter: error: {exc}", file=sys.stderr)
        return 2
    print(f"merged {args.adapter} into {args.base}: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

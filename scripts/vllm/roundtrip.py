"""The mmrqa side of ``make test-vllm`` (runs in the project's environment, not vLLM's).

    python scripts/vllm/roundtrip.py prepare WORKDIR   # tiny model, LoRA adapter, merge, BIDS
    python scripts/vllm/roundtrip.py check OUT_DIR MODEL_NAME

``prepare`` writes WORKDIR/base (the offline tiny LLaVA-OneVision), WORKDIR/adapter (a LoRA
adapter with non-zero weights on the language model's q/v projections: applying it changes
the model), WORKDIR/merged (``mmrqa-merge-adapter base adapter merged``, what vLLM serves)
and WORKDIR/bids (three runs of the demo dataset at 3 mm). ``check`` asserts that every run
of OUT_DIR was graded through the server with the constrained answer format: exit 1 and one
line naming the first problem otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from mmrqa_bids.grading.base import LABELS

RUNS = 3


def make_adapter(base: Path, out: Path, seed: int = 1) -> Path:
    """A rank-4 LoRA adapter with random (non-zero) A and B on the language model's q/v."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlavaOnevisionForConditionalGeneration

    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                        target_modules=r".*language_model.*\.(q_proj|v_proj)")
    get_peft_model(model, config).save_pretrained(out)
    return out


def prepare(workdir: Path) -> None:
    from mmrqa_bids.cli.merge import main as merge_main
    from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset
    from mmrqa_bids.testing.tiny_llava import build_tiny_llava

    base = build_tiny_llava(workdir / "base")
    make_adapter(base, workdir / "adapter")
    if merge_main([str(base), str(workdir / "adapter"), str(workdir / "merged"), "--force"]) != 0:
        raise SystemExit("roundtrip: mmrqa-merge-adapter failed")
    build_dataset(workdir / "bids", [RunPlan("01", "T1w"),
                                     RunPlan("02", "T1w", artifact="motion", severity=0.8),
                                     RunPlan("03", "T1w", artifact="ghost", severity=0.6)],
                  voxel_size=3.0)
    print(f"roundtrip: prepared {workdir} (base, adapter, merged, bids)")


def check(out: Path, model: str, runs: int = RUNS) -> list[str]:
    """Problems with the participant outputs in ``out`` (empty: all good)."""
    docs = sorted(out.glob("sub-*/anat/*_T1w.json"))
    if len(docs) != runs:
        return [f"{out}: {len(docs)} run documents, expected {runs}"]
    problems = []
    for path in docs:
        doc = json.loads(path.read_text())
        prov, grade = doc.get("provenance", {}), doc.get("grade") or {}
        if prov.get("backend") != "openai" or prov.get("model_id") != model:
            problems.append(f"{path.name}: graded by {prov.get('backend')}/{prov.get('model_id')}")
        if prov.get("output_constraint") != "regex":
            problems.append(f"{path.name}: output_constraint={prov.get('output_constraint')!r} "
                            f"({prov.get('output_constraint_note')})")
        if grade.get("label") not in LABELS or doc.get("parse_error"):
            problems.append(f"{path.name}: no grade ({doc.get('parse_error')})")
        elif not all((grade.get("narrative") or {}).values()):
            problems.append(f"{path.name}: empty narrative section")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare").add_argument("workdir", type=Path)
    chk = sub.add_parser("check")
    chk.add_argument("out", type=Path)
    chk.add_argument("model")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.workdir)
        return 0
    problems = check(args.out, args.model)
    if problems:
        print(f"test-vllm: FAILED: {problems[0]}" + (f" (+{len(problems) - 1} more)"
                                                     if len(problems) > 1 else ""), file=sys.stderr)
        return 1
    print(f"roundtrip: {RUNS} runs graded by {args.model} through vLLM with the regex constraint")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

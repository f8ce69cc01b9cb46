"""LoRA training cost: seconds per optimizer step and peak memory on the offline tiny model,
and trainable-parameter counts for the real LLaVA-OneVision-0.5B configuration.

    python benchmarks/train_step.py [--steps 6] [--batch-sizes 1 2]

The real configuration is written here by hand from the public ``config.json`` of
``llava-hf/llava-onevision-qwen2-0.5b-ov-hf`` (no download) and built on the meta device
(no weights, no memory), so the parameter counts are exact for the released checkpoint.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: llava-hf/llava-onevision-qwen2-0.5b-ov-hf, config.json (text: Qwen2-0.5B; vision: SigLIP
#: so400m-patch14-384).
REAL_TEXT = dict(model_type="qwen2", hidden_size=896, intermediate_size=4864,
                 num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 vocab_size=152000, max_position_embeddings=32768, rope_theta=1000000.0,
                 rms_norm_eps=1e-6, tie_word_embeddings=True)
REAL_VISION = dict(model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304,
                   num_hidden_layers=26, num_attention_heads=16, image_size=384, patch_size=14,
                   vision_use_head=False)


def real_config():
    from transformers import LlavaOnevisionConfig
    return LlavaOnevisionConfig(text_config=REAL_TEXT, vision_config=REAL_VISION,
                                image_token_index=151646, video_token_index=151647,
                                vision_feature_select_strategy="full", vision_feature_layer=-1,
                                vision_aspect_ratio="anyres_max_9", tie_word_embeddings=True)


def lora_counts(r: int = 16) -> list[tuple[str, int, int, int]]:
    """(preset, target modules, LoRA parameters = sum r * (in + out), total parameters)."""
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration

    from mmrqa_bids.train.lora.finetune import TARGET_PRESETS, targeted_modules

    with torch.device("meta"):
        model = LlavaOnevisionForConditionalGeneration(real_config())
    total = sum(p.numel() for p in model.parameters())
    modules = dict(model.named_modules())
    rows = []
    for preset, pattern in TARGET_PRESETS.items():
        names = targeted_modules(model, pattern)
        lora = sum(r * (modules[n].in_features + modules[n].out_features) for n in names)
        rows.append((preset, len(names), lora, total))
    return rows


def _conversations(n: int, folder: Path):
    from mmrqa_bids.qa.dialogues import grade_conversation
    from mmrqa_bids.qa.facts import QAFacts
    from mmrqa_bids.qa.template import template_content
    from mmrqa_bids.reports.mosaics import mllm_mosaic

    out = []
    labels = ("Good", "Medium", "Bad")
    for i in range(n):
        vol = np.random.default_rng(i).random((30, 36, 30)).astype(np.float32)
        png = folder / f"m{i}.png"
        png.write_bytes(mllm_mosaic(vol, vol > 0.3))
        facts = QAFacts(f"sub-{i:02d}_T1w", "T1w", labels[i % 3], {"snr1": 20.0 - i},
                        artifact=None if i % 3 == 0 else "motion")
        out.append(grade_conversation(facts, template_content(facts), png))
    return out


def time_steps(base: Path, batch: int, steps: int, folder: Path) -> tuple[float, int]:
    """(seconds per optimizer step, sequence length) for ``steps`` steps of ``batch`` examples
    (one micro-batch, no accumulation), first step excluded as warm-up."""
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration, TrainerCallback

    from mmrqa_bids.grading.llava import load_processor
    from mmrqa_bids.train.lora.finetune import LoraRecipe, fine_tune

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    processor = load_processor(str(base))
    processor.tokenizer.padding_side = "right"
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(base, dtype=torch.float32)
    convs = _conversations(batch * steps, folder)
    recipe = LoraRecipe(batch_size=batch, micro_batch_size=batch, epochs=1, save_steps=10 ** 6)
    fine_tune(model, processor, convs, recipe, folder / f"ckpt{batch}", callbacks=[Clock()],
              show_progress=False)
    from mmrqa_bids.train.lora.dataset import encode_conversation
    from PIL import Image
    length = len(encode_conversation(processor, convs[0].messages,
                                     Image.open(convs[0].image).convert("RGB"))["input_ids"])
    return (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1), length


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(2)
    from mmrqa_bids.testing.tiny_llava import build_tiny_llava

    print("== real llava-onevision-qwen2-0.5b configuration (meta device), LoRA r=16")
    print(f"{'targets':<22}{'modules':>9}{'LoRA params':>14}{'total params':>15}{'share':>9}")
    for preset, n, lora, total in lora_counts():
        print(f"{preset:<22}{n:>9}{lora:>14,}{total:>15,}{lora / total:>9.2%}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base = build_tiny_llava(folder / "tiny")
        print(f"\n== tiny model, CPU ({torch.get_num_threads()} threads), default targets, "
              f"{args.steps} steps per batch size (first excluded)")
        print(f"{'batch':>6}{'tokens/example':>16}{'s/step':>9}{'s/example':>11}{'peak RSS MiB':>14}")
        for batch in args.batch_sizes:
            per_step, length = time_steps(base, batch, args.steps, folder)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{batch:>6}{length:>16}{per_step:>9.2f}{per_step / batch:>11.2f}{rss:>14.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

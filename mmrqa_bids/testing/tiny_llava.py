"""Build a tiny LLaVA-OneVision checkpoint fully offline (random weights), for tests and demos.

    python -m mmrqa_bids.testing.tiny_llava OUT_DIR [--seed 0] [--shape tiny|real-0.5b]

Same architecture and file layout as ``llava-hf/llava-onevision-qwen2-0.5b-ov-hf``, scaled
down so that it runs in seconds on a CPU: a SigLIP vision tower of 1 layer at 64 px
(patch 8, 8 x 8 = 64 features per view), a 2-layer projector, a Qwen2 language model of
2 layers (hidden 128, 4 heads of 32 dims, 2 KV heads), and a byte-level BPE tokenizer
trained here with ``tokenizers`` on the prompt templates (special tokens ``<|endoftext|>``,
``<|im_start|>``, ``<|im_end|>``, ``<image>``, ``<video>``) with the LLaVA-OneVision chat
template. The image grid pinpoints are the real ones scaled to the tower (multiples of
64 px up to 6 x 6 crops), so a 384 px mosaic goes through the full anyres path
(6 x 6 crops, pooled to 24 x 24 features by ``anyres_max_9``: 664 image tokens).

Everything is written with ``save_pretrained``, so the folder is read by the same loading
code as a real checkpoint (:func:`mmrqa_bids.grading.llava.load_processor` /
``LlavaOnevisionForConditionalGeneration.from_pretrained``). The weights are random: its
answers are not MMRQA answers, so end-to-end runs on it exercise the unparsed-answer path
(well-formed answers are tested on text, :mod:`mmrqa_bids.grading.parse`).

``--shape real-0.5b`` writes the architecture of ``llava-onevision-qwen2-0.5b-ov-hf``
(SigLIP-so400m at 384 px, Qwen2-0.5B; 151,647-token embedding) with random weights and the
same tiny tokenizer: a like-for-like speed check on a GPU without downloading anything.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>")
TOWER_PX = 64
PATCH_PX = 8
VOCAB_SIZE = 1024
#: Gain of the language model's final RMSNorm (1 in a fresh Qwen2). With tied 0.02-scale
#: embeddings and a unit norm, every logit is bounded by sqrt(hidden) * max |embedding row|
#: (about 3 for the tiny shape), so the next-token distribution stays nearly flat over 1,024
#: tokens whatever LoRA learns (it does not train the tied ``lm_head``): fine-tuning lowers
#: the loss only part of the way and free-running greedy decoding drifts. A trained model's
#: logits span tens of units; a gain of 4 gives a logit range of about 12. Measured on the
#: train level's four conversations (5e-3, all-linear, constant, 144 steps; free-running
#: greedy answers whose first line is the training "Grade: <label>"): gain 1: loss
#: 6.93 -> 5.16, answers open with "Classification:"; gain 4: 7.30 -> 1.10 and 4/4 in
#: process, 7.30 -> 1.07 and 2/4 through the CLI (192 steps: 7.30 -> 0.78, 4/4); gain 8:
#: 10.54 -> 0.60 (too peaked at random init), 3/4 in process.
FINAL_NORM_GAIN = 4.0

#: The LLaVA-OneVision chat template (as shipped with the llava-hf checkpoints).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\\n' + content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def grid_pinpoints(tower_px: int = TOWER_PX, max_tiles: int = 6) -> list[list[int]]:
    """anyres grid resolutions: every (rows, cols) of tower-sized crops up to ``max_tiles``
    (the real checkpoints use 384 px crops up to 6 x 6 = 2,304 px)."""
    return [[tower_px * i, tower_px * j] for i in range(1, max_tiles + 1)
            for j in range(1, max_tiles + 1)]


def training_corpus() -> Iterator[str]:
    """Text the tokenizer is trained on: the prompt and narrative templates, the answer
    vocabulary and digits (byte-level BPE still encodes any other text)."""
    from mmrqa_bids.grading.base import LABELS
    from mmrqa_bids.grading.narrative import ARTIFACT_FACTS, BOLD_PROTOCOL, USABILITY
    from mmrqa_bids.resources import templates_dir

    for path in sorted(templates_dir().rglob("*.j2")):
        yield path.read_text()
    for facts in ARTIFACT_FACTS.values():
        yield from facts.values()
    yield from BOLD_PROTOCOL.values()
    for grades in USABILITY.values():
        for sentences in grades.values():
            yield from sentences
    yield " ".join(f"Grade: {label}" for label in LABELS)
    yield " ".join(f"{name} ({p / 10:.2f});" for name in ARTIFACT_FACTS for p in range(11))
    yield " ".join(f"{v:.4g}" for v in (0.001234, 3.142, 12.5, 256.0, 1.0e5, -0.75, 99.99))


def build_tokenizer(vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE tokenizer (Qwen2-style pre-tokenization) wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(training_corpus()), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token=None, extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
        model_max_length=32768, padding_side="left", clean_up_tokenization_spaces=False)
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


@dataclass(frozen=True)
class Shape:
    """Sizes of the vision tower (SigLIP) and the language model (Qwen2)."""

    tower_px: int
    patch_px: int
    vision_hidden: int
    vision_intermediate: int
    vision_layers: int
    vision_heads: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab_size: int | None = None  # None: the tokenizer's

    @property
    def features_per_view(self) -> int:
        return (self.tower_px // self.patch_px) ** 2


TINY = Shape(tower_px=TOWER_PX, patch_px=PATCH_PX, vision_hidden=64, vision_intermediate=128,
             vision_layers=1, vision_heads=2, hidden=128, intermediate=256, layers=2, heads=4,
             kv_heads=2)
#: ``llava-hf/llava-onevision-qwen2-0.5b-ov-hf`` (SigLIP-so400m at 384 px, Qwen2-0.5B): for
#: speed checks on a GPU with random weights, without downloading the checkpoint.
REAL_0_5B = Shape(tower_px=384, patch_px=14, vision_hidden=1152, vision_intermediate=4304,
                  vision_layers=26, vision_heads=16, hidden=896, intermediate=4864, layers=24,
                  heads=14, kv_heads=2, vocab_size=151647)
SHAPES = {"tiny": TINY, "real-0.5b": REAL_0_5B}


def build_image_processor(shape: Shape = TINY):
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil)

    mean_std = [0.5, 0.5, 0.5]  # SigLIP normalisation
    return LlavaOnevisionImageProcessorPil(
        size={"height": shape.tower_px, "width": shape.tower_px},
        image_grid_pinpoints=grid_pinpoints(shape.tower_px),
        image_mean=mean_std, image_std=mean_std, do_pad=True)


def build_processor(tokenizer, shape: Shape = TINY):
    """The image-only LLaVA-OneVision processor for this shape (anyres_max_9, full features)."""
    from mmrqa_bids.grading.llava import image_only_processor_class

    return image_only_processor_class()(
        image_processor=build_image_processor(shape), tokenizer=tokenizer,
        num_image_tokens=shape.features_per_view, vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9", chat_template=CHAT_TEMPLATE)


def build_config(tokenizer, shape: Shape = TINY):
    from transformers import LlavaOnevisionConfig, Qwen2Config, SiglipVisionConfig

    vision = SiglipVisionConfig(hidden_size=shape.vision_hidden,
                                intermediate_size=shape.vision_intermediate,
                                num_hidden_layers=shape.vision_layers,
                                num_attention_heads=shape.vision_heads,
                                image_size=shape.tower_px, patch_size=shape.patch_px, num_channels=3)
    text = Qwen2Config(vocab_size=shape.vocab_size or len(tokenizer), hidden_size=shape.hidden,
                       intermediate_size=shape.intermediate, num_hidden_layers=shape.layers,
                       num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
                       head_dim=shape.hidden // shape.heads, max_position_embeddings=32768,
                       tie_word_embeddings=True,
                       eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                       pad_token_id=tokenizer.pad_token_id)
    return LlavaOnevisionConfig(
        vision_config=vision, text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full", vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9", image_grid_pinpoints=grid_pinpoints(shape.tower_px),
        projector_hidden_act="gelu", multimodal_projector_bias=True, tie_word_embeddings=True)


def build_tiny_llava(out_dir: str | Path, seed: int = 0, shape: Shape = TINY) -> Path:
    """Write the checkpoint (model, generation config, tokenizer, image processor, processor
    config, chat template) to ``out_dir``; returns the folder. ``shape=REAL_0_5B`` writes the
    real 0.5B architecture with random weights (about 3.6 GB in float32)."""
    import torch
    from transformers import GenerationConfig, LlavaOnevisionForConditionalGeneration

    from mmrqa_bids.merge import declare_stock_processor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = build_config(tokenizer, shape)
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    with torch.no_grad():  # a realistic logit range (FINAL_NORM_GAIN says why)
        model.model.language_model.norm.weight.mul_(FINAL_NORM_GAIN)
    model.generation_config = GenerationConfig(
        eos_token_id=config.text_config.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        do_sample=False, max_new_tokens=64)
    model.save_pretrained(out)
    build_processor(tokenizer, shape).save_pretrained(out)
    declare_stock_processor(out)  # as in the real checkpoints
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny",
                        help="tiny (default) or the real 0.5B architecture, random weights both")
    args = parser.parse_args(argv)
    out = build_tiny_llava(args.out_dir, seed=args.seed, shape=SHAPES[args.shape])
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"{args.shape} LLaVA-OneVision written to {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

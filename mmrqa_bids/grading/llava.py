"""LLaVA-OneVision (+ optional LoRA adapter) grading runs locally through transformers/peft.

The model is loaded once per grader and runs are graded in batches (left padding, greedy
decoding). The prompt is :mod:`mmrqa_bids.grading.prompts`, the answer is parsed by
:mod:`mmrqa_bids.grading.parse`; grade probabilities come from the next-token distribution
at the label position (right after ``Grade:``): the probability mass of each label's first
token(s), renormalised over the three labels.

torch, transformers and peft are imported inside functions only (the ``[llm]`` extra);
:func:`LlavaGrader.check` validates the settings without importing them (it imports torch
only to confirm ``--device cuda``).

transformers 5 without torchvision: the stock ``LlavaOnevisionProcessor`` requires a video
processor, which needs torchvision. :func:`image_only_processor_class` is the same processor
minus the video processor; with the PIL image processor it reads both the real checkpoint
layout and :mod:`mmrqa_bids.testing.tiny_llava`.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from mmrqa_bids.grading.base import LABELS, Grade, GraderError, GradeRequest
from mmrqa_bids.grading.parse import failed_grade, parse_answer
from mmrqa_bids.grading.prompts import load_mosaic, render_prompt_text
from mmrqa_bids.settings import Grading

ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LABEL_POSITION = re.compile(r"grade[\s*_]*:[\s*_]*$", re.IGNORECASE)
#: Generated tokens within which the ``Grade:`` key is looked for.
LABEL_SEARCH_STEPS = 16


# --------------------------------------------------------------------------- settings checks
def check_model(model: str | None) -> None:
    """A local checkpoint folder with a config, or a hub id ``org/name``; one-line error otherwise."""
    if not model:
        raise GraderError("--grader llava needs --model (a hub id such as "
                          "llava-hf/llava-onevision-qwen2-0.5b-ov-hf, or a local folder)")
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise GraderError(f"{path}: --model must be a checkpoint folder, not a file")
        if not (path / "config.json").is_file():
            raise GraderError(f"{path}: not a model checkpoint (missing config.json)")
        if not any((path / n).is_file() for n in ("preprocessor_config.json", "processor_config.json")):
            raise GraderError(f"{path}: no image processor config (preprocessor_config.json or "
                              "processor_config.json)")
        return
    if model.startswith((".", "/", "~")) or not _HUB_ID.match(model):
        raise GraderError(f"{model}: model folder not found (and not a hub id like org/name)")


def check_adapter(adapter: str | Path | None) -> None:
    """A PEFT adapter folder: ``adapter_config.json`` plus the adapter weights."""
    if adapter is None:
        return
    path = Path(adapter).expanduser()
    if not path.is_dir():
        raise GraderError(f"{path}: adapter folder not found")
    if not (path / "adapter_config.json").is_file():
        raise GraderError(f"{path}: not a LoRA adapter (missing adapter_config.json)")
    if not any((path / n).is_file() for n in ADAPTER_WEIGHTS):
        raise GraderError(f"{path}: adapter weights missing ({' or '.join(ADAPTER_WEIGHTS)})")


def adapter_checksum(adapter: str | Path | None) -> str | None:
    """``sha256:`` over the adapter config and weights (file names and bytes, sorted)."""
    if adapter is None:
        return None
    path = Path(adapter)
    digest = hashlib.sha256()
    for name in sorted(("adapter_config.json",) + ADAPTER_WEIGHTS):
        file = path / name
        if file.is_file():
            digest.update(name.encode())
            with file.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise GraderError("--device cuda: no CUDA device is available to torch")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """``auto``: bfloat16 on a GPU that supports it, float32 otherwise (CPU bf16 is slow)."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def require_extra(*modules: str) -> None:
    """The ``[llm]`` extra is installed (found without importing it)."""
    from importlib.util import find_spec

    missing = [m for m in modules if find_spec(m) is None]
    if missing:
        raise GraderError(f"the multimodal graders need the [llm] extra (pip install 'mmrqa[llm]'); "
                          f"missing: {', '.join(missing)}")


def check(settings: Grading) -> None:
    """Module-level hook of :func:`mmrqa_bids.grading.check_grader`."""
    LlavaGrader.check(settings)


# --------------------------------------------------------------------------- loading
@lru_cache(maxsize=1)
def image_only_processor_class() -> type:
    """``LlavaOnevisionProcessor`` without the (torchvision-only) video processor."""
    from transformers import LlavaOnevisionProcessor

    class LlavaOnevisionImageOnlyProcessor(LlavaOnevisionProcessor):
        def __init__(self, image_processor=None, tokenizer=None, num_image_tokens=None,
                     vision_feature_select_strategy=None, chat_template=None,
                     image_token="<image>", video_token="<video>",
                     vision_aspect_ratio="anyres_max_9", **kwargs):
            super().__init__(image_processor=image_processor, tokenizer=tokenizer,
                             video_processor=None, num_image_tokens=num_image_tokens,
                             vision_feature_select_strategy=vision_feature_select_strategy,
                             chat_template=chat_template, image_token=image_token,
                             video_token=video_token, vision_aspect_ratio=vision_aspect_ratio)

    return LlavaOnevisionImageOnlyProcessor


def load_processor(model: str, config: Any = None) -> Any:
    """The image-only processor of a checkpoint, completed from the model config when the
    checkpoint's ``processor_config.json`` lacks the image-token settings."""
    try:
        processor = image_only_processor_class().from_pretrained(model)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise GraderError(f"{model}: cannot load the LLaVA-OneVision processor "
                          f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise GraderError(f"{model}: the processor has no image processor or tokenizer")
    if config is not None:
        vision = config.vision_config
        if processor.num_image_tokens is None:
            processor.num_image_tokens = (vision.image_size // vision.patch_size) ** 2
        if processor.vision_feature_select_strategy is None:
            processor.vision_feature_select_strategy = config.vision_feature_select_strategy
    if processor.chat_template is None:
        processor.chat_template = getattr(processor.tokenizer, "chat_template", None)
    if processor.chat_template is None:
        raise GraderError(f"{model}: the checkpoint has no chat template")
    processor.tokenizer.padding_side = "left"
    if processor.tokenizer.pad_token_id is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


def load_model(model: str, adapter: str | Path | None = None, device: str = "auto",
               dtype: str = "auto") -> tuple[Any, Any, str]:
    """(model, processor, device): the checkpoint, with the LoRA adapter merged in when given."""
    from transformers import AutoConfig, LlavaOnevisionForConditionalGeneration

    device = resolve_device(device)
    try:
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise GraderError(f"{model}: cannot read the model config ({str(exc).splitlines()[0]})") from exc
    if config.model_type != "llava_onevision":
        raise GraderError(f"{model}: a {config.model_type!r} checkpoint, not LLaVA-OneVision")
    processor = load_processor(model, config)
    try:
        net = LlavaOnevisionForConditionalGeneration.from_pretrained(
            model, dtype=resolve_dtype(dtype, device))
    except (OSError, ValueError) as exc:
        raise GraderError(f"{model}: cannot load the model weights ({str(exc).splitlines()[0]})") from exc
    if adapter is not None:
        from peft import PeftModel

        try:
            net = PeftModel.from_pretrained(net, str(adapter)).merge_and_unload()
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise GraderError(f"{adapter}: cannot apply the LoRA adapter to {model} "
                              f"({str(exc).splitlines()[0]})") from exc
    return net.to(device).eval(), processor, device


# --------------------------------------------------------------------------- label probabilities
def label_token_ids(tokenizer: Any) -> dict[str, set[int]]:
    """First token id of each label as it may follow ``Grade:`` (with or without a space)."""
    ids: dict[str, set[int]] = {}
    for label in LABELS:
        firsts = {tokenizer.encode(variant, add_special_tokens=False)[0]
                  for variant in (f" {label}", label)}
        ids[label] = firsts
    clashes = set.intersection(*ids.values())
    if clashes:  # labels not distinguishable by their first token: drop the shared ids
        ids = {k: v - clashes for k, v in ids.items()}
    return ids


def make_label_probe(tokenizer: Any, prompt_length: int, batch: int) -> Any:
    """A transformers ``LogitsProcessor`` that records, per row, the label distribution at
    the step right after ``Grade:``; it never changes the scores."""
    import torch
    from transformers import LogitsProcessor

    ids = label_token_ids(tokenizer)

    class LabelProbe(LogitsProcessor):
        def __init__(self) -> None:
            self.probabilities: list[dict[str, float] | None] = [None] * batch

        def __call__(self, input_ids, scores):
            step = input_ids.shape[1] - prompt_length
            if step > LABEL_SEARCH_STEPS:
                return scores
            for row in range(input_ids.shape[0]):
                text = tokenizer.decode(input_ids[row, prompt_length:], skip_special_tokens=True)
                if _LABEL_POSITION.search(text):
                    probs = torch.softmax(scores[row].float(), dim=-1)
                    self.probabilities[row] = {k: float(probs[list(v)].sum()) for k, v in ids.items()}
            return scores

    return LabelProbe()


# --------------------------------------------------------------------------- the grader
@dataclass
class LlavaGrader:
    model_id: str
    adapter: Path | None
    max_new_tokens: int
    model: Any = field(repr=False)
    processor: Any = field(repr=False)
    device: str = "cpu"
    backend: str = "llava"
    #: seconds spent per stage over the last :meth:`grade` call (mosaic, prompt, generate, parse)
    last_timings: dict[str, float] = field(default_factory=dict)
    _checksum: str | None = None

    @classmethod
    def check(cls, settings: Grading) -> None:
        """Validate the settings without loading the model (cheap; for exit code 2)."""
        check_model(settings.model)
        check_adapter(settings.adapter)
        require_extra("torch", "transformers", *(("peft",) if settings.adapter else ()))
        if settings.device == "cuda":
            resolve_device("cuda")

    @classmethod
    def from_settings(cls, settings: Grading) -> "LlavaGrader":
        cls.check(settings)
        model, processor, device = load_model(str(settings.model), settings.adapter,
                                              settings.device, settings.dtype)
        return cls(model_id=str(settings.model), adapter=settings.adapter,
                   max_new_tokens=settings.max_new_tokens, model=model, processor=processor,
                   device=device, _checksum=adapter_checksum(settings.adapter))

    def provenance(self) -> dict[str, Any]:
        return {"backend": self.backend, "model_id": self.model_id,
                "adapter": str(self.adapter) if self.adapter else None,
                "adapter_checksum": self._checksum, "device": self.device,
                "dtype": str(self.model.dtype).replace("torch.", ""),
                "max_new_tokens": self.max_new_tokens, "decoding": "greedy"}

    def grade(self, requests: Sequence[GradeRequest]) -> list[Grade]:
        timings = {"mosaic": 0.0, "prompt": 0.0, "generate": 0.0, "parse": 0.0}
        grades: list[Grade | None] = [None] * len(requests)
        images, texts, rows = [], [], []
        for i, request in enumerate(requests):
            t0 = time.perf_counter()
            try:
                image = load_mosaic(request)
            except GraderError as exc:  # one unreadable mosaic fails that run only
                grades[i] = failed_grade(str(exc))
                continue
            t1 = time.perf_counter()
            texts.append(render_prompt_text(self.processor, request))
            images.append(image)
            rows.append(i)
            timings["mosaic"] += t1 - t0
            timings["prompt"] += time.perf_counter() - t1
        if rows:
            try:
                answers, probabilities = self._generate(images, texts, timings)
            except RuntimeError as exc:  # e.g. out of memory: this batch fails, not the dataset
                reason = f"generation failed: {' '.join(str(exc).split())[:300]}"
                for row in rows:
                    grades[row] = failed_grade(reason)
            else:
                t0 = time.perf_counter()
                for row, answer, probs in zip(rows, answers, probabilities):
                    grades[row] = parse_answer(answer, probs)
                timings["parse"] += time.perf_counter() - t0
        self.last_timings = timings
        return [g for g in grades if g is not None]

    def _generate(self, images: list, texts: list[str],
                  timings: dict[str, float]) -> tuple[list[str], list[dict[str, float] | None]]:
        import torch
        from transformers import LogitsProcessorList

        t0 = time.perf_counter()
        inputs = self.processor(images=images, text=texts, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        prompt_length = inputs["input_ids"].shape[1]
        tokenizer = self.processor.tokenizer
        probe = make_label_probe(tokenizer, prompt_length, len(texts))
        t1 = time.perf_counter()
        timings["prompt"] += t1 - t0
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      logits_processor=LogitsProcessorList([probe]),
                                      pad_token_id=tokenizer.pad_token_id)
        t2 = time.perf_counter()
        timings["generate"] += t2 - t1
        answers = tokenizer.batch_decode(out[:, prompt_length:], skip_special_tokens=True)
        timings["parse"] += time.perf_counter() - t2
        return [a.strip() for a in answers], probe.probabilities

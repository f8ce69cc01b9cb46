"""The MMRQA prompt: a system instruction, the slice mosaic and the metrics as text.

One prompt for every backend and for training (the ``train`` level builds its QA pairs with
:func:`build_messages` and :func:`mmrqa_bids.grading.parse.format_answer`, so what a LoRA
adapter learns is exactly what the graders ask and parse).

Image and token budget
----------------------
The image is the 384 x 384 px mosaic of :func:`mmrqa_bids.reports.mosaics.mllm_mosaic`
(3 x 3 tiles of 128 px). LLaVA-OneVision's "anyres_max_9" scheme encodes it as one base
view plus the best-fitting grid of tower-sized crops. For the 0.5B/7B checkpoints (SigLIP at
384 px, patch 14, 27 x 27 = 729 features per view) a 384 px image fits a 1 x 1 grid, so it
costs 729 (base) + 27 x 27 (crop) + 27 (row newlines) = 1,485 image tokens (checked in
``tests/testing/test_tiny_llava.py`` against the real processor configuration). The text
(system instruction, the 26-27 metrics of :func:`prompt_metric_names`, the three questions)
is about 1,730 characters: 863-889 tokens with the tiny model's BPE (measured on the demo
runs; quoting all ~70 computed metrics took ~2,300), fewer with Qwen2's 151k vocabulary.
The offline tiny model (:mod:`mmrqa_bids.testing.tiny_llava`, 64 px tower, 8 x 8 features) turns the same
image into a 6 x 6 crop grid pooled to 24 x 24: 576 + 24 + 64 = 664 image tokens.
"""
from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

from mmrqa_bids.grading.base import GradeRequest, GraderError
from mmrqa_bids.grading.narrative import ARTIFACT_FACTS
from mmrqa_bids.metrics.names import MRQY_NAMES
from mmrqa_bids.resources import template_env

#: Artifact vocabulary the model is asked to use (``none`` when the run is clean).
ARTIFACT_TYPES: tuple[str, ...] = tuple(ARTIFACT_FACTS)

CONTRASTS = {
    "T1w": "T1-weighted structural",
    "T2w": "T2-weighted structural",
    "FLAIR": "T2-FLAIR structural",
    "bold": "BOLD fMRI (mosaic of the temporal mean; temporal metrics given as numbers)",
}


def format_value(value: Any) -> str:
    """Four significant digits; ``n/a`` for missing or non-finite values."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return f"{number:.4g}" if math.isfinite(number) else "n/a"


#: The MRIQC-style measures quoted after the MRQy set, per kind of run. MRIQC uses the same
#: names, so where ``--mriqc-dir`` supplied MRIQC's value (``mriqc_<name>``) it is quoted instead.
PROMPT_IQMS: dict[str, tuple[str, ...]] = {
    "anat": ("snr_total", "snrd_total", "cnr", "cjv", "efc", "fber", "wm2max", "inu_med",
             "inu_range", "qi_1", "fwhm_avg"),
    "bold": ("tsnr", "snr", "dvars_std", "gsr_x", "gsr_y", "aor", "gcor", "fd_mean", "fd_perc",
             "efc", "fber", "fwhm_avg"),
}


def prompt_metric_names(suffix: str) -> tuple[str, ...]:
    """The metrics the prompt quotes: MMRQA's 15 MRQy signal metrics, then the MRIQC-style
    measures of the run's kind. Per-tissue summaries in scanner units stay out: they cost
    prompt tokens (about 70 metrics would make the text part ~2,300 tokens) and carry no
    quality information a grade needs."""
    kind = "bold" if suffix == "bold" else "anat"
    return tuple(f"mrqy_{name}" for name in MRQY_NAMES) + PROMPT_IQMS[kind]


def prompt_metrics(metrics: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The metrics of :func:`prompt_metric_names` present in ``metrics``, in that order;
    MRIQC's value (``mriqc_<name>``) replaces mmrqa's where the run has one. Training
    answers may only quote these: the model cannot learn to cite a value it was not shown."""
    selected = {}
    for name in prompt_metric_names(suffix):
        key = f"mriqc_{name}" if f"mriqc_{name}" in metrics else name
        if key in metrics:
            selected[key] = metrics[key]
    return selected


def metric_lines(metrics: dict[str, Any], suffix: str) -> list[tuple[str, str]]:
    """``(name, value)`` lines of :func:`prompt_metrics`, values to four significant digits."""
    return [(name, format_value(value)) for name, value in prompt_metrics(metrics, suffix).items()]


def system_prompt() -> str:
    return template_env(html=False).get_template("prompts/system.j2").render().strip()


def user_prompt(request: GradeRequest) -> str:
    """The text part of the user turn: contrast, metrics and the three MMRQA questions."""
    return template_env(html=False).get_template("prompts/user.j2").render(
        contrast=CONTRASTS.get(request.suffix, request.suffix),
        metrics=metric_lines(request.metrics, request.suffix),
        artifact_types=ARTIFACT_TYPES,
        cohort_context=request.cohort_context,
    ).strip()


def build_messages(request: GradeRequest, answer: str | None = None) -> list[dict[str, Any]]:
    """Chat messages in the transformers multimodal format (one ``{"type": "image"}`` part).

    With ``answer`` (training), the assistant turn is appended; without it (grading), the
    caller adds the generation prompt.
    """
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": system_prompt()}]},
        {"role": "user", "content": [{"type": "image"},
                                     {"type": "text", "text": user_prompt(request)}]},
    ]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def render_prompt_text(processor: Any, request: GradeRequest, answer: str | None = None) -> str:
    """The prompt string through the processor's chat template (``<image>`` placeholder kept;
    the processor expands it to the image-token budget of the actual image)."""
    return processor.apply_chat_template(build_messages(request, answer),
                                         add_generation_prompt=answer is None, tokenize=False)


def read_mosaic(request: GradeRequest) -> bytes:
    """PNG bytes of the run's mosaic, with a one-line error naming the file when unusable."""
    if request.mosaic is None:
        raise GraderError(f"{request.bids_name}: no mosaic image (the multimodal graders need one)")
    path = Path(request.mosaic)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GraderError(f"{path}: cannot read the mosaic image ({exc.strerror or exc})") from exc
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise GraderError(f"{path}: the mosaic is not a PNG image")
    return data


def load_mosaic(request: GradeRequest) -> Any:
    """The mosaic as an RGB ``PIL.Image`` (the LLaVA processor expects three channels)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(read_mosaic(request))) as img:
        return img.convert("RGB")


def image_data_url(request: GradeRequest) -> str:
    """``data:image/png;base64,...`` for OpenAI-style ``image_url`` parts."""
    return "data:image/png;base64," + base64.b64encode(read_mosaic(request)).decode("ascii")


def openai_messages(request: GradeRequest) -> list[dict[str, Any]]:
    """The same prompt as OpenAI chat messages, the mosaic as a base64 ``image_url`` part."""
    return [
        {"role": "system", "content": system_prompt()},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_data_url(request)}},
            {"type": "text", "text": user_prompt(request)},
        ]},
    ]

"""Merge a LoRA adapter into its LLaVA-OneVision base checkpoint, for servers without LoRA
(``mmrqa-merge-adapter``: :mod:`mmrqa_bids.cli.merge`).

vLLM serves LLaVA-OneVision but does not list LoRA support for this model class, so a
fine-tuned adapter is served as a merged checkpoint: ``W' = W + (alpha / r) * B @ A`` for
every adapted weight (``PeftModel.merge_and_unload``). OUT is written for both readers:

- weights: transformers 5 saves the SigLIP tower as ``vision_tower.embeddings...``, while
  vLLM's ``LlavaOnevisionForConditionalGeneration`` nests it one level deeper
  (``SiglipVisionModel.vision_model``) and fails on the flat names with "There is no module
  or parameter named 'vision_tower.embeddings'". The tensors are renamed to
  ``vision_tower.vision_model.*`` (:func:`vllm_weight_name`), the layout of the llava-hf
  checkpoints, which transformers also reads;
- processor: the base's processor (image processor, tokenizer, chat template) is loaded and
  written again with ``save_pretrained``, with the stock ``LlavaOnevisionProcessor`` named
  as its class, so vLLM's ``AutoProcessor`` reads OUT as it reads a llava-hf checkpoint.

``OUT/mmrqa_merge.json`` records the base, the adapter and the adapter's checksum.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from mmrqa_bids import __version__
from mmrqa_bids.grading.base import GraderError
from mmrqa_bids.grading.llava import adapter_checksum, check_adapter, check_model, load_model
from mmrqa_bids.io import atomic_write_json

_FLAT_TOWER = re.compile(r"^((?:model\.)?vision_tower\.)(?!vision_model\.)")
#: The processor class AutoProcessor (in vLLM's environment too) resolves for this model.
STOCK_PROCESSOR = "LlavaOnevisionProcessor"


def vllm_weight_name(name: str) -> str:
    """``[model.]vision_tower.X`` -> ``[model.]vision_tower.vision_model.X``; other names
    unchanged (so the renaming is idempotent)."""
    return _FLAT_TOWER.sub(r"\1vision_model.", name)


def rename_for_vllm(folder: str | Path) -> int:
    """Rename the weights of every ``*.safetensors`` shard in ``folder`` (and its index) with
    :func:`vllm_weight_name`; returns how many tensors were renamed."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = Path(folder)
    renamed = 0
    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(shard, "pt") as handle:
            metadata = handle.metadata() or {"format": "pt"}
            tensors = {vllm_weight_name(k): handle.get_tensor(k) for k in handle.keys()}
            renamed += sum(vllm_weight_name(k) != k for k in handle.keys())
        tmp = shard.with_name(f".{shard.name}.tmp")
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, shard)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        doc = json.loads(index.read_text())
        doc["weight_map"] = {vllm_weight_name(k): v for k, v in doc.get("weight_map", {}).items()}
        atomic_write_json(index, doc)
    return renamed


def declare_stock_processor(folder: str | Path) -> None:
    """Name the stock processor and the generic fast tokenizer in the saved configs (our
    image-only subclass and transformers 5's ``TokenizersBackend`` are unknown to
    ``AutoProcessor``/``AutoTokenizer`` elsewhere, e.g. in a vLLM environment)."""
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = Path(folder) / name
        if path.is_file():
            doc = json.loads(path.read_text())
            if "processor_class" in doc:
                doc["processor_class"] = STOCK_PROCESSOR
            if doc.get("tokenizer_class") == "TokenizersBackend":
                doc["tokenizer_class"] = "PreTrainedTokenizerFast"
            atomic_write_json(path, doc)


def write_video_processor_config(folder: str | Path, base: str | Path | None = None) -> Path:
    """``video_preprocessor_config.json``: the base's when it has one, else the stock
    ``LlavaOnevisionVideoProcessor`` settings with the image processor's size and
    normalisation (as in the llava-hf checkpoints). ``LlavaOnevisionProcessor`` cannot be
    built without a video processor, even for images only; mmrqa's image-only processor
    ignores the file."""
    folder = Path(folder)
    target = folder / "video_preprocessor_config.json"
    source = Path(base) / target.name if base is not None else None
    if source is not None and source.is_file():
        return atomic_write_json(target, json.loads(source.read_text()))
    image = json.loads((folder / "processor_config.json").read_text()).get("image_processor")
    if image is None and (folder / "preprocessor_config.json").is_file():
        image = json.loads((folder / "preprocessor_config.json").read_text())
    if not image:
        raise GraderError(f"{folder}: no image processor settings to derive the video "
                          "processor from")
    keep = ("size", "image_mean", "image_std", "resample", "rescale_factor", "do_resize",
            "do_rescale", "do_normalize", "do_convert_rgb")
    doc = {"video_processor_type": "LlavaOnevisionVideoProcessor",
           "processor_class": STOCK_PROCESSOR, "default_to_square": False,
           "do_sample_frames": False, **{k: image[k] for k in keep if k in image}}
    return atomic_write_json(target, doc)


def merge_adapter(base: str, adapter: str | Path, out: str | Path, dtype: str = "float32",
                  force: bool = False) -> Path:
    """Write the merged checkpoint to ``out``; returns it."""
    check_model(base)
    check_adapter(adapter)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise GraderError(f"{out}: output folder is not empty (use --force to overwrite)")
    # The llava grader's own loading: the same checks, processor and adapter merge.
    merged, processor, _ = load_model(base, adapter, device="cpu", dtype=dtype)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    rename_for_vllm(out)
    processor.save_pretrained(out)
    declare_stock_processor(out)
    write_video_processor_config(out, base if Path(base).is_dir() else None)
    atomic_write_json(out / "mmrqa_merge.json", {
        "base_model": base, "adapter": str(adapter), "adapter_checksum": adapter_checksum(adapter),
        "dtype": dtype, "merged_by": f"mmrqa {__version__}"})
    return out

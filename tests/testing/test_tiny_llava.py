"""The offline tiny LLaVA-OneVision: built with save_pretrained, read by the real loaders."""
from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """Built through the module's command line (in-process: torch is imported once)."""
    import contextlib
    import io

    from mmrqa_bids.testing.tiny_llava import main

    out = tmp_path_factory.mktemp("tiny_cli") / "model"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([str(out)]) == 0
    assert "tiny LLaVA-OneVision written to" in printed.getvalue()
    return out


def test_layout_matches_the_real_checkpoints(tiny_dir):
    for name in ("config.json", "model.safetensors", "generation_config.json",
                 "processor_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (tiny_dir / name).is_file(), name
    processor_config = json.loads((tiny_dir / "processor_config.json").read_text())
    assert processor_config["processor_class"] == "LlavaOnevisionProcessor"
    assert processor_config["num_image_tokens"] == 64
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["model_type"] == "llava_onevision"
    assert config["text_config"]["num_hidden_layers"] == 2
    assert config["vision_config"]["num_hidden_layers"] == 1
    text = config["text_config"]
    assert text["hidden_size"] // text["num_attention_heads"] >= 32  # vLLM CPU head sizes


def test_real_loaders_read_it_and_the_budget_is_as_documented(tiny_dir):
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoConfig, AutoTokenizer, LlavaOnevisionForConditionalGeneration

    from mmrqa_bids.grading.llava import load_processor

    config = AutoConfig.from_pretrained(tiny_dir)
    processor = load_processor(str(tiny_dir), config)
    assert type(processor.image_processor).__name__ == "LlavaOnevisionImageProcessorPil"
    assert processor.image_processor.image_grid_pinpoints == config.image_grid_pinpoints
    assert all(h % 64 == 0 and w % 64 == 0 for h, w in config.image_grid_pinpoints)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    for special in ("<|im_start|>", "<|im_end|>", "<image>", "<video>", "<|endoftext|>"):
        ids = tokenizer.encode(special, add_special_tokens=False)
        assert len(ids) == 1 and tokenizer.decode(ids) == special
    assert tokenizer.convert_tokens_to_ids("<image>") == config.image_token_id
    assert tokenizer.decode(tokenizer.encode("snr1 = 12.5, Grade: Medium")) == "snr1 = 12.5, Grade: Medium"

    image = Image.fromarray(np.zeros((384, 384, 3), dtype=np.uint8))
    inputs = processor(images=[image], text=["<|im_start|>user <image>\nhi<|im_end|>"],
                       return_tensors="pt")
    # 384 px: 6 x 6 crops of 64 px pooled to 24 x 24 (anyres_max_9) + 24 newlines + 64 base
    assert int((inputs["input_ids"] == config.image_token_id).sum()) == 664
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny_dir)
    with torch.inference_mode():
        logits = model(**inputs).logits
    assert logits.shape[-1] == model.config.text_config.vocab_size


def test_processor_without_image_processor_is_refused(tiny_dir, tmp_path):
    """The failure AutoProcessor hides (tokenizer only) is reported by load_processor."""
    import shutil

    from mmrqa_bids.grading.base import GraderError
    from mmrqa_bids.grading.llava import load_processor

    broken = tmp_path / "no_image_processor"
    shutil.copytree(tiny_dir, broken)
    (broken / "processor_config.json").unlink()
    with pytest.raises(GraderError, match="no_image_processor"):
        load_processor(str(broken))


def test_real_shape_budget_is_1485_tokens_for_the_384px_mosaic():
    """The documented budget, from the real 0.5B processor configuration (no weights built)."""
    import numpy as np
    from PIL import Image

    from mmrqa_bids.testing.tiny_llava import (REAL_0_5B, TINY, build_config, build_processor,
                                               build_tokenizer)

    tokenizer = build_tokenizer()
    image = Image.fromarray(np.zeros((384, 384, 3), dtype=np.uint8))
    for shape, expected in ((REAL_0_5B, 1485), (TINY, 664)):
        processor = build_processor(tokenizer, shape)
        inputs = processor(images=[image], text=["<image>"], return_tensors="pt")
        assert int((inputs["input_ids"] == processor.image_token_id).sum()) == expected
    config = build_config(tokenizer, REAL_0_5B)
    assert config.text_config.vocab_size == 151647 and config.vision_config.image_size == 384
    assert config.text_config.head_dim == 64

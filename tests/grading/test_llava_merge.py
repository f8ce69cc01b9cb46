"""mmrqa-merge-adapter: the merged checkpoint behaves as base + adapter."""
from __future__ import annotations

import json

import pytest

from mmrqa_bids.grading.base import GraderError
from mmrqa_bids.grading.llava import adapter_checksum


@pytest.fixture(scope="module")
def merged_dir(tiny_llava_dir, tiny_adapter_dir, tmp_path_factory):
    from mmrqa_bids.cli.merge import main

    out = tmp_path_factory.mktemp("merge") / "merged"
    assert main([str(tiny_llava_dir), str(tiny_adapter_dir), str(out)]) == 0
    return out


def test_merged_checkpoint_equals_base_plus_adapter(merged_dir, tiny_llava_dir, tiny_adapter_dir):
    import torch

    from mmrqa_bids.grading.llava import load_model

    record = json.loads((merged_dir / "mmrqa_merge.json").read_text())
    assert record["adapter_checksum"] == adapter_checksum(tiny_adapter_dir)
    merged, processor, _ = load_model(str(merged_dir), device="cpu", dtype="float32")
    tuned, base_processor, _ = load_model(str(tiny_llava_dir), tiny_adapter_dir, device="cpu",
                                          dtype="float32")
    ids = processor.tokenizer("Grade: Medium\nArtifacts: none", return_tensors="pt")
    assert ids["input_ids"].tolist() == base_processor.tokenizer(
        "Grade: Medium\nArtifacts: none", return_tensors="pt")["input_ids"].tolist()
    assert processor.chat_template == base_processor.chat_template
    with torch.inference_mode():
        torch.testing.assert_close(merged(**ids).logits, tuned(**ids).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name, expected", [
    ("vision_tower.embeddings.patch_embedding.weight",
     "vision_tower.vision_model.embeddings.patch_embedding.weight"),
    ("model.vision_tower.encoder.layers.0.mlp.fc1.bias",
     "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1.bias"),
    ("vision_tower.vision_model.post_layernorm.weight",  # already nested: unchanged
     "vision_tower.vision_model.post_layernorm.weight"),
    ("language_model.model.layers.0.self_attn.q_proj.weight",
     "language_model.model.layers.0.self_attn.q_proj.weight"),
    ("multi_modal_projector.linear_1.bias", "multi_modal_projector.linear_1.bias"),
    ("image_newline", "image_newline"),
])
def test_vllm_weight_names(name, expected):
    from mmrqa_bids.merge import vllm_weight_name

    assert vllm_weight_name(name) == expected
    assert vllm_weight_name(expected) == expected  # idempotent


def test_merged_folder_has_the_layout_vllm_loads(merged_dir, tiny_llava_dir):
    """vLLM 0.32's loader wants the nested SigLIP names, its CPU attention a text head size
    of 32 or more, and its AutoProcessor the stock processor with a video processor."""
    from safetensors import safe_open
    from transformers import AutoConfig

    with safe_open(merged_dir / "model.safetensors", "pt") as handle:
        names = list(handle.keys())
    with safe_open(tiny_llava_dir / "model.safetensors", "pt") as handle:
        base_names = list(handle.keys())
    tower = [n for n in names if "vision_tower" in n]
    assert tower and all(n.startswith("vision_tower.vision_model.") for n in tower)
    assert len(names) == len(base_names) and any(n.startswith("vision_tower.embeddings")
                                                 for n in base_names)
    config = AutoConfig.from_pretrained(merged_dir)
    assert config.text_config.head_dim == 32
    processor = json.loads((merged_dir / "processor_config.json").read_text())
    assert processor["processor_class"] == "LlavaOnevisionProcessor"
    assert processor["num_image_tokens"] == 64 and processor["vision_aspect_ratio"] == "anyres_max_9"
    image = processor["image_processor"]
    video = json.loads((merged_dir / "video_preprocessor_config.json").read_text())
    assert video["video_processor_type"] == "LlavaOnevisionVideoProcessor"
    assert video["size"] == image["size"] and video["image_mean"] == image["image_mean"]
    tokenizer = json.loads((merged_dir / "tokenizer_config.json").read_text())
    assert tokenizer["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert (merged_dir / "chat_template.jinja").read_text() == \
        (tiny_llava_dir / "chat_template.jinja").read_text()


def test_video_processor_config_is_copied_from_a_base_that_has_one(merged_dir, tmp_path):
    from mmrqa_bids.merge import write_video_processor_config

    base = tmp_path / "base"
    base.mkdir()
    (base / "video_preprocessor_config.json").write_text('{"size": {"height": 384}}')
    out = tmp_path / "out"
    out.mkdir()
    (out / "processor_config.json").write_text("{}")
    write_video_processor_config(out, base)
    assert json.loads((out / "video_preprocessor_config.json").read_text()) == {"size": {"height": 384}}
    with pytest.raises(GraderError, match="no image processor settings"):
        write_video_processor_config(out)


def test_merge_refuses_bad_inputs(tiny_llava_dir, tiny_adapter_dir, tmp_path):
    from mmrqa_bids.cli.merge import main

    assert main([str(tiny_llava_dir), str(tmp_path / "none"), str(tmp_path / "o")]) == 2
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("keep")
    assert main([str(tiny_llava_dir), str(tiny_adapter_dir), str(busy)]) == 2
    assert (busy / "x").read_text() == "keep"


@pytest.mark.parametrize("argv", [["--help"]])
def test_merge_help(argv, capsys):
    from mmrqa_bids.cli.merge import main

    with pytest.raises(SystemExit):
        main(argv)
    assert "BASE" in capsys.readouterr().out.upper()

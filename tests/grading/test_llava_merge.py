"""mmrqa-merge-adapter: the merged checkpoint behaves as base + adapter."""
from __future__ import annotations

import json

import pytest

from mmrqa_bids.grading.llava import adapter_checksum


def test_merged_checkpoint_equals_base_plus_adapter(tiny_llava_dir, tiny_adapter_dir, tmp_path):
    import torch

    from mmrqa_bids.grading.llava import load_model
    from mmrqa_bids.merge import main

    out = tmp_path / "merged"
    assert main([str(tiny_llava_dir), str(tiny_adapter_dir), str(out)]) == 0
    record = json.loads((out / "mmrqa_merge.json").read_text())
    assert record["adapter_checksum"] == adapter_checksum(tiny_adapter_dir)
    for name in ("processor_config.json", "tokenizer.json", "chat_template.jinja"):
        assert (out / name).read_bytes() == (tiny_llava_dir / name).read_bytes()
    merged, processor, _ = load_model(str(out), device="cpu", dtype="float32")
    tuned, _, _ = load_model(str(tiny_llava_dir), tiny_adapter_dir, device="cpu", dtype="float32")
    ids = processor.tokenizer("Grade: Medium\nArtifacts: none", return_tensors="pt")
    with torch.inference_mode():
        torch.testing.assert_close(merged(**ids).logits, tuned(**ids).logits, atol=1e-4, rtol=1e-4)


def test_merge_refuses_bad_inputs(tiny_llava_dir, tiny_adapter_dir, tmp_path):
    from mmrqa_bids.merge import main

    assert main([str(tiny_llava_dir), str(tmp_path / "none"), str(tmp_path / "o")]) == 2
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("keep")
    assert main([str(tiny_llava_dir), str(tiny_adapter_dir), str(busy)]) == 2
    assert (busy / "x").read_text() == "keep"


@pytest.mark.parametrize("argv", [["--help"]])
def test_merge_help(argv, capsys):
    from mmrqa_bids.merge import main

    with pytest.raises(SystemExit):
        main(argv)
    assert "BASE" in capsys.readouterr().out.upper()

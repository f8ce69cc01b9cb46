"""LoRA targets, the tokenised training sequence, and resuming an interrupted run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from mmrqa_bids.qa.dialogues import dialogue, grade_conversation  # noqa: E402
from mmrqa_bids.qa.facts import QAFacts  # noqa: E402
from mmrqa_bids.qa.template import template_content  # noqa: E402
from mmrqa_bids.train.lora.dataset import (END_OF_TURN, IGNORE_INDEX,  # noqa: E402
                                           PromptMaskingCollator, encode_conversation)
from mmrqa_bids.train.lora.finetune import (ALL_LINEAR_TARGETS,  # noqa: E402
                                            LANGUAGE_MODEL_TARGETS,
                                            LoraRecipe, add_lora, fine_tune, optimizer_steps,
                                            targeted_modules, warmup_steps)


def _model(path):
    from transformers import LlavaOnevisionForConditionalGeneration
    torch.manual_seed(0)
    return LlavaOnevisionForConditionalGeneration.from_pretrained(path, dtype=torch.float32)


def _processor(path):
    from mmrqa_bids.grading.llava import load_processor
    processor = load_processor(str(path))
    processor.tokenizer.padding_side = "right"
    return processor


@pytest.fixture(scope="module")
def mosaics(tmp_path_factory) -> list[Path]:
    from mmrqa_bids.reports.mosaics import mllm_mosaic
    out = []
    for i in range(3):
        vol = np.random.default_rng(i).random((24, 28, 20)).astype(np.float32) * (i + 1)
        path = tmp_path_factory.mktemp("mosaics") / f"m{i}.png"
        path.write_bytes(mllm_mosaic(vol, vol > 0.2))
        out.append(path)
    return out


def _conversations(mosaics):
    out = []
    for i, (label, artifact) in enumerate([("Good", None), ("Medium", "noise"), ("Bad", "motion")]):
        facts = QAFacts(f"sub-0{i}_T1w", "T1w", label, {"snr1": 20.0 - 6 * i}, artifact=artifact)
        out.append(grade_conversation(facts, template_content(facts), mosaics[i]))
    return out


def test_default_targets_are_the_language_model_linear_layers_only(tiny_base):
    model = _model(tiny_base)
    names = targeted_modules(model, LANGUAGE_MODEL_TARGETS)
    layers = model.config.text_config.num_hidden_layers
    assert len(names) == 7 * layers
    assert all("language_model" in n and "vision_tower" not in n for n in names)
    # Why a regex: a bare q_proj also selects the SigLIP tower's attention.
    assert any("vision_tower" in n for n in targeted_modules(model, r".*\.q_proj"))
    extra = set(targeted_modules(model, ALL_LINEAR_TARGETS)) - set(names)
    assert extra == {"model.multi_modal_projector.linear_1", "model.multi_modal_projector.linear_2"}
    with pytest.raises(ValueError, match="vision tower"):
        add_lora(model, LoraRecipe(targets=r".*\.q_proj"))
    with pytest.raises(ValueError, match="selects no linear layer"):
        add_lora(model, LoraRecipe(targets=r"nothing"))
    peft_model = add_lora(_model(tiny_base), LoraRecipe())
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)


def test_sequence_is_the_inference_prompt_plus_the_answer_and_im_end(tiny_base, mosaics):
    from PIL import Image

    processor = _processor(tiny_base)
    conv = _conversations(mosaics)[1]
    image = Image.open(conv.image).convert("RGB")
    enc = encode_conversation(processor, conv.messages, image)
    prompt = processor.apply_chat_template(list(conv.messages[:2]), tokenize=False,
                                           add_generation_prompt=True)
    prompt_ids = processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"][0]
    n = len(prompt_ids)
    assert enc["input_ids"][:n] == prompt_ids.tolist() and not any(enc["learned"][:n])
    learned = [t for t, keep in zip(enc["input_ids"], enc["learned"]) if keep]
    assert processor.tokenizer.decode(learned) == conv.assistant_turns()[0] + END_OF_TURN
    assert enc["learned"][-1] is False  # the newline after <|im_end|>
    batch = PromptMaskingCollator(processor.tokenizer.pad_token_id)([enc])
    labels = batch["labels"][0]
    assert (labels[:n] == IGNORE_INDEX).all()
    assert labels[n:-1].tolist() == enc["input_ids"][n:-1]
    # Multi-round: every assistant turn is learned, every user turn is not.
    facts = QAFacts("x", "T1w", "Bad", {"snr1": 3.0}, artifact="motion")
    multi = dialogue(facts, template_content(facts), conv.image)
    enc = encode_conversation(processor, multi.messages, image)
    text = processor.tokenizer.decode([t for t, k in zip(enc["input_ids"], enc["learned"]) if k])
    assert text == END_OF_TURN.join(multi.assistant_turns()) + END_OF_TURN


def test_step_count_and_warmup_are_whole_steps_rounded_down():
    assert optimizer_steps(3, micro=1, accumulation=8, epochs=1) == 1  # partial accumulation
    assert optimizer_steps(17, micro=1, accumulation=8, epochs=2) == 6
    assert optimizer_steps(16, micro=8, accumulation=1, epochs=1) == 2
    assert warmup_steps(0.05, 1) == 0 and warmup_steps(0.05, 19) == 0
    assert warmup_steps(0.05, 20) == 1 and warmup_steps(0.05, 1000) == 50
    with pytest.raises(ValueError, match="warm-up fraction"):
        warmup_steps(1.0, 10)


def test_a_single_optimizer_step_moves_the_adapter(tiny_base, mosaics, tmp_path):
    """Three conversations at the default effective batch of 8 make one optimizer step. With
    a warm-up rounded up, that step was taken at lr 0 and the adapter kept its initial B = 0."""
    processor = _processor(tiny_base)
    recipe = LoraRecipe(learning_rate=1e-3)  # MMRQA's batch 8, one epoch, 5% warm-up
    model, result = fine_tune(_model(tiny_base), processor, _conversations(mosaics), recipe,
                              tmp_path, show_progress=False)
    assert result.global_step == 1 and result.accumulation == 8
    assert result.losses[0]["learning_rate"] == pytest.approx(1e-3)
    lora_b = [v for k, v in _lora_state(model).items() if "lora_B" in k]
    assert lora_b and all(float(v.abs().max()) > 0 for v in lora_b)


class _Interrupt:
    """A Trainer callback that interrupts the run at a given step, like Ctrl-C would."""

    def __init__(self, step: int):
        from transformers import TrainerCallback

        outer = step

        class Stop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == outer:
                    raise KeyboardInterrupt

        self.callback = Stop()


def _lora_state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


@pytest.mark.slow
def test_resume_after_an_interrupted_run_matches_an_uninterrupted_one(tiny_base, mosaics,
                                                                       tmp_path):
    processor = _processor(tiny_base)
    convs = _conversations(mosaics)
    recipe = LoraRecipe(learning_rate=1e-3, epochs=1, batch_size=1, warmup=0.0, seed=3)  # 3 steps
    whole, result = fine_tune(_model(tiny_base), processor, convs, recipe, tmp_path / "a",
                              show_progress=False)
    assert result.global_step == 3 and result.resumed_from is None
    with pytest.raises(KeyboardInterrupt):
        fine_tune(_model(tiny_base), processor, convs, recipe, tmp_path / "b",
                  callbacks=[_Interrupt(2).callback], show_progress=False)
    assert (tmp_path / "b" / "checkpoint-1").is_dir()
    assert not (tmp_path / "b" / "checkpoint-2").exists()
    resumed, result_b = fine_tune(_model(tiny_base), processor, convs, recipe, tmp_path / "b",
                                  resume=True, show_progress=False)
    assert result_b.resumed_from.endswith("checkpoint-1") and result_b.global_step == 3
    a, b = _lora_state(whole), _lora_state(resumed)
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
    assert [x["loss"] for x in result_b.losses] == pytest.approx([x["loss"] for x in result.losses],
                                                                  rel=1e-4)

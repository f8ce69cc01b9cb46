"""LoRA fine-tuning of LLaVA-OneVision with transformers' ``Trainer`` and peft.

MMRQA's recipe: LoRA r=16, alpha=16 on the language model's linear layers only (the SigLIP
tower and the projector stay frozen), Adam (AdamW with weight decay 0) at lr 1e-4 with
betas (0.9, 0.95), an effective batch of 8 (micro-batches with gradient accumulation), one
epoch. The learning-rate schedule is cosine with 5% warm-up (ms-swift's default), counted
in whole steps rounded down (:func:`warmup_steps`): transformers' schedules take their first
optimizer step at a learning rate of 0 during warm-up, so a rounded-up warm-up made a run of
one optimizer step (8 conversations or fewer at the default batch) train nothing at all.

Checkpoints (adapter, optimizer, scheduler, RNG states) are written under
``checkpoints/`` every 10% of the optimizer steps (at most 50 apart); :func:`fine_tune` with
``resume=True`` continues from the last one. On a GPU, bf16 autocast and gradient
checkpointing are on. A tqdm bar shows the running loss.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

#: The language model's linear layers only. A bare ``q_proj`` would also match the SigLIP
#: tower's attention (``vision_tower.vision_model.encoder.layers.N.self_attn.q_proj``).
LANGUAGE_MODEL_TARGETS = (r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|"
                          r"up_proj|down_proj)")
#: Every linear layer outside the vision tower: the language model and the multimodal
#: projector (the image-to-text bridge). The output layer (``lm_head``) is left out on
#: purpose: LLaVA-OneVision ties it to the input embeddings, so merging a LoRA delta into it
#: (as the llava grader does) would also change every input embedding.
ALL_LINEAR_TARGETS = (r".*(language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|"
                      r"down_proj)|multi_modal_projector\.linear_[12])")
TARGET_PRESETS = {"language": LANGUAGE_MODEL_TARGETS, "all-linear": ALL_LINEAR_TARGETS}


@dataclass(frozen=True)
class LoraRecipe:
    r: int = 16
    alpha: int = 16
    dropout: float = 0.05
    targets: str = LANGUAGE_MODEL_TARGETS  # regex over module names (peft full match)
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    epochs: int = 1
    batch_size: int = 8  # effective batch (micro-batch x accumulation)
    micro_batch_size: int | None = None  # None: the batch on GPU, 1 on CPU
    warmup: float = 0.05  # fraction of the optimizer steps, rounded down (warmup_steps)
    scheduler: str = "cosine"
    save_steps: int | None = None  # None: every 10% of the run, at most every 50 steps
    seed: int = 0

    def micro_and_accumulation(self, device: str) -> tuple[int, int]:
        micro = self.micro_batch_size or (self.batch_size if device.startswith("cuda") else 1)
        micro = max(1, min(micro, self.batch_size))
        return micro, math.ceil(self.batch_size / micro)


def optimizer_steps(n: int, micro: int, accumulation: int, epochs: int) -> int:
    """Optimizer steps of a run, as the Trainer counts them:
    ``epochs * ceil(ceil(n / micro) / accumulation)`` (a last, partial accumulation still
    steps), at least one per epoch."""
    return max(1, math.ceil(math.ceil(n / micro) / accumulation)) * epochs


def warmup_steps(fraction: float, steps: int) -> int:
    """Linear warm-up length: ``floor(fraction * steps)``.

    The Trainer's schedules scale the learning rate by ``k / warmup`` at step ``k`` (from 0),
    so every warm-up starts with one step at lr 0. Rounding ``fraction * steps`` up (what
    ``warmup_steps=0.05`` does) gives one warm-up step to every run shorter than 20 steps,
    and a one-step run (at most ``batch_size`` conversations, one epoch) then leaves the
    adapter at its initialisation; rounded down, short runs have no warm-up.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"warm-up fraction must be within [0, 1), got {fraction}")
    return math.floor(fraction * steps)


def lora_config(recipe: LoraRecipe) -> Any:
    from peft import LoraConfig
    return LoraConfig(r=recipe.r, lora_alpha=recipe.alpha, lora_dropout=recipe.dropout,
                      target_modules=recipe.targets, bias="none")


def targeted_modules(model: Any, pattern: str) -> list[str]:
    """Names of the ``nn.Linear`` modules the LoRA regex selects (peft matches the full name)."""
    import torch
    regex = re.compile(pattern)
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and regex.fullmatch(name)]


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def add_lora(model: Any, recipe: LoraRecipe) -> Any:
    """The model wrapped by peft: only the LoRA matrices are trainable."""
    from peft import get_peft_model

    hits = targeted_modules(model, recipe.targets)
    if not hits:
        raise ValueError(f"the LoRA target pattern {recipe.targets!r} selects no linear layer")
    if any("vision_tower" in name for name in hits):
        raise ValueError("the LoRA targets include the vision tower, which must stay frozen")
    return get_peft_model(model, lora_config(recipe))


def last_checkpoint(directory: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint
    return Path(found) if directory.is_dir() and (found := get_last_checkpoint(str(directory))) else None


def _loss_bar_callback() -> Any:
    from transformers import TrainerCallback
    from transformers.trainer_callback import ProgressCallback

    class LossOnBar(TrainerCallback):
        """Shows the latest training loss on the Trainer's progress bar."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            trainer_bar = next((cb for cb in kwargs.get("callbacks", [])
                                if isinstance(cb, ProgressCallback)), None)
            bar = getattr(trainer_bar, "training_bar", None)
            if bar is not None and logs and "loss" in logs:
                bar.set_postfix(loss=f"{logs['loss']:.4f}")

    return LossOnBar()


def dataset_loss(model: Any, processor: Any, conversations: Sequence[Any], device: str,
                 limit: int = 32) -> float:
    """Mean cross-entropy (nats) over the learned tokens of the first ``limit`` conversations,
    in eval mode (no dropout): sum over tokens of -log p(token) / number of learned tokens."""
    import torch

    from mmrqa_bids.train.lora.dataset import ConversationDataset, PromptMaskingCollator

    dataset = ConversationDataset(list(conversations)[:limit], processor)
    collate = PromptMaskingCollator(processor.tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(len(dataset)):
            batch = {k: v.to(device) for k, v in collate([dataset[i]]).items()}
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
    model.train(was_training)
    return total / max(count, 1)


@dataclass
class TrainResult:
    global_step: int
    losses: list[dict[str, float]]  # [{"step": s, "loss": l, "learning_rate": lr}]
    resumed_from: str | None
    trainable: int
    total: int
    micro_batch_size: int
    accumulation: int
    seconds: float
    loss_before: float  # dataset_loss on (up to 32) training conversations, before training
    loss_after: float  # the same, after
    warmup_steps: int = 0


def fine_tune(model: Any, processor: Any, conversations: Sequence[Any], recipe: LoraRecipe,
              checkpoint_dir: Path, *, device: str = "cpu", resume: bool = False,
              callbacks: Sequence[Any] = (), show_progress: bool = True) -> tuple[Any, TrainResult]:
    """Train LoRA matrices on ``conversations``; returns the peft model and a summary.

    ``model`` is the base ``LlavaOnevisionForConditionalGeneration`` (float32 weights; on a
    GPU the Trainer runs it under bf16 autocast). ``callbacks`` are extra Trainer callbacks.
    """
    import time

    from transformers import Trainer, TrainingArguments

    from mmrqa_bids.train.lora.dataset import ConversationDataset, PromptMaskingCollator

    peft_model = add_lora(model, recipe)
    trainable, total = trainable_parameters(peft_model)
    on_gpu = device.startswith("cuda")
    if on_gpu:
        peft_model.enable_input_require_grads()
    micro, accumulation = recipe.micro_and_accumulation(device)
    checkpoint_dir = Path(checkpoint_dir)
    steps = optimizer_steps(len(conversations), micro, accumulation, recipe.epochs)
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        learning_rate=recipe.learning_rate,
        adam_beta1=recipe.betas[0], adam_beta2=recipe.betas[1], weight_decay=0.0,
        optim="adamw_torch",
        num_train_epochs=recipe.epochs,
        lr_scheduler_type=recipe.scheduler,
        warmup_steps=warmup_steps(recipe.warmup, steps),
        logging_steps=1,
        save_strategy="steps", save_total_limit=2,
        save_steps=recipe.save_steps or _save_every(steps),
        bf16=on_gpu and _bf16_ok(),
        activation_checkpointing=on_gpu,  # gradient checkpointing (transformers 5 name)
        activation_checkpointing_kwargs={"use_reentrant": False} if on_gpu else None,
        remove_unused_columns=False,
        label_names=["labels"],
        report_to="none",
        seed=recipe.seed, data_seed=recipe.seed,
        dataloader_num_workers=0,
        use_cpu=not on_gpu,
        disable_tqdm=not show_progress,
    )
    trainer = Trainer(model=peft_model, args=args,
                      train_dataset=ConversationDataset(conversations, processor),
                      data_collator=PromptMaskingCollator(processor.tokenizer.pad_token_id),
                      callbacks=[_loss_bar_callback(), *callbacks])
    resume_from = last_checkpoint(checkpoint_dir) if resume else None
    device_of = next(peft_model.parameters()).device
    loss_before = dataset_loss(peft_model, processor, conversations, device_of)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - start
    loss_after = dataset_loss(peft_model, processor, conversations,
                              next(peft_model.parameters()).device)
    losses = [{"step": h["step"], "loss": h["loss"], "learning_rate": h.get("learning_rate")}
              for h in trainer.state.log_history if "loss" in h]
    return peft_model, TrainResult(
        global_step=trainer.state.global_step, losses=losses,
        resumed_from=str(resume_from) if resume_from else None, trainable=trainable,
        total=total, micro_batch_size=micro, accumulation=accumulation, seconds=seconds,
        loss_before=loss_before, loss_after=loss_after,
        warmup_steps=warmup_steps(recipe.warmup, steps))


def _save_every(steps: int) -> int:
    """Checkpoint interval: 10% of the optimizer steps, between 1 and 50."""
    return max(1, min(50, math.ceil(steps / 10)))


def _bf16_ok() -> bool:
    import torch
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()

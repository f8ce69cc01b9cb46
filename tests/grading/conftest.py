"""Fixtures of the multimodal-grader tests: the offline tiny LLaVA-OneVision (built once per
session), a LoRA adapter for it, a mosaic image and a two-run BIDS dataset."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tiny model is latency-bound: on a shared CPU more threads only contend."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory) -> Path:
    from mmrqa_bids.testing.tiny_llava import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava") / "model")


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_llava_dir, tmp_path_factory) -> Path:
    """A LoRA adapter with non-zero weights (so that applying it changes the model)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlavaOnevisionForConditionalGeneration

    torch.manual_seed(1)
    base = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny_llava_dir)
    config = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                        target_modules=r".*language_model.*\.(q_proj|v_proj)")
    out = tmp_path_factory.mktemp("adapter") / "lora"
    get_peft_model(base, config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def mosaic_png(tmp_path_factory) -> Path:
    """A real 384 px MLLM mosaic of a synthetic head-like volume."""
    from mmrqa_bids.reports.mosaics import mllm_mosaic

    grid = np.mgrid[-1:1:40j, -1:1:48j, -1:1:36j]
    radius = np.sqrt((grid ** 2).sum(axis=0))
    vol = (radius < 0.8) * (100 + 50 * np.cos(6 * grid[0])) + np.random.default_rng(0).random(radius.shape)
    path = tmp_path_factory.mktemp("mosaic") / "mllm.png"
    path.write_bytes(mllm_mosaic(vol.astype(np.float32), radius < 0.8))
    return path


@pytest.fixture(scope="session")
def small_bids(tmp_path_factory) -> Path:
    from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset

    root = tmp_path_factory.mktemp("bids_mllm") / "bids"
    build_dataset(root, [RunPlan("01", "T1w"),
                         RunPlan("02", "T1w", artifact="motion", severity=0.8)], voxel_size=3.0)
    return root

"""The data collator on toy tensors: exact label masks and padding."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mmrqa_bids.train.lora.dataset import (IGNORE_INDEX, PromptMaskingCollator,  # noqa: E402
                                           mask_labels)


def test_mask_labels_keeps_only_answer_tokens():
    assert mask_labels([5, 6, 7, 8, 9], [False, False, True, True, False]) == [-100, -100, 7, 8, -100]
    with pytest.raises(ValueError):
        mask_labels([1, 2], [True])


def test_collator_pads_right_and_masks_prompt_and_padding_exactly():
    features = [
        {"input_ids": [11, 12, 13, 2], "learned": [False, False, True, True],
         "pixel_values": torch.ones(3, 3, 4, 4), "image_sizes": torch.tensor([8, 8])},
        {"input_ids": [21, 22, 23, 24, 25, 2, 30], "learned": [False] * 3 + [True] * 3 + [False],
         "pixel_values": torch.full((2, 3, 4, 4), 2.0), "image_sizes": torch.tensor([4, 8])},
    ]
    batch = PromptMaskingCollator(pad_token_id=0)(features)
    assert batch["input_ids"].tolist() == [[11, 12, 13, 2, 0, 0, 0], [21, 22, 23, 24, 25, 2, 30]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0, 0], [1] * 7]
    x = IGNORE_INDEX
    assert batch["labels"].tolist() == [[x, x, 13, 2, x, x, x], [x, x, x, 24, 25, 2, x]]
    # anyres patches zero-padded to the largest count in the batch
    assert batch["pixel_values"].shape == (2, 3, 3, 4, 4)
    assert batch["pixel_values"][1, 2].abs().sum() == 0 and batch["pixel_values"][1, 1].min() == 2
    assert batch["image_sizes"].tolist() == [[8, 8], [4, 8]]


def test_collator_refuses_mixed_image_batches():
    with pytest.raises(ValueError, match="mixes"):
        PromptMaskingCollator(0)([{"input_ids": [1], "learned": [True],
                                   "pixel_values": torch.ones(1, 3, 2, 2), "image_sizes": [2, 2]},
                                  {"input_ids": [1], "learned": [True]}])

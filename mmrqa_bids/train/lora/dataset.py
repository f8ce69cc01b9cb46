"""Tokenised training examples and the data collator (prompt masking, padding).

A conversation is cut into chunks that are either prompt (not learned) or answer (learned).
Every assistant turn is encoded exactly as the graders meet it at inference: the prompt
rendered by the processor's chat template with the generation prompt
(``...<|im_start|>assistant\\n``), then the answer text and ``<|im_end|>``, both learned,
so the model learns to stop (the processor's assistant-token mask would leave
``<|im_end|>`` out). The ``\\n`` after ``<|im_end|>`` and every prompt token get label -100,
and so does padding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

END_OF_TURN = "<|im_end|>"
IGNORE_INDEX = -100


class ChatTemplateError(ValueError):
    """The checkpoint's chat template does not have the shape the masking relies on."""


def _render(processor: Any, messages: Sequence[dict[str, Any]], generation: bool = False) -> str:
    return processor.apply_chat_template(list(messages), tokenize=False,
                                         add_generation_prompt=generation)


def conversation_chunks(processor: Any,
                        messages: Sequence[dict[str, Any]]) -> list[tuple[str, bool]]:
    """``[(text, learned), ...]`` whose concatenation is the training sequence.

    The chat template renders each message on its own (as the Qwen2/LLaVA-OneVision
    templates do); consecutive prompt chunks are merged, so the first chunk is exactly the
    inference prompt of the first assistant turn.
    """
    chunks: list[tuple[str, bool]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            chunks.append((_render(processor, [message]), False))
            continue
        if i == 0:
            raise ChatTemplateError("a conversation cannot start with an assistant turn")
        texts = [p["text"] for p in message["content"] if p["type"] == "text"]
        if len(texts) != 1:
            raise ChatTemplateError("an assistant turn must hold exactly one text part")
        text = texts[0]
        previous = messages[i - 1:i]
        generation = _render(processor, previous, True)[len(_render(processor, previous)):]
        rendered = _render(processor, [message])
        at = rendered.rfind(text)
        tail = rendered[at + len(text):] if at >= 0 else ""
        if at < 0 or not tail.startswith(END_OF_TURN) or not generation:
            raise ChatTemplateError(f"unsupported chat template: an assistant turn does not "
                                    f"end with {END_OF_TURN} or there is no generation prompt")
        chunks += [(generation, False), (text + END_OF_TURN, True),
                   (tail[len(END_OF_TURN):], False)]
    merged: list[tuple[str, bool]] = []
    for text, learned in chunks:
        if not text:
            continue
        if merged and merged[-1][1] == learned and not learned:
            merged[-1] = (merged[-1][0] + text, False)
        else:
            merged.append((text, learned))
    return merged


def encode_conversation(processor: Any, messages: Sequence[dict[str, Any]],
                        image: Any) -> dict[str, Any]:
    """``input_ids`` and ``learned`` (lists), plus ``pixel_values`` / ``image_sizes`` tensors.

    The chunk holding the image placeholder goes through the processor (which expands it to
    the image's token budget); the others through the tokenizer, without special tokens
    added (the template writes them).
    """
    tokenizer = processor.tokenizer
    image_token = getattr(processor, "image_token", "<image>")
    ids: list[int] = []
    learned: list[bool] = []
    out: dict[str, Any] = {}
    for text, is_answer in conversation_chunks(processor, messages):
        if image_token in text:
            if "pixel_values" in out:
                raise ChatTemplateError("only one image per conversation is supported")
            enc = processor(text=[text], images=[image], return_tensors="pt")
            piece = enc["input_ids"][0].tolist()
            out["pixel_values"] = enc["pixel_values"][0]
            out["image_sizes"] = enc["image_sizes"][0]
        else:
            piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        learned += [is_answer] * len(piece)
    out.update(input_ids=ids, learned=learned)
    return out


def mask_labels(input_ids: Sequence[int], learned: Sequence[bool]) -> list[int]:
    """labels[i] = input_ids[i] where learned, -100 elsewhere (the model shifts them)."""
    if len(input_ids) != len(learned):
        raise ValueError("input_ids and learned differ in length")
    return [t if keep else IGNORE_INDEX for t, keep in zip(input_ids, learned)]


@dataclass
class PromptMaskingCollator:
    """Right-pads a batch: ``input_ids`` with ``pad_token_id``, ``attention_mask`` 0 and
    ``labels`` -100 over the padding; ``labels`` -100 over the prompt; ``pixel_values``
    zero-padded to the largest number of anyres patches in the batch (as the image
    processor does) and stacked with ``image_sizes``."""

    pad_token_id: int

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        length = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), length), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(features), length), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.as_tensor(f["input_ids"], dtype=torch.long)
            labels[row, :n] = torch.as_tensor(mask_labels(f["input_ids"], f["learned"]),
                                              dtype=torch.long)
            attention[row, :n] = 1
        batch = {"input_ids": ids, "attention_mask": attention, "labels": labels}
        if any("pixel_values" in f for f in features):
            if not all("pixel_values" in f for f in features):
                raise ValueError("a batch mixes examples with and without an image")
            pixels = [f["pixel_values"] for f in features]
            patches = max(p.shape[0] for p in pixels)
            padded = pixels[0].new_zeros((len(pixels), patches) + tuple(pixels[0].shape[1:]))
            for row, p in enumerate(pixels):
                padded[row, :p.shape[0]] = p
            batch["pixel_values"] = padded
            batch["image_sizes"] = torch.stack([torch.as_tensor(f["image_sizes"])
                                                for f in features])
        return batch


class ConversationDataset:
    """A map-style dataset (``torch.utils.data.Dataset`` protocol) over conversations;
    each item is encoded on access (images read from disk then)."""

    def __init__(self, conversations: Sequence[Any], processor: Any) -> None:
        self.conversations = list(conversations)
        self.processor = processor

    def __len__(self) -> int:
        return len(self.conversations)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from PIL import Image

        conv = self.conversations[index]
        with Image.open(conv.image) as img:
            image = img.convert("RGB")
        return encode_conversation(self.processor, conv.messages, image)

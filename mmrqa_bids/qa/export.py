"""JSONL export of the conversations, in two formats.

Hugging Face chat records (transformers/TRL multimodal format)::

    {"id": ..., "kind": ..., "messages": [{"role": "user", "content": [{"type": "image"},
     {"type": "text", "text": ...}]}, ...], "images": ["/path/mosaic.png"]}

ms-swift (``swift sft --template llava_onevision_hf --dataset train.swift.jsonl``), one
``<image>`` tag in the user text per image::

    {"messages": [{"role": "system", "content": ...}, {"role": "user", "content": "<image>..."},
     {"role": "assistant", "content": ...}], "images": ["/path/mosaic.png"]}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from mmrqa_bids.io import atomic_write_text
from mmrqa_bids.qa.dialogues import Conversation

SWIFT_IMAGE_TAG = "<image>"


def hf_record(conv: Conversation) -> dict[str, Any]:
    return {"id": conv.example_id, "kind": conv.kind, "messages": list(conv.messages),
            "images": [conv.image]}


def _flatten(content: list[dict[str, Any]]) -> str:
    parts = []
    for part in content:
        if part["type"] == "image":
            parts.append(SWIFT_IMAGE_TAG)
        elif part["type"] == "text":
            parts.append(part["text"])
        else:
            raise ValueError(f"unsupported content part {part['type']!r}")
    return "".join(parts)


def swift_record(conv: Conversation) -> dict[str, Any]:
    messages = [{"role": m["role"], "content": _flatten(m["content"])} for m in conv.messages]
    n_tags = sum(m["content"].count(SWIFT_IMAGE_TAG) for m in messages)
    if n_tags != 1:
        raise ValueError(f"{conv.example_id}: expected one image tag, found {n_tags}")
    return {"messages": messages, "images": [conv.image]}


def to_jsonl(records: Iterable[dict[str, Any]]) -> str:
    """One strict JSON object per line: a NaN/Infinity (which trainers' JSON readers reject)
    raises ``ValueError`` here instead of being written."""
    return "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records)


def write_jsonl(conversations: Iterable[Conversation], directory: str | Path,
                stem: str) -> dict[str, Path]:
    """Write ``<stem>.hf.jsonl`` and ``<stem>.swift.jsonl``; returns both paths."""
    conversations = list(conversations)
    directory = Path(directory)
    return {
        "hf": atomic_write_text(directory / f"{stem}.hf.jsonl",
                                to_jsonl(hf_record(c) for c in conversations)),
        "swift": atomic_write_text(directory / f"{stem}.swift.jsonl",
                                   to_jsonl(swift_record(c) for c in conversations)),
    }


def read_hf_jsonl(path: str | Path) -> list[Conversation]:
    """Conversations back from a Hugging Face chat JSONL (one error line naming the file)."""
    path = Path(path)
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out.append(Conversation(rec["id"], rec["kind"], tuple(rec["messages"]),
                                    rec["images"][0]))
        except (ValueError, KeyError, IndexError) as exc:
            raise ValueError(f"{path}:{lineno}: not a chat record ({exc})") from exc
    return out

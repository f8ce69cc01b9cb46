"""An LLM judge of the narratives on the held-out split (MMRQA's GPT-judge protocol).

For every held-out example the judge model reads the reference narrative (from the labels)
and the fine-tuned grader's narrative, and scores *artifact identification* and *diagnostic
relevance* from 0 to 100 (JSON, schema-validated). Each example is judged ``n_calls`` times
(sampling at ``temperature``) and the scores are averaged; the report gives the mean over
examples and the standard deviation between the repeated calls. Without an endpoint
(``--llm-base-url``/``--llm-model``) the judge is skipped with a message, never faked.
"""
from __future__ import annotations

import json
import statistics
from typing import Any, Sequence

from mmrqa_bids.resources import template_env

CRITERIA = ("artifact_identification", "diagnostic_relevance")
SCORE_SCHEMA = {
    "type": "object",
    "properties": {c: {"type": "number", "minimum": 0, "maximum": 100} for c in CRITERIA},
    "required": list(CRITERIA),
}


def parse_scores(text: str | None) -> dict[str, float]:
    import jsonschema

    from mmrqa_bids.openai_endpoint import unfence
    if not text:
        raise ValueError("empty reply")
    value = json.loads(unfence(text))
    jsonschema.validate(value, SCORE_SCHEMA)
    return {c: float(value[c]) for c in CRITERIA}


def judge_messages(item: dict[str, Any]) -> list[dict[str, str]]:
    text = template_env(html=False).get_template("qa/judge.j2").render(**item).strip()
    return [{"role": "system", "content": "You are a strict neuroradiology quality-control "
                                          "reviewer. Reply with JSON only."},
            {"role": "user", "content": text}]


def judge(items: Sequence[dict[str, Any]], base_url: str | None, model: str | None,
          n_calls: int = 3, temperature: float = 0.7, max_attempts: int = 3) -> dict[str, Any]:
    """``items``: dicts with ``label``, ``artifact``, ``reference`` and ``candidate`` texts.

    Returns ``{"skipped": reason}`` without an endpoint, else per-criterion means.
    """
    if not base_url or not model:
        return {"skipped": "no judge endpoint configured (--llm-base-url and --llm-model)"}
    from mmrqa_bids.openai_endpoint import make_client
    client = make_client(base_url, timeout=120.0, max_retries=3)
    per_item, spreads, failures = [], [], 0
    for item in items:
        if not item.get("candidate"):
            failures += 1  # an unparsed answer has no narrative to judge: it scores nothing
            per_item.append({c: 0.0 for c in CRITERIA})
            continue
        calls = []
        for _ in range(n_calls):
            for _attempt in range(max_attempts):
                reply = client.chat.completions.create(model=model, messages=judge_messages(item),
                                                       temperature=temperature)
                try:
                    calls.append(parse_scores(reply.choices[0].message.content))
                    break
                except ValueError:
                    continue
        if not calls:
            raise RuntimeError(f"{base_url}: the judge gave no valid score for "
                               f"{item.get('example_id')}")
        per_item.append({c: statistics.fmean(s[c] for s in calls) for c in CRITERIA})
        spreads.append({c: statistics.pstdev([s[c] for s in calls]) for c in CRITERIA})
    return {
        "model": model, "n_examples": len(items), "n_calls": n_calls,
        "unjudgeable_answers": failures,
        "mean": {c: statistics.fmean(p[c] for p in per_item) if per_item else None
                 for c in CRITERIA},
        "call_std_mean": {c: statistics.fmean(s[c] for s in spreads) if spreads else None
                          for c in CRITERIA},
    }

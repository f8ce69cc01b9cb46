"""The LLM QA source: answers written by a model behind an OpenAI-compatible endpoint.

Any server that speaks the chat-completions API works: a local vLLM, Qwen through
DashScope's compatible mode, ... (``--qa-source llm --llm-base-url URL --llm-model NAME``;
the API key and the client: :mod:`mmrqa_bids.openai_endpoint`).

Every reply is parsed as JSON and validated against
:data:`mmrqa_bids.qa.content.CONTENT_SCHEMA`; an invalid reply is asked again (up to
``max_attempts``), transport errors (429, 5xx, timeouts) are retried with backoff by the
``openai`` client. Valid replies are cached on disk under the SHA-256 of the request
(model, messages, schema, temperature), so re-running the level costs no request. The grade
and artifact type always come from the labels, never from the reply.
"""
from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from mmrqa_bids.io import atomic_write_json
from mmrqa_bids.openai_endpoint import make_client, unfence
from mmrqa_bids.qa.content import CONTENT_SCHEMA, TEXT_FIELDS, QAContent, clean_text
from mmrqa_bids.qa.facts import QAFacts
from mmrqa_bids.resources import template_env


class QAGenerationError(RuntimeError):
    """The endpoint could not be used to write QA answers (message names URL and reason)."""


def request_messages(facts: QAFacts) -> list[dict[str, str]]:
    from mmrqa_bids.grading.prompts import CONTRASTS, metric_lines
    env = template_env(html=False)
    user = env.get_template("qa/llm_request.j2").render(
        contrast=CONTRASTS.get(facts.suffix, facts.suffix), label=facts.label,
        artifact=facts.artifact, severity=facts.severity, notes=facts.notes,
        metrics=metric_lines(facts.metrics, facts.suffix), deviations=list(facts.deviations))
    return [{"role": "system", "content": env.get_template("qa/llm_system.j2").render().strip()},
            {"role": "user", "content": user.strip()}]


def cache_key(model: str, messages: Sequence[dict[str, Any]], temperature: float) -> str:
    """SHA-256 of the canonical JSON of everything that determines the reply."""
    payload = json.dumps({"model": model, "messages": list(messages), "schema": CONTENT_SCHEMA,
                          "temperature": temperature}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def parse_reply(text: str | None) -> dict[str, str]:
    """JSON object of the reply (code fences allowed), validated against the schema.

    Raises ``ValueError`` with the reason when the reply is not usable.
    """
    import jsonschema

    if not text or not text.strip():
        raise ValueError("empty reply")
    try:
        value = json.loads(unfence(text))
    except ValueError as exc:
        raise ValueError(f"reply is not JSON ({exc})") from exc
    try:
        jsonschema.validate(value, CONTENT_SCHEMA)
    except jsonschema.ValidationError as exc:
        raise ValueError(f"reply does not match the schema ({exc.message})") from exc
    return {name: clean_text(value[name]) for name in TEXT_FIELDS}


@dataclass
class LLMSource:
    base_url: str
    model: str
    cache_dir: Path
    temperature: float = 0.2
    max_attempts: int = 3
    timeout_s: float = 120.0
    concurrency: int = 4
    transport_retries: int = 3  # the openai client's own retries on 429/5xx/timeouts
    requests_made: int = field(default=0, init=False)
    cache_hits: int = field(default=0, init=False)
    _client: Any = field(default=None, init=False, repr=False)
    _json_schema_ok: bool = field(default=True, init=False, repr=False)

    @property
    def name(self) -> str:
        return f"llm:{self.model}"

    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.base_url, timeout=self.timeout_s,
                                       max_retries=self.transport_retries)
        return self._client

    def _cache_path(self, key: str) -> Path:
        return Path(self.cache_dir) / key[:2] / f"{key}.json"

    def _ask(self, messages: list[dict[str, str]]) -> str | None:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "messages": messages,
                                  "temperature": self.temperature}
        if self._json_schema_ok:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "mmrqa_qa", "schema": CONTENT_SCHEMA, "strict": True}}
        try:
            self.requests_made += 1
            reply = self.client().chat.completions.create(**kwargs)
        except openai.BadRequestError:
            if not self._json_schema_ok:
                raise
            # Some compatible servers reject structured outputs: ask again, schema in the prompt.
            self._json_schema_ok = False
            return self._ask(messages)
        return reply.choices[0].message.content if reply.choices else None

    def content(self, facts: QAFacts) -> QAContent:
        """The answers for ``facts``, from the cache or the endpoint."""
        import openai

        messages = request_messages(facts)
        key = cache_key(self.model, messages, self.temperature)
        path = self._cache_path(key)
        if path.is_file():
            texts = parse_reply(path.read_text())
            self.cache_hits += 1
        else:
            problems = []
            for attempt in range(self.max_attempts):
                try:
                    texts = parse_reply(self._ask(messages))
                    break
                except ValueError as exc:
                    problems.append(str(exc))
                    time.sleep(min(0.5 * 2 ** attempt, 8.0) if attempt else 0.0)
                except openai.APIConnectionError as exc:
                    raise QAGenerationError(f"{self.base_url}: cannot reach the QA endpoint "
                                            f"({' '.join(str(exc).split())})") from exc
                except openai.APIError as exc:
                    raise QAGenerationError(f"{self.base_url}: the QA endpoint failed "
                                            f"({' '.join(str(exc).split())[:300]})") from exc
            else:
                raise QAGenerationError(
                    f"{self.base_url}: no valid answer for {facts.example_id} after "
                    f"{self.max_attempts} attempts (last: {problems[-1]})")
            atomic_write_json(path, texts)
        return QAContent(label=facts.label, artifact=facts.artifact, source=self.name, **texts)

    def contents(self, facts: Sequence[QAFacts]) -> list[QAContent]:
        """Answers for many examples, at most ``concurrency`` requests in flight."""
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(self.content, facts))

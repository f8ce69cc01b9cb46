"""Grading through any OpenAI-compatible chat-completions server (vLLM, hosted models).

The prompt is the one of the local LLaVA grader (:mod:`mmrqa_bids.grading.prompts`), sent as
chat messages with the mosaic as a base64 ``image_url`` part. vLLM serves LLaVA-OneVision
(with a fine-tuned adapter merged in by ``mmrqa-merge-adapter``); one server answers every
worker of a cluster run.

- API key and client: :mod:`mmrqa_bids.openai_endpoint` (``MMRQA_LLM_API_KEY``, else
  ``OPENAI_API_KEY``; never a command-line flag, never logged or written to provenance).
- Concurrency: at most ``--batch-size`` requests in flight per grading call.
- Timeouts and retries: each request times out after :data:`REQUEST_TIMEOUT_S`; the
  ``openai`` client retries connection errors, timeouts, 408/409/429 and 5xx answers with
  exponential backoff (0.5 s doubling to 8 s, with jitter, or the server's ``Retry-After``)
  up to :data:`MAX_RETRIES` times.
- Failures: an unreachable server, a refused key or an unknown model is a setup error
  (:class:`GraderError`, found by :meth:`OpenAIGrader.check` before any run is processed);
  a request that still fails after its retries, or an answer that does not parse, fails that
  run only (``label=None`` with the reason), never the whole batch.
- Probabilities: requested as ``logprobs`` (top 5); the label distribution is read at the
  token after ``Grade:``. A server that rejects ``logprobs`` is asked again without them and
  the grades then carry no probabilities.
- Constrained answers: each request asks for vLLM's structured outputs,
  ``extra_body={"structured_outputs": {"regex": answer_pattern(...)}}``, a regular expression
  of the whole MMRQA answer format (:func:`answer_pattern`), so a served model can only
  answer in a form :func:`mmrqa_bids.grading.parse.parse_answer` reads. A regex rather than
  a ``json_schema`` (which lets the model emit whitespace until ``max_tokens``: JSON allows
  unbounded whitespace between tokens) and rather than a ``choice`` of the three labels
  (which would drop the narrative). A server that answers the constrained request with HTTP
  400/422 and the same request without the constraint with 200 does not support it (OpenAI's
  hosted API, older vLLM): the grader then asks in free text and parses the answer as
  before. Which mode was used is ``output_constraint`` in the provenance (``regex`` or
  ``none``, with ``output_constraint_note`` saying why when it is ``none``).
"""
from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from mmrqa_bids.grading.base import LABELS, Grade, GraderError, GradeRequest
from mmrqa_bids.grading.llava import adapter_checksum, check_adapter, require_extra
from mmrqa_bids.grading.parse import failed_grade, parse_answer
from mmrqa_bids.grading.prompts import ARTIFACT_TYPES, openai_messages
from mmrqa_bids.openai_endpoint import make_client as _endpoint_client
from mmrqa_bids.settings import Grading

REQUEST_TIMEOUT_S = 300.0
CHECK_TIMEOUT_S = 10.0
MAX_RETRIES = 4
TOP_LOGPROBS = 5
_LABEL_POSITION = re.compile(r"grade[\s*_]*:[\s*_]*$", re.IGNORECASE)
#: Narrative keys of the answer, in the order of the prompt.
SECTION_KEYS = ("Classification", "Artifact", "Analysis")
#: Most artifacts a constrained answer may list.
MAX_ARTIFACTS = 3
#: Per-section length bounds of a constrained answer (characters): below the lower one the
#: token budget cannot hold a useful answer; the upper one keeps the grammar small.
MIN_SECTION_CHARS, MAX_SECTION_CHARS = 16, 1000


def check_base_url(url: str | None) -> str:
    """An ``http(s)://host[:port][/path]`` URL, without credentials; returned without a
    trailing slash."""
    if not url:
        raise GraderError("--grader openai needs --llm-base-url (e.g. http://localhost:8000/v1)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GraderError(f"--llm-base-url {url!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise GraderError("--llm-base-url must not contain credentials; set MMRQA_LLM_API_KEY")
    return url.rstrip("/")


def public_url(url: str) -> str:
    """The URL without query string (it could carry a token) for provenance and messages."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def make_client(base_url: str, timeout: float = REQUEST_TIMEOUT_S,
                max_retries: int = MAX_RETRIES) -> Any:
    """The grader's client: the endpoint's, with the grading timeout and retries."""
    return _endpoint_client(base_url, timeout=timeout, max_retries=max_retries)


def served_models(client: Any, base_url: str) -> list[str]:
    """Model names the server lists; setup errors become one-line :class:`GraderError`."""
    import openai

    try:
        return [m.id for m in client.models.list()]
    except openai.AuthenticationError as exc:
        raise GraderError(f"{public_url(base_url)}: the server refused the API key "
                          f"(HTTP {exc.status_code}); set MMRQA_LLM_API_KEY") from exc
    except openai.APIConnectionError as exc:
        raise GraderError(f"{public_url(base_url)}: LLM server unreachable ({_cause(exc)})") from exc
    except openai.APIStatusError as exc:
        raise GraderError(f"{public_url(base_url)}: listing models failed "
                          f"(HTTP {exc.status_code})") from exc


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    return " ".join(str(inner or exc).split())[:200] or type(exc).__name__


def resolve_model(settings: Grading, available: list[str], base_url: str) -> str:
    """``--llm-model``, which the server must list; without it, the server's only model."""
    if settings.llm_model:
        if available and settings.llm_model not in available:
            raise GraderError(f"{public_url(base_url)} does not serve {settings.llm_model!r} "
                              f"(it serves: {', '.join(available)})")
        return settings.llm_model
    if len(available) == 1:
        return available[0]
    raise GraderError(f"--grader openai needs --llm-model ({public_url(base_url)} serves: "
                      f"{', '.join(available) or 'nothing'})")


def label_probabilities(logprobs: Any) -> dict[str, float] | None:
    """Label distribution at the token after ``Grade:`` from the chat ``logprobs`` content.

    For each label, the probability of the top candidates whose text (stripped,
    lower-case) starts that label; candidates outside the top-k count as 0.
    """
    content = getattr(logprobs, "content", None) or []
    text, found = "", None
    for item in content:
        if _LABEL_POSITION.search(text):
            scores = dict.fromkeys(LABELS, 0.0)
            for cand in getattr(item, "top_logprobs", None) or []:
                word = cand.token.strip().lower()
                for label in LABELS:
                    if word and label.lower().startswith(word):
                        scores[label] += math.exp(cand.logprob)
            if sum(scores.values()) > 0:
                found = scores
        elif found is not None:
            break
        text += item.token
    return found


def answer_pattern(max_new_tokens: int, artifact_types: Sequence[str] = ARTIFACT_TYPES,
                   max_artifacts: int = MAX_ARTIFACTS) -> str | None:
    """Regular expression of the MMRQA answer format that always fits ``max_new_tokens``.

    ``Grade: (Good|Medium|Bad)``, ``Artifacts:`` either ``none`` or up to ``max_artifacts``
    items ``TYPE (0.00-1.00)`` from ``artifact_types`` joined by ``"; "``, then the three
    narrative sections, each one line of printable ASCII (``[ -~]``) of at most ``n``
    characters. Every token a tokenizer emits under the constraint adds at least one
    character (printable ASCII is one byte a character), so an answer of ``C`` characters
    takes at most ``C`` tokens plus the end-of-sequence token; ``n`` is the largest length
    for which the longest possible answer still fits::

        n = min(MAX_SECTION_CHARS, (max_new_tokens - 1 - fixed) // 3)

    where ``fixed`` is the longest answer without its narrative text. A constrained answer
    thus always ends inside the budget and always parses. ``None`` when the budget leaves
    fewer than :data:`MIN_SECTION_CHARS` a section (then the grader asks in free text).
    """
    item = f"({'|'.join(re.escape(a) for a in artifact_types)}) \\((0\\.[0-9]{{2}}|1\\.00)\\)"
    artifacts = f"(none|{item}(; {item}){{0,{max_artifacts - 1}}})"
    longest_item = max(len(a) for a in artifact_types) + len(" (0.00)")
    fixed = (len("Grade: ") + max(len(label) for label in LABELS) + len("\nArtifacts: ")
             + max(len("none"), max_artifacts * longest_item + (max_artifacts - 1) * len("; "))
             + sum(len(f"\n{key}: ") for key in SECTION_KEYS))
    section = min(MAX_SECTION_CHARS, (max_new_tokens - 1 - fixed) // len(SECTION_KEYS))
    if section < MIN_SECTION_CHARS:
        return None
    narrative = "".join(f"\\n{key}: [ -~]{{1,{section}}}" for key in SECTION_KEYS)
    return f"Grade: ({'|'.join(LABELS)})\\nArtifacts: {artifacts}{narrative}"


def check(settings: Grading) -> None:
    """Module-level hook of :func:`mmrqa_bids.grading.check_grader` (probes the server)."""
    OpenAIGrader.check(settings)


@dataclass
class OpenAIGrader:
    base_url: str
    model_id: str
    max_new_tokens: int
    concurrency: int
    client: Any = field(repr=False)
    adapter: str | None = None
    backend: str = "openai"
    use_logprobs: bool = True
    #: The answer regex sent as a structured-output constraint; ``None``: free text.
    pattern: str | None = None
    constraint_note: str | None = None
    _checksum: str | None = None

    def __post_init__(self) -> None:
        if self.pattern is None and self.constraint_note is None:
            self.constraint_note = (f"max_new_tokens={self.max_new_tokens} is too small for "
                                    "the constrained answer format")

    @classmethod
    def check(cls, settings: Grading, probe: bool = True) -> None:
        """Validate the URL and adapter; with ``probe``, list the server's models (one short
        request) to report an unreachable server, a refused key or an unknown model."""
        base_url = check_base_url(settings.llm_base_url)
        check_adapter(settings.adapter)
        require_extra("openai")
        if probe:
            client = make_client(base_url, timeout=CHECK_TIMEOUT_S, max_retries=1)
            resolve_model(settings, served_models(client, base_url), base_url)

    @classmethod
    def from_settings(cls, settings: Grading) -> "OpenAIGrader":
        base_url = check_base_url(settings.llm_base_url)
        check_adapter(settings.adapter)
        probe = make_client(base_url, timeout=CHECK_TIMEOUT_S, max_retries=1)
        model = resolve_model(settings, served_models(probe, base_url), base_url)
        return cls(base_url=base_url, model_id=model, max_new_tokens=settings.max_new_tokens,
                   concurrency=max(settings.batch_size, 1), client=make_client(base_url),
                   adapter=str(settings.adapter) if settings.adapter else None,
                   pattern=answer_pattern(settings.max_new_tokens),
                   _checksum=adapter_checksum(settings.adapter))

    def provenance(self) -> dict[str, Any]:
        """The served model; ``adapter`` is the one declared with ``--adapter`` (the server's
        merged checkpoint should come from it), recorded with its checksum."""
        return {"backend": self.backend, "model_id": self.model_id,
                "base_url": public_url(self.base_url), "adapter": self.adapter,
                "adapter_checksum": self._checksum, "max_new_tokens": self.max_new_tokens,
                "decoding": "temperature 0",
                "output_constraint": "regex" if self.pattern else "none",
                "output_constraint_note": self.constraint_note}

    def grade(self, requests: Sequence[GradeRequest]) -> list[Grade]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._grade_one, requests))

    def _grade_one(self, request: GradeRequest) -> Grade:
        import openai

        try:
            messages = openai_messages(request)
        except GraderError as exc:
            return failed_grade(str(exc))
        try:
            response = self._complete(messages)
        except openai.APIStatusError as exc:
            return failed_grade(f"{public_url(self.base_url)}: HTTP {exc.status_code} for "
                                f"{request.bids_name} after retries ({_status_message(exc)})")
        except openai.APIConnectionError as exc:
            return failed_grade(f"{public_url(self.base_url)}: no answer for {request.bids_name} "
                                f"after {MAX_RETRIES} retries ({_cause(exc)})")
        choices = getattr(response, "choices", None) or []
        text = choices[0].message.content if choices else None
        if not isinstance(text, str) or not text.strip():
            return failed_grade(f"empty answer from {public_url(self.base_url)} for "
                                f"{request.bids_name}", text)
        probs = label_probabilities(getattr(choices[0], "logprobs", None))
        return parse_answer(text.strip(), probs)

    def _complete(self, messages: list[dict[str, Any]]) -> Any:
        """One completion; drops ``logprobs`` and then the output constraint for a server
        that refuses them (a refusal of the constraint is confirmed by the same request
        succeeding without it)."""
        import openai

        kwargs: dict[str, Any] = {"model": self.model_id, "messages": messages,
                                  "max_tokens": self.max_new_tokens, "temperature": 0.0}
        while True:
            pattern, logprobs = self.pattern, self.use_logprobs
            extra: dict[str, Any] = {}
            if logprobs:
                extra.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
            if pattern:
                extra["extra_body"] = {"structured_outputs": {"regex": pattern}}
            try:
                return self.client.chat.completions.create(**kwargs, **extra)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if logprobs and "logprob" in str(exc).lower():
                    self.use_logprobs = False  # this server does not give them; ask without
                    continue
                if not pattern:
                    raise
                response = self._without_constraint(kwargs, extra, exc)
                if response is not None:
                    return response
                raise

    def _without_constraint(self, kwargs: dict[str, Any], extra: dict[str, Any],
                            refusal: Any) -> Any:
        """The same request without the constraint; when it succeeds, the server does not
        support structured outputs: switch to free text for every later request."""
        import openai

        extra = {k: v for k, v in extra.items() if k != "extra_body"}
        try:
            response = self.client.chat.completions.create(**kwargs, **extra)
        except (openai.BadRequestError, openai.UnprocessableEntityError):
            return None  # refused either way: not about the constraint
        if self.pattern is not None:
            self.pattern = None
            self.constraint_note = (f"the server refused structured outputs (HTTP "
                                    f"{refusal.status_code}: {_status_message(refusal)})")
        return response


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return " ".join(str(msg).split())[:200]
    return " ".join(str(getattr(exc, "message", exc)).split())[:200]

"""One OpenAI-compatible chat endpoint, as the openai grader, the QA generator and the judge
use it: the API key, the client, and JSON answers wrapped in code fences.

- API key: ``MMRQA_LLM_API_KEY``, else ``OPENAI_API_KEY`` (the first that is set and not
  empty); never a command-line flag, never logged or written to provenance. With neither,
  the client sends :data:`NO_KEY`: a local vLLM started without ``--api-key`` accepts any
  key, and the ``openai`` client refuses to start without one.
- Client: ``openai.OpenAI`` with the caller's timeout and retry count (the client retries
  connection errors, timeouts, 408/409/429 and 5xx answers with exponential backoff).
- Answers: chat models often wrap a JSON answer in a markdown code fence
  (`````json ... `````); :func:`unfence` takes it out.
"""
from __future__ import annotations

import os
import re
from typing import Any, Mapping

API_KEY_VARIABLES = ("MMRQA_LLM_API_KEY", "OPENAI_API_KEY")
#: The key sent when the environment holds none (documented above).
NO_KEY = "no-key"
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def api_key_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The first non-empty of ``MMRQA_LLM_API_KEY`` and ``OPENAI_API_KEY``, else None."""
    environ = os.environ if environ is None else environ
    for name in API_KEY_VARIABLES:
        if environ.get(name):
            return environ[name]
    return None


def make_client(base_url: str, timeout: float, max_retries: int) -> Any:
    """An ``openai.OpenAI`` client of the endpoint (the ``[llm]`` extra), keyed from the
    environment or with :data:`NO_KEY`."""
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=api_key_from_env() or NO_KEY, timeout=timeout,
                  max_retries=max_retries)


def unfence(text: str) -> str:
    """The inside of a markdown code fence (```` ``` ```` or ```` ```json ````) that wraps the
    whole text; the text itself when there is none."""
    fenced = _FENCE.match(text)
    return fenced.group(1) if fenced else text

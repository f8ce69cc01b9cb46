"""The LLM QA source against a local OpenAI-compatible server: schema validation, retries,
fallback without structured outputs, on-disk cache, clear errors."""
from __future__ import annotations

import pytest

pytest.importorskip("openai")
pytest.importorskip("jsonschema")

from qa_fake_llm import FakeQALLM  # noqa: E402

from mmrqa_bids.qa.facts import QAFacts  # noqa: E402
from mmrqa_bids.qa.llm import (LLMSource, QAGenerationError, cache_key, parse_reply,  # noqa: E402
                               request_messages)

FACTS = [QAFacts("sub-01_T1w", "T1w", "Bad", {"mrqy_SNR1": 4.0}, artifact="motion", severity="severe",
                 origin="simulated"),
         QAFacts("sub-02_T1w", "T1w", "Good", {"mrqy_SNR1": 20.0}, notes="sharp")]


def _source(server, tmp_path, **kw):
    return LLMSource(base_url=server.base_url, model="qwen-test", cache_dir=tmp_path / "cache",
                     concurrency=2, **kw)


def test_parse_reply_validates_against_the_schema():
    good = '{"signal_effects": "a b c d e f g", "usability": "usable for all", ' \
           '"artifact_cause": "none is seen here", "artifact_features": "sharp edges", ' \
           '"downstream": "fine for analysis", "protocol": "no change needed"}'
    assert parse_reply(good)["usability"] == "usable for all"
    assert parse_reply("```json\n" + good + "\n```")["protocol"] == "no change needed"
    with pytest.raises(ValueError, match="not JSON"):
        parse_reply("Sure! {")
    with pytest.raises(ValueError, match="schema"):
        parse_reply('{"signal_effects": "x"}')
    with pytest.raises(ValueError, match="empty"):
        parse_reply("")


def test_request_carries_the_facts_and_the_key_is_content_based():
    user = request_messages(FACTS[0])[1]["content"]
    assert "Grade: Bad" in user and "Artifact: motion (simulated, severe severity)" in user
    assert "mrqy_SNR1 = 4" in user
    assert "Rater's notes: sharp" in request_messages(FACTS[1])[1]["content"]
    a = cache_key("m", request_messages(FACTS[0]), 0.2)
    assert a == cache_key("m", request_messages(FACTS[0]), 0.2)
    assert a != cache_key("m2", request_messages(FACTS[0]), 0.2)
    assert a != cache_key("m", request_messages(FACTS[1]), 0.2)


def test_invalid_replies_are_asked_again_and_valid_ones_cached(tmp_path):
    with FakeQALLM(invalid_first=True) as server:
        source = _source(server, tmp_path)
        contents = source.contents(FACTS)
        assert len(server.requests) == 4  # one invalid + one valid per example
        assert server.requests[0]["response_format"]["type"] == "json_schema"
        assert [c.label for c in contents] == ["Bad", "Good"]
        assert contents[0].artifact == "motion" and contents[0].source == "llm:qwen-test"
        assert contents[0].signal_effects == "LLM signal_effects for a Bad run (motion (simulated, severe severity))."
        cached = _source(server, tmp_path)
        again = cached.contents(FACTS)
        assert again == contents and len(server.requests) == 4  # all from the cache
        assert cached.cache_hits == 2 and cached.requests_made == 0


def test_falls_back_when_structured_outputs_are_rejected(tmp_path):
    with FakeQALLM(reject_schema=True) as server:
        content = _source(server, tmp_path).content(FACTS[1])
        assert content.usability.startswith("LLM usability for a Good run")
        assert "response_format" not in server.requests[-1]


def test_gives_up_with_a_clear_error(tmp_path):
    with FakeQALLM(invalid_first=True) as server:
        with pytest.raises(QAGenerationError, match="no valid answer for sub-01_T1w after 1"):
            _source(server, tmp_path, max_attempts=1).content(FACTS[0])
    source = LLMSource(base_url="http://127.0.0.1:9/v1", model="m", cache_dir=tmp_path / "c",
                       transport_retries=0, timeout_s=5)
    with pytest.raises(QAGenerationError, match="cannot reach the QA endpoint"):
        source.content(FACTS[0])

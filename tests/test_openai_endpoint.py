import pytest

from mmrqa_bids.openai_endpoint import NO_KEY, api_key_from_env, make_client, unfence


def test_key_from_the_environment_in_order():
    assert api_key_from_env({"MMRQA_LLM_API_KEY": "a", "OPENAI_API_KEY": "b"}) == "a"
    assert api_key_from_env({"MMRQA_LLM_API_KEY": "", "OPENAI_API_KEY": "b"}) == "b"
    assert api_key_from_env({}) is None


def test_client_without_a_key_sends_the_documented_placeholder(monkeypatch):
    pytest.importorskip("openai")
    monkeypatch.delenv("MMRQA_LLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client = make_client("http://127.0.0.1:9/v1", timeout=3.0, max_retries=0)
    assert client.api_key == NO_KEY and client.max_retries == 0
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    assert make_client("http://127.0.0.1:9/v1", timeout=3.0, max_retries=0).api_key == "k"


@pytest.mark.parametrize("text", ['{"a": 1}', '```json\n{"a": 1}\n```', '  ```\n{"a": 1}```  '])
def test_unfence(text):
    assert unfence(text) == '{"a": 1}'


def test_unfence_keeps_inner_fences():
    text = 'see ```x``` here'
    assert unfence(text) == text

"""The one redaction step: URLs, settings trees, error text and log lines."""
from __future__ import annotations

import logging

import pytest

from mmrqa_bids.redaction import (MASK, RedactingFilter, check_url_credentials, redact,
                                  redact_text, redact_url, url_credentials)

KEY = "sk-test-0123456789abcdef"


@pytest.mark.parametrize("url, expected", [
    ("http://host:8000/v1?api-key=TOKEN123", f"http://host:8000/v1?api-key={MASK}"),
    ("https://user:pw@host/v1", f"https://{MASK}@host/v1"),
    ("https://host/v1?a=1&b=&token=x#frag", f"https://host/v1?a={MASK}&b={MASK}&token={MASK}"),
    ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
])
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_free_text_hides_urls_headers_named_values_and_known_keys():
    text = (f"HTTP 403: forbidden for Authorization: Bearer {KEY} at "
            f"http://h/v1?api-key=TOKEN123 (x-api-key={KEY[:12]}, \"api_key\": \"abc\")")
    clean = redact_text(text, secrets=[KEY])
    for secret in (KEY, "TOKEN123", KEY[:12], '"abc"'):
        assert secret not in clean
    assert "HTTP 403: forbidden for Authorization:" in clean
    # ordinary prose is left alone
    prose = "Basic image quality is fine; the token budget was tight; bearer of good news"
    assert redact_text(prose, secrets=[]) == prose


def test_environment_keys_are_redacted_wherever_echoed(monkeypatch):
    monkeypatch.setenv("MMRQA_LLM_API_KEY", KEY)
    assert KEY not in redact_text(f"the server said: your key {KEY} is invalid")


def test_settings_tree():
    tree = {"grading": {"llm_base_url": "http://h/v1?api-key=T0K", "api_key": "x",
                        "batch_size": 4, "max_new_tokens": 384},
            "list": ["Bearer abc123def", 3]}
    out = redact(tree, secrets=[])
    assert out["grading"] == {"llm_base_url": f"http://h/v1?api-key={MASK}", "api_key": MASK,
                              "batch_size": 4, "max_new_tokens": 384}
    assert out["list"] == [f"Bearer {MASK}", 3]
    assert tree["grading"]["api_key"] == "x"  # a copy, the input is untouched


def test_credentials_in_a_url_are_refused_with_the_url_redacted():
    assert url_credentials("http://u:p@h/v1") and not url_credentials("http://h/v1?k=1")
    with pytest.raises(ValueError) as err:
        check_url_credentials("http://admin:hunter22@h/v1", "--llm-base-url")
    assert "hunter22" not in str(err.value) and "admin" not in str(err.value)
    check_url_credentials(None, "--llm-base-url")


def test_log_filter_redacts_messages_and_arguments():
    record = logging.LogRecord("mmrqa", logging.INFO, __file__, 1,
                               "calling %s with %s",
                               ("http://h/v1?api-key=SECRET1", "Bearer zz9-secret"),
                               None)
    assert RedactingFilter().filter(record)
    assert "SECRET1" not in record.getMessage() and "zzz" not in record.getMessage()

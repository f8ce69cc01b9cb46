"""The OpenAI-compatible grader against a real local HTTP server serving the tiny model."""
from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from mmrqa_bids.grading.base import GraderError, GradeRequest
from mmrqa_bids.grading.llava import adapter_checksum
from mmrqa_bids.grading.openai_server import (OpenAIGrader, answer_pattern,
                                              check_base_url, label_probabilities)
from mmrqa_bids.grading.parse import format_answer, parse_answer
from mmrqa_bids.settings import Grading
from mmrqa_bids.testing.openai_test_server import OpenAITestServer

KEY = "sk-test-not-a-secret-0123"


@pytest.fixture(scope="module")
def server(tiny_llava_dir):
    with OpenAITestServer(tiny_llava_dir, name="tiny-llava") as srv:
        yield srv


def settings(url: str, **kw) -> Grading:
    return Grading(grader="openai", llm_base_url=url, max_new_tokens=kw.pop("max_new_tokens", 6),
                   **kw)


def req(name: str, mosaic: Path | None) -> GradeRequest:
    return GradeRequest(bids_name=name, suffix="T1w", metrics={"snr1": 12.0}, mosaic=mosaic)


@pytest.mark.parametrize("url, message", [
    (None, "needs --llm-base-url"),
    ("localhost:8000", "not an http(s) URL"),
    ("ftp://host/v1", "not an http(s) URL"),
    ("http://user:pw@host/v1", "must not contain credentials"),
])
def test_bad_urls_are_refused(url, message):
    with pytest.raises(GraderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OpenAIGrader.check(settings(url))
    assert check_base_url("http://h:1/v1/") == "http://h:1/v1"


def test_unreachable_server_is_a_setup_error():
    with pytest.raises(GraderError, match=r"127\.0\.0\.1:9/v1: LLM server unreachable"):
        OpenAIGrader.check(settings("http://127.0.0.1:9/v1"))


def test_unknown_model_lists_what_is_served(server):
    with pytest.raises(GraderError, match=r"does not serve 'other' \(it serves: tiny-llava\)"):
        OpenAIGrader.check(settings(server.base_url, llm_model="other"))
    OpenAIGrader.check(settings(server.base_url))  # the only served model is picked


def test_grades_through_the_server_with_the_same_prompt(server, mosaic_png, tmp_path):
    grader = OpenAIGrader.from_settings(settings(server.base_url, llm_model="tiny-llava",
                                                 batch_size=2))
    before = len(server.requests)
    grades = grader.grade([req("a", mosaic_png), req("b", tmp_path / "gone.png"), req("c", mosaic_png)])
    assert len(grades) == 3
    assert "gone.png: cannot read the mosaic" in grades[1].parse_error
    for grade in (grades[0], grades[2]):  # random weights: recorded, never replaced
        assert grade.label is None and grade.parse_error
    sent = server.requests[before:]
    assert len(sent) == 2  # the unreadable mosaic never reaches the server
    body = sent[0]
    assert body["model"] == "tiny-llava" and body["max_tokens"] == 6 and body["temperature"] == 0
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    assert "structured_outputs" not in body  # 6 tokens cannot hold the constrained format
    image = body["messages"][1]["content"][0]["image_url"]["url"]
    assert base64.b64decode(image.split(",", 1)[1]) == mosaic_png.read_bytes()
    prov = grader.provenance()
    assert prov["backend"] == "openai" and prov["model_id"] == "tiny-llava"
    assert prov["base_url"] == server.base_url
    assert prov["output_constraint"] == "none" and "too small" in prov["output_constraint_note"]


def test_answer_pattern_fits_the_token_budget_and_the_parser():
    import regex

    assert answer_pattern(150) is None  # the format alone takes ~130 characters
    pattern = regex.compile(answer_pattern(400))
    section = int(regex.search(r"Analysis: \[ -~\]\{1,(\d+)\}", pattern.pattern).group(1))
    longest = format_answer("Medium", [{"type": "inhomogeneity", "likelihood": 1.0}] * 3,
                            dict.fromkeys(("classification", "artifact", "analysis"), "x" * section))
    assert pattern.fullmatch(longest) and len(longest) <= 400 - 1  # fits, EOS included
    assert not pattern.fullmatch(longest.replace("x" * section, "x" * (section + 1), 1))
    clean = format_answer("Good", [], {"classification": "Sharp.", "artifact": "None seen.",
                                       "analysis": "Usable."})
    assert pattern.fullmatch(clean) and parse_answer(clean).label == "Good"
    for bad in (clean.replace("Good", "Fine"), clean.replace("none", "gremlins (0.50)"),
                clean.replace("Usable.", "Usable.\nMore"), clean + "\n"):
        assert not pattern.fullmatch(bad)
    assert "[ -~]{1,1000}" in answer_pattern(100_000)  # the grammar stays small


def test_constrained_answers_parse_even_from_random_weights(server, mosaic_png):
    """The test server decodes under the regex as vLLM does: the tiny model's random
    weights then still give a well-formed answer within the token budget."""
    grader = OpenAIGrader.from_settings(settings(server.base_url, max_new_tokens=200,
                                                 batch_size=2))
    before = len(server.requests)
    grades = grader.grade([req("a", mosaic_png), req("b", mosaic_png)])
    body = server.requests[before]
    assert body["structured_outputs"] == {"regex": answer_pattern(200)}
    for grade in grades:
        assert grade.parse_error is None and grade.label in ("Good", "Medium", "Bad")
        assert all(grade.narrative.values())
    assert grader.provenance()["output_constraint"] == "regex"
    assert grader.provenance()["output_constraint_note"] is None


def test_server_without_structured_outputs_gets_free_text(tiny_llava_dir, mosaic_png):
    with OpenAITestServer(tiny_llava_dir, structured_outputs=False) as plain:
        grader = OpenAIGrader.from_settings(settings(plain.base_url, max_new_tokens=200,
                                                     batch_size=1))
        first, second = grader.grade([req("a", mosaic_png), req("b", mosaic_png)])
        refused, retried, later = plain.requests
    assert "structured_outputs" in refused
    assert "structured_outputs" not in retried and "structured_outputs" not in later
    assert retried["logprobs"] is True  # only the constraint was dropped
    for grade in (first, second):  # free text from random weights: recorded as unparsed
        assert grade.raw and grade.label is None and "HTTP" not in grade.parse_error
    prov = grader.provenance()
    assert prov["output_constraint"] == "none"
    assert "refused structured outputs (HTTP 400: Unrecognized request argument" in \
        prov["output_constraint_note"]


def test_test_server_choice_and_bad_constraints(server):
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    ask = dict(model="tiny-llava", max_tokens=8, temperature=0.0,
               messages=[{"role": "user", "content": "Grade?"}])
    answer = client.chat.completions.create(
        **ask, extra_body={"structured_outputs": {"choice": ["Good", "Medium", "Bad"]}})
    assert answer.choices[0].message.content in ("Good", "Medium", "Bad")
    with pytest.raises(openai.BadRequestError, match="unsupported structured output 'json'"):
        client.chat.completions.create(**ask, extra_body={"structured_outputs": {"json": {}}})


def test_retries_with_backoff_then_per_run_failure(tiny_llava_dir, mosaic_png):
    with OpenAITestServer(tiny_llava_dir, fail_first=2) as flaky:
        grader = OpenAIGrader.from_settings(settings(flaky.base_url, batch_size=1))
        grades = grader.grade([req("a", mosaic_png)])
        assert len(flaky.requests) == 3  # two 503s retried, then answered
        assert grades[0].raw is not None and "HTTP" not in (grades[0].parse_error or "")
        flaky.fail_first = 100
        down = grader.grade([req("a", mosaic_png)])[0]
        assert down.label is None and "HTTP 503" in down.parse_error and "overloaded" in down.parse_error


def test_api_key_is_sent_and_never_recorded(tiny_llava_dir, mosaic_png, monkeypatch):
    with OpenAITestServer(tiny_llava_dir, api_key=KEY) as secured:
        monkeypatch.delenv("MMRQA_LLM_API_KEY", raising=False)
        monkeypatch.setenv("OPENAI_API_KEY", "wrong")
        with pytest.raises(GraderError, match="refused the API key"):
            OpenAIGrader.check(settings(secured.base_url))
        monkeypatch.setenv("MMRQA_LLM_API_KEY", KEY)
        grader = OpenAIGrader.from_settings(settings(secured.base_url))
        assert grader.grade([req("a", mosaic_png)])[0].raw is not None
        assert KEY not in json.dumps(grader.provenance()) and KEY not in repr(grader)


def test_label_probabilities_from_logprobs():
    def item(token, top):
        return SimpleNamespace(token=token, logprob=0.0,
                               top_logprobs=[SimpleNamespace(token=t, logprob=lp) for t, lp in top])
    import math
    content = [item("Grade", []), item(":", []),
               item(" Med", [(" Med", math.log(0.6)), (" Good", math.log(0.2)), (" Bad", math.log(0.1)),
                             (" The", math.log(0.1))]),
               item("ium", [])]
    probs = label_probabilities(SimpleNamespace(content=content))
    assert probs == pytest.approx({"Good": 0.2, "Medium": 0.6, "Bad": 0.1})
    assert label_probabilities(SimpleNamespace(content=[item("Hello", [])])) is None
    assert label_probabilities(None) is None


class _BadAnswers(BaseHTTPRequestHandler):
    """A server whose model answers in prose (a hosted model ignoring the format)."""

    def log_message(self, *args):
        return

    def _json(self, doc):
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._json({"object": "list", "data": [{"id": "prose", "object": "model"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._json({"id": "x", "object": "chat.completion", "created": 0, "model": "prose",
                    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                 "message": {"role": "assistant", "content": "Looks fine to me!"}}]})


def test_malformed_answer_is_a_per_run_failure(mosaic_png):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _BadAnswers)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        grade = OpenAIGrader.from_settings(settings(url)).grade([req("a", mosaic_png)])[0]
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert grade.label is None and grade.raw == "Looks fine to me!"
    assert "no 'Grade:' line" in grade.parse_error


@pytest.mark.slow
def test_cli_participant_with_openai(server, small_bids, tiny_adapter_dir, tmp_path):
    from mmrqa_bids.cli.run import main

    out = tmp_path / "out"
    rc = main([str(small_bids), str(out), "participant", "-w", str(tmp_path / "work"),
               "--grader", "openai", "--llm-base-url", server.base_url, "--llm-model", "tiny-llava",
               "--adapter", str(tiny_adapter_dir), "--batch-size", "2", "--max-new-tokens", "6"])
    assert rc == 1  # random weights: both runs graded and recorded as unparsed
    docs = sorted(out.glob("sub-*/anat/*_T1w.json"))
    assert len(docs) == 2
    for path in docs:
        doc = json.loads(path.read_text())
        prov = doc["provenance"]
        assert prov["backend"] == "openai" and prov["model_id"] == "tiny-llava"
        assert prov["adapter_checksum"] == adapter_checksum(tiny_adapter_dir)
        assert doc["grade"]["label"] is None and doc["parse_error"]


def test_cli_unreachable_server_exits_2(small_bids, tmp_path, capsys):
    from mmrqa_bids.cli.run import main

    rc = main([str(small_bids), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "w"),
               "--grader", "openai", "--llm-base-url", "http://127.0.0.1:9/v1", "--llm-model", "m"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mmrqa: error: http://127.0.0.1:9/v1: LLM server unreachable")
    assert "\n" not in err

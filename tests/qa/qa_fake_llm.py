"""A local OpenAI-compatible chat-completions server that plays the QA-writing LLM in tests.

It answers every request with a JSON object of the six QA fields, built from the request's
own facts (the ``Grade:`` and ``Artifact:`` lines), so tests can check that each answer
belongs to its example; judge requests (evaluation) get fixed scores. Failure injection: ``invalid_first`` answers non-JSON to the first
request of each distinct prompt (the source must ask again); ``reject_schema`` answers 400 to
requests with a ``json_schema`` response format (the source must fall back to the prompt).
"""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeQALLM:
    def __init__(self, invalid_first: bool = False, reject_schema: bool = False) -> None:
        self.invalid_first = invalid_first
        self.reject_schema = reject_schema
        self.requests: list[dict] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload = owner.answer(self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "FakeQALLM":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        with self._lock:
            self.requests.append(body)
        if not path.endswith("/chat/completions"):
            return 404, {"error": {"message": "not found"}}
        if self.reject_schema and body.get("response_format", {}).get("type") == "json_schema":
            return 400, {"error": {"message": "response_format json_schema is not supported",
                                   "type": "invalid_request_error"}}
        user = body["messages"][-1]["content"]
        with self._lock:
            first = user not in self._seen
            self._seen.add(user)
        if "Score the candidate" in user:  # the LLM judge of the evaluation
            text = json.dumps({"artifact_identification": 70 if "Grade:" in user else 10,
                               "diagnostic_relevance": 55})
        elif self.invalid_first and first:
            text = "Sure! Here are the answers: signal is fine."
        else:
            grade = re.search(r"^Grade: (\w+)", user, re.M).group(1)
            artifact = re.search(r"^Artifact: (.+)$", user, re.M).group(1)
            fields = ("signal_effects", "usability", "artifact_cause", "artifact_features",
                      "downstream", "protocol")
            text = "```json\n" + json.dumps(
                {f: f"LLM {f} for a {grade} run ({artifact})." for f in fields}) + "\n```"
        return 200, {"id": "x", "object": "chat.completion", "created": 0,
                     "model": body.get("model"),
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": text}}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

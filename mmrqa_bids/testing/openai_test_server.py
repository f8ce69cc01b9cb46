"""A local OpenAI-compatible chat-completions server answering with a LLaVA-OneVision checkpoint.

    python -m mmrqa_bids.testing.openai_test_server MODEL_DIR [--port 8000] [--name tiny-llava]

For tests and demos of ``--grader openai`` without vLLM: it binds 127.0.0.1 only, serves
``GET /v1/models`` and ``POST /v1/chat/completions`` (text and base64 ``image_url`` parts,
``max_tokens``, ``logprobs``/``top_logprobs``) with greedy decoding through transformers,
and can inject the failures the grader must survive: ``fail_first`` answers 503 to the
first N completions (retried by the client), ``api_key`` requires that bearer token.
It is not a production server: one request is generated at a time.

Structured outputs as vLLM takes them, ``"structured_outputs": {"regex": ...}`` or
``{"choice": [...]}``, are honoured by constrained greedy decoding
(:class:`RegexConstraint`: at each step the most likely token that keeps the text a prefix
of a match, end-of-sequence only on a full match). ``structured_outputs=False`` plays a
server without them: such a request is answered 400, as OpenAI's API answers an unknown
argument. Log-probabilities are those of the unconstrained model (vLLM's default
``raw_logprobs``).
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Sequence


class RequestError(Exception):
    """A client error, answered with HTTP ``status`` and an OpenAI-style error body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def decode_image(url: str) -> Any:
    """``data:image/...;base64,...`` -> RGB ``PIL.Image`` (remote URLs are refused)."""
    from PIL import Image, UnidentifiedImageError

    head, _, payload = url.partition(",")
    if not (head.startswith("data:image/") and head.endswith(";base64")):
        raise RequestError(400, "image_url must be a base64 data URL")
    try:
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=True))) as img:
            return img.convert("RGB")
    except (ValueError, UnidentifiedImageError) as exc:
        raise RequestError(400, f"image_url is not a decodable image ({exc})") from exc


def to_hf_messages(messages: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    """OpenAI chat messages -> (transformers multimodal messages, images in order)."""
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty list")
    out, images = [], []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise RequestError(400, "each message needs a role of system, user or assistant")
        content = message.get("content")
        if isinstance(content, str):
            parts = [{"type": "text", "text": content}]
        elif isinstance(content, list):
            parts = []
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    parts.append({"type": "text", "text": str(part.get("text", ""))})
                elif kind == "image_url":
                    images.append(decode_image(str((part.get("image_url") or {}).get("url", ""))))
                    parts.append({"type": "image"})
                else:
                    raise RequestError(400, f"unsupported content part {kind!r}")
        else:
            raise RequestError(400, "message content must be a string or a list of parts")
        out.append({"role": message["role"], "content": parts})
    return out, images


def constraint_pattern(spec: Any) -> str:
    """The regular expression of a ``structured_outputs`` object (``regex`` or ``choice``)."""
    import regex

    if not isinstance(spec, dict) or len(spec) != 1:
        raise RequestError(400, "structured_outputs must hold exactly one of regex, choice")
    (kind, value), = spec.items()
    if kind == "choice" and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "|".join(regex.escape(v) for v in value)
    if kind == "regex" and isinstance(value, str) and value:
        try:
            regex.compile(value)
        except regex.error as exc:
            raise RequestError(400, f"structured_outputs.regex does not compile ({exc})") from exc
        return value
    raise RequestError(400, f"unsupported structured output {kind!r} (this server takes regex "
                            "or choice)")


class RegexConstraint:
    """A greedy logits processor: keeps only the highest-scoring token whose text extends the
    generated text to a prefix of a full match of ``pattern`` (``regex`` partial matching);
    an end-of-sequence token only once the text matches in full."""

    def __init__(self, pattern: str, tokenizer: Any, prompt_len: int):
        import regex

        self.pattern = regex.compile(pattern)
        self.prompt_len = prompt_len
        self.pieces = [tokenizer.decode([i]) for i in range(len(tokenizer))]
        self.stop = {tokenizer.eos_token_id} - {None}
        self.special = set(tokenizer.all_special_ids)

    def allowed(self, text: str, token_id: int) -> bool:
        if token_id in self.stop:
            return self.pattern.fullmatch(text) is not None
        if token_id in self.special or token_id >= len(self.pieces):
            return False
        return self.pattern.fullmatch(text + self.pieces[token_id], partial=True) is not None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for row in range(scores.shape[0]):
            text = "".join(self.pieces[i] for i in input_ids[row, self.prompt_len:].tolist())
            order = torch.argsort(scores[row], descending=True).tolist()
            chosen = next((i for i in order if self.allowed(text, i)), None)
            if chosen is None:
                raise RequestError(400, f"no token continues {text[-40:]!r} under the constraint")
            keep = scores[row, chosen].clone()
            scores[row] = float("-inf")
            scores[row, chosen] = keep
        return scores


class TinyChatModel:
    """Greedy generation with per-token top log-probabilities, one request at a time."""

    def __init__(self, model_dir: str | Path):
        from mmrqa_bids.grading.llava import load_model

        self.model, self.processor, self.device = load_model(str(model_dir), device="cpu",
                                                             dtype="float32")
        self.lock = threading.Lock()

    def complete(self, messages: list[dict[str, Any]], images: list[Any], max_tokens: int,
                 top_logprobs: int, pattern: str | None = None
                 ) -> tuple[str, list[dict[str, Any]], str]:
        import torch
        from transformers import LogitsProcessorList

        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True,
                                                    tokenize=False)
        tok = self.processor.tokenizer
        with self.lock, torch.inference_mode():
            inputs = self.processor(images=images or None, text=[prompt], return_tensors="pt")
            processors = LogitsProcessorList()
            if pattern is not None:
                processors.append(RegexConstraint(pattern, tok, inputs["input_ids"].shape[1]))
            out = self.model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False,
                                      output_logits=True, return_dict_in_generate=True,
                                      pad_token_id=tok.pad_token_id, logits_processor=processors)
        new = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
        special = set(tok.all_special_ids)
        items = []
        for token_id, logits in zip(new, out.logits):
            if token_id in special:
                break
            logp = torch.log_softmax(logits[0].float(), dim=-1)
            top = torch.topk(logp, k=max(top_logprobs, 1))
            items.append({
                "token": tok.decode([token_id]), "logprob": float(logp[token_id]),
                "top_logprobs": [{"token": tok.decode([int(i)]), "logprob": float(v)}
                                 for v, i in zip(top.values[:top_logprobs], top.indices[:top_logprobs])],
            })
        finish = "stop" if len(new) < max_tokens or (new and new[-1] in special) else "length"
        return "".join(i["token"] for i in items), items, finish


class OpenAITestServer:
    """``with OpenAITestServer(model_dir) as server: ... server.base_url ...``"""

    def __init__(self, model_dir: str | Path, name: str = "tiny-llava", port: int = 0,
                 api_key: str | None = None, fail_first: int = 0,
                 structured_outputs: bool = True):
        self.name = name
        self.structured_outputs = structured_outputs
        self.api_key = api_key
        self.fail_first = fail_first
        self.requests: list[dict[str, Any]] = []  # every completion request body, for tests
        self.chat = TinyChatModel(model_dir)
        self._counter = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "OpenAITestServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "OpenAITestServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _inject_failure(self) -> bool:
        with self._counter:
            if self.fail_first > 0:
                self.fail_first -= 1
                return True
        return False

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("model") != self.name:
            raise RequestError(404, f"The model `{body.get('model')}` does not exist.")
        messages, images = to_hf_messages(body.get("messages"))
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        want_logprobs = bool(body.get("logprobs"))
        top = int(body.get("top_logprobs") or 0) if want_logprobs else 0
        pattern = None
        if "structured_outputs" in body:
            if not self.structured_outputs:
                raise RequestError(400, "Unrecognized request argument supplied: "
                                        "structured_outputs")
            pattern = constraint_pattern(body["structured_outputs"])
        text, items, finish = self.chat.complete(messages, images, max_tokens, top, pattern)
        return {
            "id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion",
            "created": int(time.time()), "model": self.name,
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": text},
                         "logprobs": {"content": items} if want_logprobs else None}],
            "usage": {"prompt_tokens": 0, "completion_tokens": len(items),
                      "total_tokens": len(items)},
        }

    def _handler(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                return

            def _send(self, status: int, doc: dict[str, Any], headers: dict[str, str] | None = None):
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str, headers: dict[str, str] | None = None):
                self._send(status, {"error": {"message": message, "type": "error", "code": status}},
                           headers)

            def _authorised(self) -> bool:
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._error(401, "Unauthorized")
                    return False
                return True

            def do_GET(self):
                if not self._authorised():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [
                        {"id": server.name, "object": "model", "owned_by": "mmrqa-test"}]})
                else:
                    self._error(404, f"no route {self.path}")

            def do_POST(self):
                if not self._authorised():
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._error(404, f"no route {self.path}")
                    return
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                except ValueError:
                    self._error(400, "request body is not JSON")
                    return
                server.requests.append(body)
                if server._inject_failure():
                    self._error(503, "overloaded (injected)", {"retry-after-ms": "20"})
                    return
                try:
                    self._send(200, server._completion(body))
                except RequestError as exc:
                    self._error(exc.status, str(exc))

        return Handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", default="tiny-llava", help="served model name")
    parser.add_argument("--no-structured-outputs", action="store_true",
                        help="answer requests with structured_outputs by HTTP 400")
    args = parser.parse_args(argv)
    server = OpenAITestServer(args.model_dir, name=args.name, port=args.port,
                              structured_outputs=not args.no_structured_outputs)
    print(f"serving {args.model_dir} as {args.name!r} at {server.base_url}", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

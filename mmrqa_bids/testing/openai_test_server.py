"""A local OpenAI-compatible chat-completions server answering with a LLaVA-OneVision checkpoint.

    python -m mmrqa_bids.testing.openai_test_server MODEL_DIR [--port 8000] [--name tiny-llava]

For tests and demos of ``--grader openai`` without vLLM: it binds 127.0.0.1 only, serves
``GET /v1/models`` and ``POST /v1/chat/completions`` (text and base64 ``image_url`` parts,
``max_tokens``, ``logprobs``/``top_logprobs``) with greedy decoding through transformers,
and can inject the failures the grader must survive: ``fail_first`` answers 503 to the
first N completions (retried by the client), ``api_key`` requires that bearer token.
It is not a production server: one request is generated at a time.
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


class TinyChatModel:
    """Greedy generation with per-token top log-probabilities, one request at a time."""

    def __init__(self, model_dir: str | Path):
        from mmrqa_bids.grading.llava import load_model

        self.model, self.processor, self.device = load_model(str(model_dir), device="cpu",
                                                             dtype="float32")
        self.lock = threading.Lock()

    def complete(self, messages: list[dict[str, Any]], images: list[Any], max_tokens: int,
                 top_logprobs: int) -> tuple[str, list[dict[str, Any]], str]:
        import torch

        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True,
                                                    tokenize=False)
        tok = self.processor.tokenizer
        with self.lock, torch.inference_mode():
            inputs = self.processor(images=images or None, text=[prompt], return_tensors="pt")
            out = self.model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False,
                                      output_logits=True, return_dict_in_generate=True,
                                      pad_token_id=tok.pad_token_id)
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
                 api_key: str | None = None, fail_first: int = 0):
        self.name = name
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
        text, items, finish = self.chat.complete(messages, images, max_tokens, top)
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
    args = parser.parse_args(argv)
    server = OpenAITestServer(args.model_dir, name=args.name, port=args.port)
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

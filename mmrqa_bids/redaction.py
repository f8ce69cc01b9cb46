"""One redaction step for everything mmrqa records: URLs, settings dumps, error text, logs.

What is hidden (replaced by :data:`MASK`):

- in a URL: the user-info (``user:password@``) and the value of every query parameter
  (``?api-key=TOKEN`` -> ``?api-key=***``); the fragment is dropped;
- in free text: the value after ``Authorization:`` and ``Bearer`` (a token with a digit or
  punctuation), and the value of any
  ``api-key``/``api_key``/``apikey``/``x-api-key``/``token``/``access_token``/``password``/
  ``secret`` written as ``name=value``, ``name: value`` or ``"name": "value"``;
- in a settings tree or a document: the value of every key with such a name, and every
  string run through the text rules;
- anywhere: the literal API keys of the environment (:data:`SECRET_VARIABLES`), however they
  were echoed (a server error body quoting the request's headers).

Credentials written into a URL are not redacted but refused (:func:`check_url_credentials`),
before anything is written: the user should move them to ``MMRQA_LLM_API_KEY``.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit, urlunsplit

MASK = "***"
#: Environment variables whose values are secrets wherever they appear.
SECRET_VARIABLES = ("MMRQA_LLM_API_KEY", "OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
#: Key names whose values are secrets (compared lower-case, ``-`` and ``_`` alike).
SECRET_KEYS = frozenset({"apikey", "api_key", "xapikey", "x_api_key", "authorization",
                         "token", "access_token", "auth_token", "password", "passwd",
                         "secret", "client_secret"})
#: Shorter environment values are not replaced in free text (they would match everywhere).
MIN_SECRET_CHARS = 6

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>`]+")
_AUTH_HEADER = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?)"
                          r"([^\s\"',;}]+)")
# a bearer credential: 6+ token characters with a digit or punctuation (not "bearer of")
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])"
                     r"([A-Za-z0-9._~+/=-]{6,})")
_NAMED = re.compile(
    r"(?i)([\"']?(?:x[-_])?(?:api[-_]?key|access[-_]token|auth[-_]token|token|password|passwd|"
    r"client[-_]secret|secret)[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}]+)")


def _is_secret_key(name: str) -> bool:
    norm = name.lower().replace("-", "_")
    return norm in SECRET_KEYS or norm.replace("_", "") in SECRET_KEYS


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path?name=***`` (user-info and query values hidden)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    netloc = (f"{MASK}@" if parts.username or parts.password else "") + \
        (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    query = "&".join(f"{k}={MASK}" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    if parts.query and not query:
        query = MASK
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def environment_secrets(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Values of :data:`SECRET_VARIABLES` long enough to be searched for in text."""
    environ = os.environ if environ is None else environ
    return tuple(v for v in (environ.get(n, "") for n in SECRET_VARIABLES)
                 if len(v) >= MIN_SECRET_CHARS)


def redact_text(text: str, secrets: Iterable[str] | None = None) -> str:
    """Free text with URLs (:func:`redact_url`), authorization and api-key values and the
    literal ``secrets`` (default: :func:`environment_secrets`) hidden."""
    for secret in environment_secrets() if secrets is None else secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{MASK}", text)
    return _NAMED.sub(lambda m: f"{m.group(1)}{MASK}", text)


def redact(value: Any, secrets: Iterable[str] | None = None) -> Any:
    """A copy of a JSON-like tree (dicts, lists, strings, numbers) with every string through
    :func:`redact_text` and the value of every secret-named key replaced by :data:`MASK`."""
    secrets = tuple(environment_secrets() if secrets is None else secrets)
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {k: (MASK if isinstance(k, str) and _is_secret_key(k) and v not in (None, "")
                    else redact(v, secrets)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, secrets) for v in value)
    return value


def url_credentials(url: str | None) -> bool:
    """Whether ``url`` carries a user name or password (``scheme://user:pass@host``)."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.username or parts.password)


def check_url_credentials(url: str | None, option: str) -> None:
    """Raise ``ValueError`` (one line, URL redacted) for a URL with credentials."""
    if url_credentials(url):
        raise ValueError(f"{option} {redact_url(url)} must not contain credentials; "
                         "put the key in MMRQA_LLM_API_KEY instead")


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's final message (and drops its args)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        record.msg, record.args = redact_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (the root logger by
    default) and to the logger itself; idempotent."""
    logger = logger or logging.getLogger()
    filt = next((f for f in logger.filters if isinstance(f, RedactingFilter)), None)
    if filt is None:
        filt = RedactingFilter()
        logger.addFilter(filt)
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(filt)
    return filt

"""Locating the templates shipped with mmrqa (in the wheel, or in a source checkout)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

_PACKAGE = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """``mmrqa_bids/templates`` inside a wheel; ``templates/`` beside the package in a checkout."""
    for candidate in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("mmrqa templates not found (broken installation)")


def data_dir() -> Path:
    return _PACKAGE / "data"


@lru_cache(maxsize=2)
def template_env(html: bool) -> jinja2.Environment:
    """HTML templates autoescape everything (narratives are model output, names user input);
    text templates (narratives, prompts) do not, and are escaped when placed in HTML."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )

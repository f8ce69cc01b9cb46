"""The individual (per-run) HTML report: one self-contained file, images embedded."""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from mmrqa_bids.io import atomic_write_text
from mmrqa_bids.reports.mosaics import VIEWS
from mmrqa_bids.resources import template_env

GRADE_COLOURS = {"Good": "#1a7f37", "Medium": "#b7791f", "Bad": "#c53030", None: "#555"}


def _data_uri(path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render_individual(document: dict[str, Any], mosaic_paths: dict[str, str],
                      percentiles: dict[str, float] | None = None) -> str:
    images = {name: _data_uri(p) for name, p in mosaic_paths.items() if name != "mllm"}
    return template_env(html=True).get_template("report/individual.html.j2").render(
        doc=document,
        images=images,
        views=[v for v in VIEWS if v in images],
        colour=GRADE_COLOURS.get(document["grade"]["label"], "#555"),
        percentiles=percentiles or {},
    )


def write_individual(path: Path, document: dict[str, Any], mosaic_paths: dict[str, str],
                     percentiles: dict[str, float] | None = None) -> Path:
    return atomic_write_text(path, render_individual(document, mosaic_paths, percentiles))

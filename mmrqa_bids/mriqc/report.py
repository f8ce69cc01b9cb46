"""The group HTML report of ``mmrqa-mriqc`` (jinja2, autoescape on)."""
from __future__ import annotations

from pathlib import Path

from mmrqa_bids import __version__
from mmrqa_bids.io import atomic_write_text
from mmrqa_bids.mriqc.grade import GradedTable
from mmrqa_bids.mriqc.model import IqmModel
from mmrqa_bids.resources import template_env


def render_report(table: GradedTable, model: IqmModel, source: str) -> str:
    rows = sorted(table.rows, key=lambda r: (-r["p_bad"], r["bids_name"]))
    return template_env(html=True).get_template("mriqc/group.html.j2").render(
        table=table, rows=rows, counts=table.counts(), model=model, source=source,
        version=__version__, card=model.card)


def write_report(path: Path, table: GradedTable, model: IqmModel, source: str) -> Path:
    return atomic_write_text(path, render_report(table, model, source))

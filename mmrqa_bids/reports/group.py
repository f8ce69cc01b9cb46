"""The group HTML report for one suffix."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from mmrqa_bids.grading.base import LABELS
from mmrqa_bids.io import atomic_write_text
from mmrqa_bids.resources import template_env


def render_group(suffix: str, rows: list[dict[str, Any]]) -> str:
    counts = Counter(r["grade"] for r in rows)
    ordered = sorted(rows, key=lambda r: (r["status"] != "failed",
                                          r["confidence"] if isinstance(r["confidence"], float) else 0.0))
    metric_names = sorted({k for r in rows for k, v in r.items() if isinstance(v, float)}
                          - {"p_good", "p_medium", "p_bad", "confidence"})
    return template_env(html=True).get_template("report/group.html.j2").render(
        suffix=suffix, rows=ordered, counts={**{l: counts.get(l, 0) for l in LABELS},
                                             "failed": sum(r["status"] == "failed" for r in rows)},
        metric_names=metric_names)


def write_group_report(output_dir: Path, suffix: str, rows: list[dict[str, Any]]) -> Path:
    return atomic_write_text(output_dir / f"group_{suffix}.html", render_group(suffix, rows))

"""The run record: the small JSON document that travels between workflow nodes.

Each node reads the record, adds its part and writes a new one in its own working
directory, so Nipype's caching (``--resume``) and crash files work as usual. A run that
failed validation carries ``error`` and every later node passes it through untouched, so
one bad file never stops the others.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmrqa_bids.io import atomic_write_json


def read_record(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def write_record(record: dict[str, Any], directory: str | Path, name: str = "record.json") -> str:
    path = Path(directory) / name
    atomic_write_json(path, record)
    return str(path.resolve())


def failed(record: dict[str, Any]) -> bool:
    return bool(record.get("error"))


def fail_record(record: dict[str, Any], stage: str, reason: str,
                trace: str | None = None) -> dict[str, Any]:
    """Mark ``record`` failed at ``stage`` with a one-line ``reason`` (and the traceback of
    an unexpected error, which goes to the run's crash file, not its failure record)."""
    record["error"] = " ".join(reason.split())[:500]
    record["stage"] = stage
    if trace:
        record["traceback"] = trace
    return record

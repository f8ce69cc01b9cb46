"""Stored cohort references, and which one a new run belongs to (``participant --reference``).

The group level stores each graded cohort's reference (``OUT/cohorts/<suffix>_<id>.json``,
:meth:`~mmrqa_bids.cohorts.reference.CohortReference.to_dict`). A study that scans every
week grades each new run against them at once: a run matches the reference whose protocol
equals its own (the same key :func:`~mmrqa_bids.cohorts.grouping.cohort_protocol` computes),
or, for references built with ``--cohort-by suffix``, the one of its suffix. References built
from a cohort file cannot be matched by protocol, and say so.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmrqa_bids.cohorts.grouping import CohortError, describe_protocol, protocol_difference


def reference_files(path: Path, found: Sequence[Path] | None = None) -> list[Path]:
    """The reference files named by ``--reference``: the file itself, or those an output
    folder holds (``found``: what its derivatives layout lists)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CohortError(f"{path}: --reference is neither a cohort reference file nor a folder")
    files = list(found or [])
    if not files:
        raise CohortError(f"{path}: no cohort references found (run the group level on that "
                          "output folder first, with cohorts of enough runs)")
    return files


def load_references(files: Sequence[Path]) -> list[Any]:
    """Every :class:`CohortReference` in ``files``; a file that is not one is an error that
    names it."""
    from mmrqa_bids.cohorts.reference import CohortReference

    refs = []
    for path in files:
        try:
            data = json.loads(Path(path).read_text())
            refs.append(CohortReference.from_dict(data))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CohortError(f"{path}: not a usable cohort reference "
                              f"({' '.join(str(exc).split())[:200]})") from exc
    return refs


def _is_suffix_only(protocol: Mapping[str, Any]) -> bool:
    return set(protocol) == {"suffix"}


def match_reference(protocol: Mapping[str, Any], refs: Sequence[Any], run_name: str) -> Any:
    """The reference of ``protocol``'s cohort: equal protocol first, else a suffix-only
    reference of the same suffix. Raises :class:`CohortError` (one line) when none matches,
    naming the closest reference and the fields that differ."""
    exact = [r for r in refs if dict(r.protocol) == dict(protocol)]
    if exact:
        return exact[0]
    by_suffix = [r for r in refs
                 if _is_suffix_only(r.protocol) and r.protocol["suffix"] == protocol["suffix"]]
    if by_suffix:
        return by_suffix[0]
    same = [r for r in refs if r.protocol.get("suffix") == protocol.get("suffix")
            and "label" not in r.protocol]
    if not same:
        raise CohortError(f"{run_name}: no stored cohort reference of suffix "
                          f"{protocol.get('suffix')} matches its protocol "
                          f"({describe_protocol(protocol)})")
    closest = min(same, key=lambda r: len(protocol_difference(r.protocol, protocol)))
    diff = protocol_difference(closest.protocol, protocol)
    raise CohortError(f"{run_name}: no stored cohort reference matches its protocol "
                      f"({describe_protocol(protocol)}); the closest, {closest.cohort_id}, "
                      f"differs in {', '.join(diff)}")

"""Expert ratings TSV: read by ``train --labels`` and ``mmrqa-evaluate``, written by the
group report's rating widget.

Columns: ``participant_id``, ``session_id``, ``run_id``, ``suffix`` (or ``bids_name``),
``rating`` (Good/Medium/Bad, or MRIQC's 1/0/-1 = accept/doubtful/exclude), optional
``artifact`` and ``notes``. Ids with or without their prefix; ``n/a`` or empty where an
entity is absent.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from mmrqa_bids.bids import parse_entities, same_label, strip_prefix

RATING_ALIASES = {
    "good": "Good", "accept": "Good", "1": "Good", "1.0": "Good", "+1": "Good",
    "medium": "Medium", "doubtful": "Medium", "0": "Medium", "0.0": "Medium",
    "bad": "Bad", "exclude": "Bad", "-1": "Bad", "-1.0": "Bad",
}
COLUMNS = ("participant_id", "session_id", "run_id", "suffix", "bids_name", "rating",
           "artifact", "notes")
MISSING = {"", "n/a", "na", "nan", "none"}
#: How a grade is written to the ratings TSV: the grade's name, or MRIQC's rating convention
#: (1 accept, 0 doubtful, -1 exclude); :func:`read_ratings` reads both back.
RATING_SCALES: dict[str, dict[str, str]] = {
    "grades": {"Good": "Good", "Medium": "Medium", "Bad": "Bad"},
    "mriqc": {"Good": "1", "Medium": "0", "Bad": "-1"},
}


class RatingsError(ValueError):
    """A ratings file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Rating:
    participant_id: str  # without "sub-"
    session_id: str | None
    run_id: str | None
    suffix: str | None
    bids_name: str | None
    rating: str  # Good / Medium / Bad
    artifact: str | None = None
    notes: str | None = None

    def matches(self, bids_name: str) -> bool:
        """Does this rating describe the run called ``bids_name``?"""
        if self.bids_name:
            return self.bids_name == bids_name
        ents = parse_entities(bids_name + ".nii.gz")
        suffix = bids_name.rsplit("_", 1)[-1]
        if ents.get("subject") != self.participant_id:
            return False
        if self.suffix and self.suffix != suffix:
            return False
        if (self.session_id or None) != (ents.get("session") or None):
            return False
        if self.run_id is None:
            return "run" not in ents
        return "run" in ents and same_label(ents["run"], self.run_id)


def normalise_rating(value: str) -> str | None:
    return RATING_ALIASES.get(str(value).strip().lower())


def _cell(row: dict[str, str], key: str) -> str | None:
    value = (row.get(key) or "").strip()
    return None if value.lower() in MISSING else value


def read_ratings(path: str | Path) -> list[Rating]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RatingsError(f"{path}: cannot read ratings ({exc.strerror or exc})") from exc
    reader = csv.DictReader(text.splitlines(), delimiter="\t")
    fields = set(reader.fieldnames or [])
    if "rating" not in fields or not ({"participant_id", "bids_name"} & fields):
        raise RatingsError(f"{path}: ratings TSV needs a 'rating' column and "
                           f"'participant_id' or 'bids_name' (found: {', '.join(sorted(fields))})")
    out = []
    for lineno, row in enumerate(reader, start=2):
        rating = normalise_rating(row.get("rating") or "")
        if rating is None:
            raise RatingsError(f"{path}:{lineno}: rating {row.get('rating')!r} is not "
                               f"Good/Medium/Bad or 1/0/-1")
        bids_name = _cell(row, "bids_name")
        if bids_name:
            bids_name = bids_name.removesuffix(".nii.gz").removesuffix(".nii")
        participant = _cell(row, "participant_id")
        if participant is None and bids_name:
            participant = parse_entities(bids_name + ".nii.gz").get("subject")
        if participant is None:
            raise RatingsError(f"{path}:{lineno}: no participant_id")
        session, run = _cell(row, "session_id"), _cell(row, "run_id")
        out.append(Rating(
            participant_id=strip_prefix(participant, "sub"),
            session_id=strip_prefix(session, "ses") if session else None,
            run_id=strip_prefix(run, "run") if run else None,
            suffix=_cell(row, "suffix"),
            bids_name=bids_name,
            rating=rating,
            artifact=_cell(row, "artifact"),
            notes=_cell(row, "notes"),
        ))
    return out


def match_ratings(ratings: Iterable[Rating], bids_names: Iterable[str]) -> dict[str, str]:
    """bids_name -> rating for every run that has exactly one rating (last one wins)."""
    ratings = list(ratings)
    out = {}
    for name in bids_names:
        hits = [r for r in ratings if r.matches(name)]
        if hits:
            out[name] = hits[-1].rating
    return out


def ratings_tsv(rows: Iterable[dict[str, str]], scale: str = "grades") -> str:
    """Serialise ratings (dicts with the COLUMNS keys, ``rating`` a grade name) as the TSV
    that ``read_ratings`` reads, the ratings written on ``scale`` (:data:`RATING_SCALES`)."""
    if scale not in RATING_SCALES:
        raise ValueError(f"unknown rating scale {scale!r} (one of {', '.join(RATING_SCALES)})")
    lines = ["\t".join(COLUMNS)]
    written = RATING_SCALES[scale]
    for row in rows:
        row = {**row, "rating": written.get(row.get("rating") or "", row.get("rating"))}
        lines.append("\t".join((row.get(c) or "n/a").replace("\t", " ") for c in COLUMNS))
    return "\n".join(lines) + "\n"

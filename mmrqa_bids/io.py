"""Loading and validating NIfTI runs, and atomic writes of every output file."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any

import nibabel as nb
import numpy as np


class RunInputError(Exception):
    """A run whose image cannot be assessed; the message names the problem (one line)."""


def load_image(path: str | os.PathLike, suffix: str) -> tuple[nb.Nifti1Image, np.ndarray]:
    """Load a run and check that it can be assessed.

    Returns the image (canonical RAS orientation, so slice mosaics and axes mean the
    same for every input) and its data as float32. 3-D for anatomical suffixes, 4-D for bold
    (a 4-D anatomical with a single volume is squeezed).
    """
    path = Path(path)
    try:
        img = nb.load(str(path))
        img = nb.as_closest_canonical(img)
        data = np.asarray(img.dataobj, dtype=np.float32)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, nb.filebasedimages.ImageFileError,
            ValueError) as exc:
        raise RunInputError(f"cannot read image ({type(exc).__name__}: {_one_line(exc)})") from exc
    want = 4 if suffix == "bold" else 3
    if data.ndim == 4 and want == 3 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != want:
        raise RunInputError(
            f"expected a {want}-D image for {suffix}, got {data.ndim}-D with shape {data.shape}")
    if want == 4 and data.shape[3] < 3:
        raise RunInputError(f"a bold run needs at least 3 volumes, got {data.shape[3]}")
    if min(data.shape[:3]) < 8:
        raise RunInputError(f"image too small to assess: shape {data.shape}")
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        raise RunInputError(f"image contains {bad} NaN/Inf voxels")
    if not np.any(data):
        raise RunInputError("image is all zeros")
    if float(data.max()) == float(data.min()):
        raise RunInputError("image is constant")
    return img, data


def file_checksum(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"{algorithm}:{digest.hexdigest()}"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write to a temporary file beside ``path`` and rename it into place.

    A crash mid-write leaves the previous file intact, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]

"""Loading and validating NIfTI runs, and atomic writes of every output file."""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import math
import os
import re
import socket
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import nibabel as nb
import numpy as np

#: Most bytes a deflate stream can expand to per compressed byte (zlib's technical details:
#: 1032:1), an upper bound on what a ``.nii.gz`` can hold whatever its header says.
DEFLATE_MAX_RATIO = 1032
#: Peak bytes of memory per voxel while one run is loaded, measured and rendered
#: (tracemalloc over :func:`read_image` + ``metrics.measure`` + the mosaics: 14.9 for a
#: 221x257x213 T1w, 10.5 for an 88x103x85x60 bold; rounded up). An image is refused before
#: any voxel is read when ``voxels x WORKING_BYTES_PER_VOXEL`` exceeds the memory limit.
WORKING_BYTES_PER_VOXEL = 16
#: Largest |intensity| measured as is. Above it, float32 sums of squares over a volume can
#: overflow (3.4e38: 1e7 voxels of 6e15 already do), so the data are first divided by a
#: power of two (exact: ratios, and so every contrast metric, are unchanged) that brings the
#: peak to at most :data:`RESCALED_PEAK`, a range every metric handles (whole-number data
#: are binned per grey level by the MRQy metrics, so the peak must stay small).
MAX_SAFE_INTENSITY = 2.0 ** 40
RESCALED_PEAK = 2.0 ** 15
#: Temporary files of :func:`atomic_write_bytes`: ``.<name>.mmrqa-<pid>@<host>.<random>.tmp``.
_TMP_TAG = re.compile(r"\.mmrqa-(?P<pid>\d+)@(?P<host>[^.]*)\.[A-Za-z0-9_]+\.tmp$")
#: A temporary file of another machine (or of an older mmrqa, untagged) is an orphan once it
#: is older than this: no single write takes an hour.
ORPHAN_AGE_S = 3600.0


class RunInputError(Exception):
    """A run whose image cannot be assessed; the message names the problem (one line)."""


@dataclass(frozen=True)
class LoadedImage:
    """A validated run: canonical image, float32 data, and ``scale_exponent`` k when the data
    were divided by 2**k to stay within float32 arithmetic (0 for every ordinary scan)."""

    img: nb.Nifti1Image
    data: np.ndarray
    scale_exponent: int = 0


def physical_memory_bytes() -> int:
    """The machine's physical memory, ``SC_PAGE_SIZE x SC_PHYS_PAGES`` (cgroup limits of a
    container are read from ``/sys/fs/cgroup/memory.max`` when lower)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            total = min(total, int(text))
    except OSError:
        pass
    return int(total)


def memory_limit_bytes(mem_gb: float | None = None) -> int:
    """The memory one run may use: ``--mem-gb`` when given, else the machine's memory."""
    return int(mem_gb * 2**30) if mem_gb else physical_memory_bytes()


def check_header(path: str | os.PathLike, memory_limit: int | None = None) -> None:
    """Refuse, from the header alone, an image whose data cannot be in the file or in memory.

    - uncompressed: ``vox_offset + prod(shape) x itemsize`` must not exceed the file size;
    - gzip: the same size must not exceed ``DEFLATE_MAX_RATIO x`` the compressed size, and the
      stream is then inflated and counted (in 1 MiB pieces, nothing kept) until it holds it;
    - ``prod(shape) x WORKING_BYTES_PER_VOXEL`` must not exceed ``memory_limit``.

    Raises :class:`RunInputError` with a one-line reason; reads no voxel into memory.
    """
    path = Path(path)
    try:
        img = nb.load(str(path))
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, nb.filebasedimages.ImageFileError,
            ValueError) as exc:
        raise RunInputError(f"cannot read image ({type(exc).__name__}: {_one_line(exc)})") from exc
    header = img.header
    shape = tuple(int(n) for n in header.get_data_shape())
    voxels = math.prod(shape)
    # the file holding the voxels (the .img of a .hdr/.img pair) and where they start
    data_file = Path(img.file_map["image"].filename or path)
    offset = int(getattr(img.dataobj, "offset", 0))
    needed = offset + voxels * header.get_data_dtype().itemsize
    size = data_file.stat().st_size
    if data_file.name.endswith(".gz"):
        if needed > DEFLATE_MAX_RATIO * size:
            raise RunInputError(
                f"header claims shape {shape} ({_size(needed)} of data) but a {_size(size)} "
                f"gzip file can hold at most {_size(DEFLATE_MAX_RATIO * size)}")
    elif needed > size:
        raise RunInputError(f"header claims shape {shape} ({_size(needed)}) but the file "
                            f"holds {_size(size)}")
    if memory_limit is not None and voxels * WORKING_BYTES_PER_VOXEL > memory_limit:
        raise RunInputError(
            f"shape {shape} needs about {_size(voxels * WORKING_BYTES_PER_VOXEL)} of memory, "
            f"over the limit of {_size(memory_limit)} (raise it with --mem-gb)")
    if data_file.name.endswith(".gz"):
        held = _inflated_size(data_file, needed)
        if held < needed:
            raise RunInputError(f"header claims shape {shape} ({_size(needed)}) but the file "
                                f"holds {_size(held)} uncompressed")


def _inflated_size(path: Path, enough: int) -> int:
    """Bytes of the gzip stream of ``path``, counted up to ``enough``."""
    count = 0
    try:
        with gzip.open(path, "rb") as fh:
            while count < enough:
                piece = fh.read(min(1 << 20, enough - count))
                if not piece:
                    break
                count += len(piece)
    except (OSError, EOFError, zlib.error) as exc:
        raise RunInputError(f"cannot read image ({type(exc).__name__}: {_one_line(exc)})") from exc
    return count


def read_image(path: str | os.PathLike, suffix: str,
               memory_limit: int | None = None) -> LoadedImage:
    """Check the header (:func:`check_header`), then load a run and check that it can be
    assessed.

    The data come back as float32 in canonical (RAS) orientation, so slice mosaics and axes
    mean the same for every input: 3-D for anatomical suffixes, 4-D for bold (a 4-D
    anatomical with a single volume is squeezed). Data beyond ``MAX_SAFE_INTENSITY`` are
    divided by ``2**k``, ``k = ceil(log2(max|x| / RESCALED_PEAK))``.
    """
    path = Path(path)
    check_header(path, memory_limit)
    try:
        img = nb.as_closest_canonical(nb.load(str(path)))
        # float64 sources keep their range until the rescaling below (float32 tops at 3.4e38)
        wide = img.header.get_data_dtype().itemsize > 4
        data = np.asarray(img.dataobj, dtype=np.float64 if wide else np.float32)
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
    low, high = float(data.min()), float(data.max())
    if high == low:
        raise RunInputError("image is constant")
    exponent = safe_scale_exponent(max(abs(low), abs(high)))
    if exponent:
        data = data * (2.0 ** -exponent)  # exact: a power of two
    return LoadedImage(img=img, data=data.astype(np.float32, copy=False), scale_exponent=exponent)


def safe_scale_exponent(peak: float) -> int:
    """0 when ``peak <= MAX_SAFE_INTENSITY``, else ``k = ceil(log2(peak / RESCALED_PEAK))``
    (so that ``peak / 2**k <= RESCALED_PEAK``)."""
    if peak <= MAX_SAFE_INTENSITY:
        return 0
    return int(math.ceil(math.log2(peak / RESCALED_PEAK)))


def load_image(path: str | os.PathLike, suffix: str,
               memory_limit: int | None = None) -> tuple[nb.Nifti1Image, np.ndarray]:
    """``(img, data)`` of :func:`read_image`."""
    loaded = read_image(path, suffix, memory_limit)
    return loaded.img, loaded.data


def file_checksum(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"{algorithm}:{digest.hexdigest()}"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write to a temporary file beside ``path`` and rename it into place.

    A crash mid-write leaves the previous file intact, never a half-written one; the
    temporary file's name carries the writer's pid and host, so :func:`clean_orphan_temp_files`
    can tell an orphan from another process's write in progress.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.mmrqa-{os.getpid()}@{_host()}.",
                               suffix=".tmp", dir=path.parent)
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
    """Strict JSON (``allow_nan=False``: NaN/Infinity, which browsers, jq and Node reject,
    raise ``ValueError`` instead of being written)."""
    return atomic_write_text(path, dumps_strict(obj) + "\n")


def read_json_object(path: str | os.PathLike, what: str,
                     error: type[Exception] = ValueError) -> dict[str, Any]:
    """The JSON object stored in ``path``. Raises ``error`` with one line naming the file and
    ``what`` it should hold when it cannot be read, is not JSON or holds no object."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise error(f"{path}: cannot read the {what} ({' '.join(str(exc).split())})") from exc
    if not isinstance(value, dict):
        raise error(f"{path}: the {what} must be a JSON object")
    return value


def dumps_strict(obj: Any, indent: int | None = 2) -> str:
    """``json.dumps`` that refuses non-finite numbers and converts numpy scalars/arrays."""
    return json.dumps(obj, indent=indent, sort_keys=False, default=_json_default,
                      allow_nan=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def is_orphan_temp(path: Path, now: float | None = None) -> bool:
    """A temporary file of :func:`atomic_write_bytes` whose writer is gone: its pid is dead
    on this host, or (other host, or untagged) it is older than :data:`ORPHAN_AGE_S`."""
    if not (path.name.startswith(".") and path.name.endswith(".tmp")):
        return False
    match = _TMP_TAG.search(path.name)
    if match and match["host"] == _host():
        return not _pid_alive(int(match["pid"]))
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age > ORPHAN_AGE_S


def clean_orphan_temp_files(root: str | os.PathLike) -> list[Path]:
    """Remove the orphan temporary files (:func:`is_orphan_temp`) under ``root``; returns
    them. Another process's write in progress is left alone."""
    removed = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if is_orphan_temp(path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, name: str = ".mmrqa.lock",
                on_wait: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """An exclusive ``flock`` on ``folder/name`` for the ``with`` block (waits for it, after
    calling ``on_wait(lock)`` when another process holds it).

    Held for the short read-modify-write steps on shared files of an output folder, so
    concurrent runs into one folder never interleave them. Released by the kernel when the
    process dies.
    """
    import fcntl

    lock = Path(folder) / name
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(lock)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield lock
    finally:
        os.close(fd)  # closing releases the lock


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]

"""Hostile headers, overflowing intensities, strict JSON and orphan temporary files (io.py)."""
from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
import time
import tracemalloc

import nibabel as nb
import numpy as np
import pytest

from mmrqa_bids import io as mio
from mmrqa_bids.interfaces.measure import finite_metrics
from mmrqa_bids.io import RunInputError, load_image
from mmrqa_bids.testing.faults import hostile_header

MB = 2**20


def _peak_while(fn):
    """(exception raised by fn, peak traced allocation in bytes)."""
    tracemalloc.start()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        raised = exc
    else:
        raised = None
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return raised, peak


def test_tiny_file_claiming_a_gigavoxel_is_refused_before_reading(tmp_path):
    path = hostile_header(tmp_path / "sub-01_T1w.nii", (1000, 1000, 1000), "int16")
    assert path.stat().st_size < 400
    raised, peak = _peak_while(lambda: load_image(path, "T1w"))
    assert isinstance(raised, RunInputError)
    assert "header claims shape (1000, 1000, 1000)" in str(raised) and "\n" not in str(raised)
    assert peak < 20 * MB  # the old loader allocated the 2 GB the header claims


def test_small_gzip_claiming_16_gb_is_refused_from_the_deflate_bound(tmp_path):
    path = hostile_header(tmp_path / "sub-01_T1w.nii.gz", (2000, 2000, 2000), "int16",
                          gzipped=True, payload=1 << 20)
    raised, peak = _peak_while(lambda: load_image(path, "T1w"))
    assert isinstance(raised, RunInputError)
    assert "gzip file can hold at most" in str(raised)
    assert peak < 20 * MB


def test_gzip_within_the_bound_but_short_of_data_is_counted_not_loaded(tmp_path):
    # incompressible payload: the deflate bound lets it through, the count does not
    rng = np.random.default_rng(0)
    path = tmp_path / "sub-01_T1w.nii.gz"
    header = nb.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape((300, 300, 300))  # 54 MB claimed
    header["vox_offset"] = 352
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4 + rng.bytes(200_000)))
    raised, peak = _peak_while(lambda: load_image(path, "T1w"))
    assert isinstance(raised, RunInputError) and "uncompressed" in str(raised)
    assert peak < 20 * MB


def test_memory_limit_refuses_before_reading(tmp_path):
    path = tmp_path / "sub-01_T1w.nii.gz"
    nb.save(nb.Nifti1Image(np.ones((40, 40, 40), np.float32), np.eye(4)), str(path))
    with pytest.raises(RunInputError, match=r"over the limit of .*--mem-gb"):
        mio.read_image(path, "T1w", memory_limit=40**3 * mio.WORKING_BYTES_PER_VOXEL - 1)
    assert mio.memory_limit_bytes(2.0) == 2 * 2**30
    assert mio.memory_limit_bytes(None) == mio.physical_memory_bytes() > 0


def test_overflowing_intensities_measure_like_the_unscaled_volume(tmp_path):
    """A float64 volume at ~1e30 gave efc 0 and snr NaN in float32; rescaled by a power of
    two, the contrast metrics equal those of the same volume at ordinary scale."""
    from mmrqa_bids.metrics import measure
    from mmrqa_bids.phantom import load_head

    head = load_head(voxel_size=4.0)
    base = head.render("T1w").astype(np.float64) * 1.37 + 0.25
    rng = np.random.default_rng(0)
    base = np.abs(base + rng.normal(0, 0.02 * base.max(), base.shape))
    for name, scale in (("base", 1.0), ("huge", 1e30)):
        nb.save(nb.Nifti1Image(base * scale, np.eye(4) * [4, 4, 4, 1]),
                str(tmp_path / f"{name}.nii.gz"))
    small = mio.read_image(tmp_path / "base.nii.gz", "T1w")
    huge = mio.read_image(tmp_path / "huge.nii.gz", "T1w")
    assert small.scale_exponent == 0 and huge.scale_exponent > 0
    assert float(np.abs(huge.data).max()) <= mio.RESCALED_PEAK
    m_small = measure(small.data, "T1w", (4, 4, 4)).metrics
    m_huge = measure(huge.data, "T1w", (4, 4, 4)).metrics
    for key in ("efc", "snr_total", "cnr", "cjv"):
        assert math.isfinite(m_huge[key])
        assert m_huge[key] == pytest.approx(m_small[key], rel=1e-4), key


def test_strict_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        mio.atomic_write_json(tmp_path / "x.json", {"mrqy_FBER": float("nan")})
    with pytest.raises(ValueError):
        mio.atomic_write_json(tmp_path / "x.json", {"v": np.float32("inf")})
    assert not (tmp_path / "x.json").exists() and not list(tmp_path.glob("*.tmp"))


def test_non_finite_metrics_become_null_with_a_note():
    metrics, notes = finite_metrics({"efc": 0.4, "mrqy_FBER": float("nan"),
                                     "snr": np.float32("inf"), "n": 3})
    assert metrics == {"efc": 0.4, "mrqy_FBER": None, "snr": None, "n": 3}
    assert set(notes) == {"mrqy_FBER", "snr"} and "null" in notes["mrqy_FBER"]
    json.dumps(metrics, allow_nan=False)


def test_orphan_temp_files_of_dead_writers_are_removed(tmp_path):
    """A writer SIGKILLed between writing and renaming leaves its temporary file; the next
    run removes it, and leaves another process's write in progress alone."""
    code = ("import os, signal, sys; import mmrqa_bids.io as io; "
            "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL); "
            "io.atomic_write_text(sys.argv[1], '{}')")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run.json")],
                          env={**os.environ, "PYTHONPATH": str(mio.Path(__file__).parents[2])})
    assert proc.returncode == -9
    orphans = list(tmp_path.glob(".run.json.*.tmp"))
    assert len(orphans) == 1 and not (tmp_path / "run.json").exists()
    # a write in progress in this (live) process, and an untagged file of unknown age
    live = tmp_path / f".other.json.mmrqa-{os.getpid()}@{mio._host()}.abc123.tmp"
    live.write_text("{")
    fresh_untagged = tmp_path / ".legacy.json.xyz.tmp"
    fresh_untagged.write_text("{")
    old_untagged = tmp_path / ".older.json.xyz.tmp"
    old_untagged.write_text("{")
    past = time.time() - 2 * mio.ORPHAN_AGE_S
    os.utime(old_untagged, (past, past))
    removed = mio.clean_orphan_temp_files(tmp_path)
    assert sorted(removed) == sorted([orphans[0], old_untagged])
    assert live.exists() and fresh_untagged.exists()


def test_folder_lock_excludes_another_process(tmp_path):
    code = ("import sys, time; from mmrqa_bids.io import folder_lock\n"
            "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(1.5)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ,
                                            "PYTHONPATH": str(mio.Path(__file__).parents[2])})
    assert proc.stdout.readline().strip() == "held"
    waited = []
    t0 = time.monotonic()
    with mio.folder_lock(tmp_path, on_wait=waited.append):
        elapsed = time.monotonic() - t0
    proc.wait()
    assert waited and elapsed > 0.5


def test_skull_stripped_volume_measures_with_null_metrics():
    """Zero outside the brain: slices with no signal at all made MRQy's per-slice Otsu fail
    (argmax of an empty sequence) and the run fail; now the background metrics are null, each
    with a note, and the run JSON stays strict."""
    from mmrqa_bids.metrics import measure
    from mmrqa_bids.phantom import load_head

    head = load_head(voxel_size=4.0)
    rng = np.random.default_rng(0)
    vol = head.render("T1w").astype(np.float32) * 1000
    vol = np.abs(vol + rng.normal(0, 10, vol.shape)).astype(np.float32)
    brain = measure(vol, "T1w", (4, 4, 4)).tissue_labels > 0
    stripped = np.where(brain, vol, 0).astype(np.float32)
    metrics, notes = finite_metrics(measure(stripped, "T1w", (4, 4, 4)).metrics)
    nulls = {k for k, v in metrics.items() if v is None}
    assert nulls and nulls == set(notes)
    json.dumps(metrics, allow_nan=False)

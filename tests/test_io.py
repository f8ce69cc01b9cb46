import gzip
import os

import nibabel as nb
import numpy as np
import pytest

from mmrqa_bids.io import RunInputError, atomic_write_text, load_image


def _save(tmp_path, data, name="sub-01_T1w.nii.gz"):
    path = tmp_path / name
    nb.save(nb.Nifti1Image(np.asarray(data), np.eye(4)), str(path))
    return path


def _volume(shape=(20, 20, 20)):
    rng = np.random.default_rng(0)
    return rng.random(shape).astype(np.float32) + 1


def test_load_valid_3d(tmp_path):
    img, data = load_image(_save(tmp_path, _volume()), "T1w")
    assert data.shape == (20, 20, 20) and data.dtype == np.float32


def test_single_volume_4d_anatomical_is_squeezed(tmp_path):
    _, data = load_image(_save(tmp_path, _volume((20, 20, 20, 1))), "T1w")
    assert data.ndim == 3


@pytest.mark.parametrize("data, message", [
    (_volume((20, 20)), "expected a 3-D image"),
    (_volume((20, 20, 20, 2, 2)), "expected a 3-D image"),
    (np.zeros((20, 20, 20), np.float32), "all zeros"),
    (np.full((20, 20, 20), 3.0, np.float32), "constant"),
])
def test_invalid_images(tmp_path, data, message):
    with pytest.raises(RunInputError, match=message):
        load_image(_save(tmp_path, data), "T1w")


def test_nan_image(tmp_path):
    data = _volume()
    data[3, 4, 5] = np.nan
    with pytest.raises(RunInputError, match="1 NaN/Inf voxels"):
        load_image(_save(tmp_path, data), "T1w")


def test_bold_needs_4d(tmp_path):
    with pytest.raises(RunInputError, match="expected a 4-D image for bold"):
        load_image(_save(tmp_path, _volume(), "sub-01_task-x_bold.nii.gz"), "bold")


def test_truncated_gzip(tmp_path):
    path = _save(tmp_path, _volume((40, 40, 40)))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RunInputError, match="cannot read image"):
        load_image(path, "T1w")


def test_not_a_nifti(tmp_path):
    path = tmp_path / "sub-01_T1w.nii.gz"
    path.write_bytes(gzip.compress(b"this is not a nifti file"))
    with pytest.raises(RunInputError, match="cannot read image"):
        load_image(path, "T1w")


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    atomic_write_text(target, "old")

    def boom(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary left behind


def test_read_json_object_names_the_file_and_raises_the_callers_error(tmp_path):
    from mmrqa_bids.io import read_json_object

    good = tmp_path / "filter.json"
    good.write_text('{"t1w": {"datatype": "anat"}}')
    assert read_json_object(good, "BIDS filter file") == {"t1w": {"datatype": "anat"}}
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{oops")

    class Mine(Exception):
        pass

    with pytest.raises(Mine, match=r"list\.json: the BIDS sidecar must be a JSON object"):
        read_json_object(tmp_path / "list.json", "BIDS sidecar", Mine)
    with pytest.raises(ValueError, match=r"broken\.json: cannot read the plugin arguments \("):
        read_json_object(tmp_path / "broken.json", "plugin arguments")
    with pytest.raises(ValueError, match=r"missing\.json: cannot read"):
        read_json_object(tmp_path / "missing.json", "plugin arguments")

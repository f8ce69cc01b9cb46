import subprocess
import sys

import pytest

from mmrqa_bids import __version__
from mmrqa_bids.cli.parser import build_parser
from mmrqa_bids.cli.run import build_settings


def test_version_and_help_without_heavy_imports():
    code = ("import sys\nfrom mmrqa_bids.cli.run import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'openai', 'nipype', 'bids') "
            "if m in sys.modules]\nprint('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "participant" in out.stdout and "--participant-label" in out.stdout
    assert "HEAVY []" in out.stdout
    ver = subprocess.run([sys.executable, "-m", "mmrqa_bids", "--version"], capture_output=True,
                         text=True, check=True)
    assert ver.stdout.strip() == f"mmrqa {__version__}"


def test_settings_from_arguments(tmp_path):
    args = build_parser().parse_args([str(tmp_path), str(tmp_path / "out"), "participant",
                                      "--participant-label", "sub-01", "02", "-m", "T1w", "bold",
                                      "--nprocs", "2", "-w", str(tmp_path / "w")])
    s = build_settings(args)
    assert s.execution.participant_label == ("sub-01", "02")
    assert s.execution.modalities == ("T1w", "bold")
    assert s.execution.plugin == "MultiProc"  # --nprocs > 1 picks MultiProc by default
    assert s.grading.grader == "classifier" and s.grading.batch_size == 4
    assert s.training.batch_size == 8
    assert s.execution.inu_method == "polynomial"
    n4 = build_parser().parse_args([str(tmp_path), str(tmp_path / "out"), "participant",
                                    "--inu-method", "n4"])
    assert build_settings(n4).execution.inu_method == "n4"


@pytest.mark.parametrize("argv", [["a", "b", "nonsense"], ["a", "b", "participant", "-m", "dwi"],
                                  ["a", "b", "participant", "--nprocs", "0"]])
def test_bad_usage_exits_2(argv):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_model_folder_recorded_as_an_absolute_path(tmp_path, monkeypatch):
    """A local --model folder is resolved (the runs' provenance records it, and the group level
    reads its cohort models from there whatever its working directory); a hub id is kept."""
    (tmp_path / "models" / "mine").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for level in ("participant", "group"):
        args = build_parser().parse_args(["bids", "out", level, "--model", "models/mine"])
        assert build_settings(args).grading.model == str(tmp_path / "models" / "mine")
    hub = build_parser().parse_args(["bids", "out", "participant", "--grader", "llava",
                                     "--model", "lmms-lab/llava-onevision-qwen2-0.5b-ov"])
    assert build_settings(hub).grading.model == "lmms-lab/llava-onevision-qwen2-0.5b-ov"

"""What the image's runtime stage does, without Docker: build the wheel, install it into a
fresh virtualenv (no system site-packages, no source tree on the path), then run
`mmrqa --version` and the participant and group levels from that install only.

By default the fresh venv gets the core install, which is what the participant and group
levels with the default grader need (and it must stay torch-free), and a separate test has
pip resolve the image's extras ([llm,train]) with the pinned torch without installing them
(``--dry-run``), which proves they install together without swapping torch.
``MMRQA_TEST_FULL_EXTRAS=1`` installs [llm,train] into the fresh venv for real and imports
torch, transformers, peft, torchio and openai from it (1-2 more minutes here).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset

REPO = Path(__file__).resolve().parents[2]
EXTRAS = "llm,train"  # as in the Dockerfile's runtime stage
FULL_EXTRAS = os.environ.get("MMRQA_TEST_FULL_EXTRAS", "") not in ("", "0")

pytestmark = pytest.mark.slow


def _clean_env(venv: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env.update(extra)
    return env


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} -> {proc.returncode}\n" \
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    # With the build backend already installed (the test extra has it), no isolated build
    # environment has to be resolved and installed first.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", *isolation,
          "--wheel-dir", dist, REPO], timeout=300)
    wheels = list(dist.glob("mmrqa-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_ships_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "templates").rglob("*")
                       if p.is_file())
    assert templates
    for rel in templates:
        assert f"mmrqa_bids/{rel}" in names, f"{rel} is not in the wheel"
    for data in (REPO / "mmrqa_bids" / "data").rglob("*") if (REPO / "mmrqa_bids" / "data").is_dir() else []:
        if data.is_file() and "__pycache__" not in data.parts:
            assert data.relative_to(REPO).as_posix() in names, f"{data} is not in the wheel"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mmrqa = mmrqa_bids.cli.run:main" in zipfile.ZipFile(wheel).read(entry).decode()


def _torch_pin() -> str:
    """The CPU torch already on this machine, as the Dockerfile keeps its base's CUDA torch:
    a bare requirement would otherwise pull a multi-GB CUDA build."""
    return metadata.version("torch").split("+")[0]


def test_extras_resolve_with_the_pinned_torch(wheel, tmp_path):
    """pip resolves [llm,train] together with the pinned torch (what the image installs),
    without installing anything."""
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"torch=={_torch_pin()}\n")
    report = tmp_path / "extras.json"
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
          "--constraint", constraints, "--report", report, f"{wheel}[{EXTRAS}]"], timeout=900)
    resolved = {i["metadata"]["name"].lower(): i["metadata"]["version"]
                for i in json.loads(report.read_text())["install"]}
    for name in ("mmrqa", "torch", "transformers", "peft", "accelerate", "openai", "torchio"):
        assert name in resolved, f"[{EXTRAS}] does not bring {name}"
    assert resolved["torch"].split("+")[0] == _torch_pin()


def _as_other_user(uid: int) -> list[str]:
    """A command prefix that drops root for ``uid`` (no passwd entry, as `docker run -u`)."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or not setpriv:
        return []
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


def test_fresh_venv_install_and_participant_run(wheel):
    """Then, as in `docker run --read-only --tmpfs /tmp -u UID`: the levels run as a user
    without a passwd entry who can write only TMPDIR and the output folder (the venv, the
    dataset and HOME belong to root); when the test runs as root, setpriv drops to uid 4242.
    """
    version = wheel.name.split("-")[1]
    # Not under pytest's tmp_path: its root folder is private to the user running pytest.
    base = Path(tempfile.mkdtemp(prefix="mmrqa-wheel-"))
    base.chmod(0o755)
    uid = 4242
    drop = _as_other_user(uid)
    venv = base / "venv"
    try:
        # No pip inside (ensurepip takes a while): the outer pip installs into it.
        _run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=300)
        py = venv / "bin" / "python"
        torch_pin = _torch_pin()
        constraints = base / "constraints.txt"
        constraints.write_text(f"torch=={torch_pin}\n")
        pip = [sys.executable, "-m", "pip", "--python", py, "install", "--quiet", "--no-compile",
               "--constraint", constraints]
        if FULL_EXTRAS:
            _run(pip + [f"{wheel}[{EXTRAS}]"], env=_clean_env(venv), timeout=900)
        else:
            _run(pip + [wheel], env=_clean_env(venv), timeout=900)

        home, tmp, deriv = base / "home", base / "tmp", base / "derivatives"
        for folder in (home, tmp, deriv):
            folder.mkdir()
        if drop:
            for folder in (tmp, deriv):
                os.chown(folder, uid, uid)
        env = _clean_env(venv, HF_HUB_OFFLINE="1", TMPDIR=str(tmp), HOME=str(home),
                         LOGNAME="mmrqa")
        out = _run([*drop, venv / "bin" / "mmrqa", "--version"], env=env, cwd=tmp, timeout=60)
        assert out.stdout.strip() == f"mmrqa {version}"

        heavy = ", torch, transformers, peft, torchio, openai" if FULL_EXTRAS else ""
        probe = _run([py, "-c", f"import sys, mmrqa_bids{heavy}; print(mmrqa_bids.__file__);"
                      "print('torch' in sys.modules)"],
                     env=env, cwd=tmp, timeout=300).stdout.split()
        assert Path(probe[0]).is_relative_to(venv), f"imported from {probe[0]}, not the venv"
        if not FULL_EXTRAS:
            # The core install is torch-free: the default grader must not need it.
            assert probe[1] == "False"
            gone = subprocess.run([py, "-c", "import torch"], env=env, capture_output=True)
            assert gone.returncode != 0, "torch leaked into the core install"

        bids = base / "bids"
        build_dataset(bids, [RunPlan("01", "T1w"),
                             RunPlan("02", "T1w", artifact="motion", severity=0.8),
                             RunPlan("02", "bold", task="rest", n_volumes=8)], voxel_size=3.0)
        # No -w: the default work directory is private to the invocation, in TMPDIR (a tmpfs
        # in containers), and removed at the end.
        run = _run([*drop, venv / "bin" / "mmrqa", bids, deriv, "participant", "--nprocs", "2"],
                   env=env, cwd=tmp, timeout=600)
        assert "3 run(s) processed, 0 failed" in run.stdout, run.stdout
        assert not list(tmp.glob("mmrqa_work_*"))
        _run([*drop, venv / "bin" / "mmrqa", bids, deriv, "group"], env=env, cwd=tmp,
             timeout=300)

        docs = sorted(deriv.glob("sub-*/*/*.json"))
        assert [d.name for d in docs] == ["sub-01_T1w.json", "sub-02_T1w.json",
                                         "sub-02_task-rest_bold.json"]
        for doc in map(json.loads, (d.read_text() for d in docs)):
            assert doc["grade"]["label"] in ("Good", "Medium", "Bad")
            assert doc["provenance"]["version"] == version
            assert doc["metrics"]
        assert len(list(deriv.glob("sub-*.html"))) == 3
        assert (deriv / "group_T1w.tsv").read_text().count("\n") >= 3
        assert (deriv / "group_bold.tsv").exists()
        if drop:
            written = {p.stat().st_uid for p in deriv.rglob("*")}
            assert written == {uid}, "outputs belong to the unprivileged user"
            assert not any(home.iterdir()) and not list(bids.glob("derivatives"))
    finally:
        shutil.rmtree(base, ignore_errors=True)

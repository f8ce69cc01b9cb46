"""The built image, run: `ENGINE run IMAGE /data /out participant` grades as the host install.

Opt-in: skipped unless MMRQA_TEST_IMAGE names an image (`make test-container` and CircleCI
set it through scripts/ci/test_container.sh). MMRQA_CONTAINER_ENGINE is the command that
runs containers (default `podman`; `docker` on CircleCI). The host install is the one
running these tests (the `mmrqa` script beside this Python).

Every run of the image is the contract CI promises: no network, read-only root with a
/tmp tmpfs, an arbitrary uid with no passwd entry, the dataset mounted read-only.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CI = REPO / "scripts" / "ci"
IMAGE = os.environ.get("MMRQA_TEST_IMAGE", "")
ENGINE = shlex.split(os.environ.get("MMRQA_CONTAINER_ENGINE", "podman"))
HOST_MMRQA = Path(sys.executable).with_name("mmrqa")
UID = "12345:12345"
TOLERANCE = 1e-6

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not IMAGE, reason="set MMRQA_TEST_IMAGE to test a built image "
                                         "(make test-container)"),
]


def contract_run(*mounts: str, user: str = UID) -> list[str]:
    """The `run` prefix of every check: no network, read-only root, uid with no passwd entry."""
    volumes = [arg for m in mounts for arg in ("-v", m)]
    return [*ENGINE, "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
            "-u", user, *volumes, IMAGE]


def run(cmd: list[str], timeout: int = 900, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, **kw)


def writable_dir(path: Path) -> Path:
    """A folder the container's uid can write (the uid exists nowhere on the host)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def run_levels(mmrqa: list[str], bids: str, out: str) -> None:
    """participant then group through scripts/ci/run_levels.sh, the commands CircleCI runs."""
    env = dict(os.environ, MMRQA=shlex.join(mmrqa))
    proc = run([CI / "run_levels.sh", bids, out], env=env, timeout=1800)
    assert proc.returncode == 0, f"{mmrqa[0]} levels failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("image")
    root.chmod(0o755)
    bids = root / "bids"
    proc = run([sys.executable, "-m", "mmrqa_bids.testing.demo_dataset", bids, "--voxel-size", "3"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return bids


@pytest.fixture(scope="module")
def host_out(dataset) -> Path:
    out = dataset.parent / "host_out"
    run_levels([str(HOST_MMRQA)], str(dataset), str(out))
    return out


@pytest.fixture(scope="module")
def image_out(dataset) -> Path:
    out = writable_dir(dataset.parent / "image_out")
    run_levels(contract_run(f"{dataset}:/data:ro", f"{out}:/out"), "/data", "/out")
    return out


def listing(out: Path) -> list[str]:
    return subprocess.run([str(CI / "list_outputs.sh"), str(out)], capture_output=True,
                          text=True, check=True).stdout.splitlines()


def run_records(out: Path) -> dict[str, dict]:
    """Per-run JSON records (not dataset_description.json, nor anything under logs/ or models/)."""
    return {p.relative_to(out).as_posix(): json.loads(p.read_text())
            for p in sorted(out.glob("sub-*/**/*.json"))}


def close(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=TOLERANCE,
                                                                 abs_tol=TOLERANCE)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a == b


def test_image_writes_the_outputs_of_a_host_run(host_out, image_out):
    """The listing scripts/ci/expected_outputs.sh prints (a host run of the same commands)."""
    host, image = listing(host_out), listing(image_out)
    assert any(name.endswith(".html") for name in host)
    assert image == host


def test_every_run_grades_as_on_the_host(host_out, image_out):
    host, image = run_records(host_out), run_records(image_out)
    assert host and image.keys() == host.keys()
    for name, want in host.items():
        got = image[name]
        assert got["grade"]["label"] == want["grade"]["label"], name
        assert close(got["grade"], want["grade"]), f"{name}: grade {got['grade']} != {want['grade']}"
        assert got["metrics"].keys() == want["metrics"].keys(), name
        differ = {k: (got["metrics"][k], v) for k, v in want["metrics"].items()
                  if not close(got["metrics"][k], v)}
        assert not differ, f"{name}: metrics differ beyond {TOLERANCE}: {differ}"
        assert got["narrative"] == want["narrative"], name
        assert close(got.get("artifacts"), want.get("artifacts")), name


def test_group_tables_match_the_host(host_out, image_out):
    tables = sorted(p.name for p in host_out.glob("group_*.tsv"))
    assert tables
    for name in tables:
        host_rows = [r.split("\t") for r in (host_out / name).read_text().splitlines()]
        image_rows = [r.split("\t") for r in (image_out / name).read_text().splitlines()]
        assert image_rows[0] == host_rows[0], name
        assert len(image_rows) == len(host_rows), name
        for h, i in zip(host_rows[1:], image_rows[1:]):
            assert close([_number(x) for x in i], [_number(x) for x in h]), f"{name}: {i} != {h}"


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def test_version_matches_the_host_install_for_any_uid():
    host = run([HOST_MMRQA, "--version"])
    assert host.returncode == 0
    for user in (UID, "1000:1000"):
        proc = run([*contract_run(user=user), "--version"], timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == host.stdout.strip()


def test_help_is_the_bids_app_usage():
    proc = run([*contract_run(), "--help"], timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "bids_dir output_dir {participant,group,train}" in " ".join(proc.stdout.split())


def test_bad_bids_path_exits_2_with_one_line(tmp_path):
    out = writable_dir(tmp_path / "out")
    proc = run([*contract_run(f"{out}:/out"), "/no/such/bids", "/out", "participant"], timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmrqa: error:") and "/no/such/bids" in lines[0], lines


# Rated runs enough for the train level to fit the anat model without simulated copies (the
# core image has no TorchIO): five per grade, the grade following the artifact's severity.
TRAIN_GRADES = (("Good", None, 0.0), ("Medium", "motion", 0.5), ("Bad", "motion", 1.0))


def test_train_level_needs_no_network(tmp_path):
    """Without --base-model the train level fits the metric classifier: offline, on a CPU."""
    from mmrqa_bids.ratings import ratings_tsv
    from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset

    root = writable_dir(tmp_path / "train")
    root.chmod(0o755)
    rows, plans = [], []
    for g, (label, artifact, severity) in enumerate(TRAIN_GRADES):
        for i in range(5):
            subject = f"{g}{i}"
            plans.append(RunPlan(subject, "T1w", artifact=artifact, severity=severity))
            rows.append({"participant_id": subject, "rating": label})
    build_dataset(root / "bids", plans, voxel_size=3.0)
    (root / "ratings.tsv").write_text(ratings_tsv(rows))
    out = writable_dir(tmp_path / "out")
    proc = run([*contract_run(f"{root}:/train:ro", f"{out}:/out"),
                "/train/bids", "/out", "train", "--labels", "/train/ratings.tsv",
                "--holdout-fraction", "0", "--nprocs", "2"], timeout=1800)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    evaluation = json.loads((out / "models" / "mmrqa-metric-classifier" / "evaluation.json")
                            .read_text())
    assert evaluation["anat"]["trained"] and evaluation["anat"]["n_train"] == 15, evaluation["anat"]


def _inspect(field: str):
    proc = run([*ENGINE, "image", "inspect", "--format", "{{json .Config.%s}}" % field, IMAGE],
               timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_entrypoint_is_the_bids_app_and_user_is_not_root():
    assert _inspect("Entrypoint") == ["mmrqa"]
    assert _inspect("User") == "1000:1000"


def test_boutiques_launches_the_descriptor_against_the_image(dataset, tmp_path):
    """`bosh exec launch` drives `docker`; here a `docker` on PATH that runs the engine."""
    bosh = Path(sys.executable).with_name("bosh")
    if not bosh.exists():
        pytest.fail("bosh not found beside this Python: install the test extra (boutiques)")
    descriptor = json.loads((REPO / "boutiques" / "mmrqa.json").read_text())
    descriptor["container-image"]["image"] = IMAGE
    (tmp_path / "mmrqa.json").write_text(json.dumps(descriptor))
    env = dict(os.environ)
    if Path(ENGINE[0]).name != "docker":
        shim = tmp_path / "bin" / "docker"
        shim.parent.mkdir()
        shim.write_text(f'#!/bin/sh\nexec {shlex.join(ENGINE)} "$@"\n')
        shim.chmod(0o755)
        env["PATH"] = f"{shim.parent}{os.pathsep}{env['PATH']}"
    # bosh mounts the launch folder at the same path: the dataset and the output live in it.
    work = writable_dir(tmp_path / "launch")  # the image's uid 1000 writes out/ in it
    shutil.copytree(dataset, work / "bids")
    invocation = {"bids_dir": "bids", "output_dir": "out", "analysis_level": "participant",
                  "participant_label": ["01"], "modalities": ["T1w"], "nprocs": 1,
                  "work_dir": "/tmp/work"}
    (tmp_path / "invocation.json").write_text(json.dumps(invocation))
    proc = run([bosh, "exec", "launch", "--no-automount", "--no-pull", tmp_path / "mmrqa.json",
                tmp_path / "invocation.json"], cwd=work, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = list((work / "out").glob("sub-01/**/*_T1w.json"))
    assert records and all(json.loads(p.read_text())["grade"]["label"] for p in records)

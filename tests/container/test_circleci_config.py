"""Structure of .circleci/config.yml: what CircleCI would reject or silently never run.

There is no CircleCI here (its `circleci config validate` needs the network), so this checks
the rules that matter for this pipeline: jobs, executors and commands referenced exist,
`requires` form an acyclic graph inside each workflow, workspaces are persisted upstream of
where they are attached, tag-triggered jobs have tag filters all the way up, deploy runs on
tags only, every shell step parses, and every repository script a step calls exists.
"""
from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / ".circleci" / "config.yml"
BUILTIN_STEPS = {"checkout", "run", "attach_workspace", "persist_to_workspace", "save_cache",
                 "restore_cache", "store_artifacts", "store_test_results", "setup_remote_docker",
                 "add_ssh_keys", "when", "unless"}


def _steps(job_or_command: dict) -> list:
    return job_or_command.get("steps", [])


def _step_name(step) -> str:
    return step if isinstance(step, str) else next(iter(step))


def _expanded_steps(config: dict, job: dict) -> list:
    """A job's steps with the reusable commands it calls inlined."""
    out = []
    for step in _steps(job):
        name = _step_name(step)
        if name in config.get("commands", {}):
            out.extend(_steps(config["commands"][name]))
        else:
            out.append(step)
    return out


def _run_commands(config: dict, job: dict) -> list[str]:
    out = []
    for step in _expanded_steps(config, job):
        if _step_name(step) == "run":
            body = step["run"]
            out.append(body if isinstance(body, str) else body["command"])
    return out


def _upstream(name: str, requires: dict[str, list[str]]) -> set[str]:
    seen, todo = set(), list(requires.get(name, []))
    while todo:
        job = todo.pop()
        if job not in seen:
            seen.add(job)
            todo.extend(requires.get(job, []))
    return seen


def validate_circleci(config: dict) -> list[str]:
    errors: list[str] = []
    if str(config.get("version")) != "2.1":
        errors.append("version must be 2.1 (reusable executors/commands)")
    jobs = config.get("jobs", {})
    executors = config.get("executors", {})
    commands = config.get("commands", {})
    orbs = config.get("orbs", {})
    for name, job in jobs.items():
        if not any(k in job for k in ("docker", "machine", "macos", "executor")):
            errors.append(f"job {name}: no executor, docker, machine or macos")
        ex = job.get("executor")
        ex_name = ex if isinstance(ex, str) else (ex or {}).get("name")
        if ex_name and ex_name not in executors and "/" not in ex_name:
            errors.append(f"job {name}: unknown executor {ex_name}")
        if not _steps(job):
            errors.append(f"job {name}: no steps")
        for step in _steps(job):
            step_name = _step_name(step)
            if (step_name not in BUILTIN_STEPS and step_name not in commands
                    and step_name.split("/")[0] not in orbs):
                errors.append(f"job {name}: unknown step or command {step_name}")
        for command in _run_commands(config, job):
            proc = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
            if proc.returncode:
                errors.append(f"job {name}: shell syntax: {proc.stderr.strip()}")
            for script in re.findall(r"(?<![\w/.])((?:scripts|\.circleci)/[\w./-]+)", command):
                path = REPO / script
                if not path.is_file():
                    errors.append(f"job {name}: {script} does not exist")
                elif script.endswith(".sh") and not os.access(path, os.X_OK):
                    errors.append(f"job {name}: {script} is not executable")
    workflows = {k: v for k, v in config.get("workflows", {}).items() if k != "version"}
    if not workflows:
        errors.append("no workflow")
    for wf_name, wf in workflows.items():
        entries = {}
        for entry in wf.get("jobs", []):
            name, params = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            entries[params.get("name", name)] = (name, params or {})
        requires = {alias: list(params.get("requires", []))
                    for alias, (_, params) in entries.items()}
        for alias, (name, params) in entries.items():
            if name not in jobs and name.split("/")[0] not in orbs:
                errors.append(f"workflow {wf_name}: job {name} is not defined")
            for req in requires[alias]:
                if req not in entries:
                    errors.append(f"workflow {wf_name}: {alias} requires {req}, "
                                  "which is not in the workflow")
            if alias in _upstream(alias, requires):
                errors.append(f"workflow {wf_name}: {alias} depends on itself (cycle)")
        for alias, (name, params) in entries.items():
            job = jobs.get(name, {})
            up = _upstream(alias, requires)
            steps = _expanded_steps(config, job)
            attaches = any(_step_name(s) == "attach_workspace" for s in steps)
            if attaches and not any(
                    any(_step_name(s) == "persist_to_workspace"
                        for s in _expanded_steps(config, jobs.get(entries[u][0], {})))
                    for u in up if u in entries):
                errors.append(f"workflow {wf_name}: {alias} attaches a workspace that no "
                              "upstream job persists")
            tags = (params.get("filters") or {}).get("tags")
            if tags:
                for u in up:
                    if u in entries and not (entries[u][1].get("filters") or {}).get("tags"):
                        errors.append(f"workflow {wf_name}: {alias} runs on tags but requires "
                                      f"{u}, which has no tag filter (CircleCI never runs it)")
    return errors


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_committed_config_is_valid(config):
    assert validate_circleci(config) == []


def test_pipeline_shape(config):
    """Build once, test the built image twice, deploy it on tags only."""
    wf = config["workflows"]["build-test-deploy"]
    entries = {next(iter(e)) if isinstance(e, dict) else e:
               (e[next(iter(e))] if isinstance(e, dict) else {}) for e in wf["jobs"]}
    assert set(entries) == {"build", "unit-tests", "participant-group", "deploy"}
    assert entries["unit-tests"]["requires"] == ["build"]
    assert entries["participant-group"]["requires"] == ["build"]
    assert set(entries["deploy"]["requires"]) == {"unit-tests", "participant-group"}
    assert entries["deploy"]["filters"]["branches"]["ignore"] == "/.*/"
    tag_re = entries["deploy"]["filters"]["tags"]["only"].strip("/").replace("\\d", "[0-9]")
    assert re.fullmatch(tag_re, "v1.2.3") and re.fullmatch(tag_re, "0.1.0")
    assert not re.fullmatch(tag_re, "nightly")
    jobs = config["jobs"]
    build_cmds = " ".join(_run_commands(config, jobs["build"]))
    # One build script for both CI systems (`make container` calls it with buildah).
    assert "ENGINE=docker scripts/ci/build_container.sh full" in build_cmds
    assert "ENGINE=docker scripts/ci/build_container.sh core" in build_cmds
    assert "docker build" in (REPO / "scripts/ci/build_container.sh").read_text()
    assert "docker save" in build_cmds
    for name in ("unit-tests", "participant-group", "deploy"):
        cmds = " ".join(_run_commands(config, jobs[name]))
        assert "build_container.sh" not in cmds and "docker build" not in cmds, \
            f"{name} must reuse the built image"
        assert "docker load" in cmds


def test_participant_group_is_a_read_only_regression_check(config):
    cmds = "\n".join(_run_commands(config, config["jobs"]["participant-group"]))
    assert "--read-only" in cmds and "--tmpfs /tmp" in cmds and "HF_HUB_OFFLINE=1" in cmds
    assert "scripts/ci/run_levels.sh" in cmds
    assert "diff -u .circleci/expected_outputs.txt" in cmds
    # The image test `make test-container` runs, on both images, against the pip install.
    assert "ENGINE=docker PYTHON=/tmp/venv/bin/python" in cmds
    assert "scripts/ci/test_container.sh" in cmds and "ci-core" in cmds
    levels = (REPO / "scripts/ci/run_levels.sh").read_text()
    assert "participant --grader classifier" in levels and '"$out" group' in levels
    # The dataset CircleCI builds is the one the expected listing was made from.
    assert "demo_dataset ~/data/bids --voxel-size 3" in cmds
    assert "demo_dataset \"$tmp/bids\" --voxel-size 3" in \
        (REPO / "scripts/ci/expected_outputs.sh").read_text()


@pytest.mark.parametrize("breakage, expected", [
    (lambda c: c["jobs"].pop("unit-tests"), "job unit-tests is not defined"),
    (lambda c: c["workflows"]["build-test-deploy"]["jobs"][1]["unit-tests"].update(
        requires=["biuld"]), "requires biuld"),
    (lambda c: c["workflows"]["build-test-deploy"]["jobs"][0]["build"].pop("filters"),
     "which has no tag filter"),
    (lambda c: c["jobs"]["build"]["steps"].pop(), "no upstream job persists"),
    (lambda c: c["jobs"]["build"].update(executor="nope"), "unknown executor nope"),
    (lambda c: c["jobs"]["deploy"]["steps"].insert(0, "load-imag"), "unknown step"),
    (lambda c: c["jobs"]["build"]["steps"][1]["run"].update(command="if then fi"),
     "shell syntax"),
    (lambda c: c["jobs"]["participant-group"]["steps"][3]["run"].update(
        command="scripts/ci/missing.sh"), "scripts/ci/missing.sh does not exist"),
    (lambda c: c["workflows"]["build-test-deploy"]["jobs"][1]["unit-tests"].update(
        requires=["deploy"]), "cycle"),
])
def test_validator_catches_breakage(config, breakage, expected):
    broken = copy.deepcopy(config)
    breakage(broken)
    errors = validate_circleci(broken)
    assert any(expected in e for e in errors), errors


def test_image_name_matches_the_boutiques_descriptor(config):
    import json
    image = config["executors"]["docker-host"]["environment"]["IMAGE"]
    descriptor = json.loads((REPO / "boutiques" / "mmrqa.json").read_text())
    assert descriptor["container-image"]["image"].rsplit(":", 1)[0] == image

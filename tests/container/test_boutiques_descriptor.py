"""boutiques/mmrqa.json: valid for `bosh validate`, in step with the CLI parser, and the
command lines Boutiques generates from it are accepted by mmrqa."""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mmrqa_bids import __version__
from mmrqa_bids.cli.parser import build_parser

REPO = Path(__file__).resolve().parents[2]
DESCRIPTOR = REPO / "boutiques" / "mmrqa.json"


def _bosh(*args: str) -> subprocess.CompletedProcess:
    bosh = Path(sys.executable).with_name("bosh")
    if not bosh.exists():
        pytest.fail("bosh not found beside the interpreter: install the test extra "
                    "(PyPI boutiques), e.g. `make env-test`")
    return subprocess.run([str(bosh), *args], capture_output=True, text=True, timeout=120)


def _options() -> dict[str, argparse.Action]:
    """Long flag (first '--' spelling) -> action, for every option but --help/--version."""
    return {next(o for o in a.option_strings if o.startswith("--")): a
            for a in build_parser()._actions
            if a.option_strings and not isinstance(a, (argparse._HelpAction,
                                                       argparse._VersionAction))}


@pytest.fixture(scope="module")
def descriptor() -> dict:
    return json.loads(DESCRIPTOR.read_text())


def test_bosh_validate():
    proc = _bosh("validate", str(DESCRIPTOR))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bosh_validate_rejects_a_broken_descriptor(tmp_path, descriptor):
    broken = json.loads(json.dumps(descriptor))
    grader = next(i for i in broken["inputs"] if i["id"] == "grader")
    grader["default-value"] = "gpt"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    proc = _bosh("validate", str(path))
    assert proc.returncode != 0
    assert "default value outside its choices" in proc.stdout + proc.stderr


def test_descriptor_matches_parser(descriptor):
    assert descriptor["tool-version"] == __version__
    assert descriptor["container-image"]["image"].endswith(f":{__version__}")
    by_flag = {i["command-line-flag"]: i for i in descriptor["inputs"]
               if "command-line-flag" in i}
    options = _options()
    flags = {("-v" if isinstance(a, argparse._CountAction) else f): a
             for f, a in options.items()}
    missing = sorted(set(flags) - set(by_flag))
    unknown = sorted(set(by_flag) - set(flags))
    assert not missing, f"CLI options missing from {DESCRIPTOR.name}: {missing}"
    assert not unknown, f"{DESCRIPTOR.name} has options the CLI does not know: {unknown}"
    for flag, action in flags.items():
        item = by_flag[flag]
        if action.choices:
            assert item.get("value-choices") == list(action.choices), flag
        if "default-value" in item:
            assert item["default-value"] == action.default, flag
        if isinstance(action, (argparse._StoreTrueAction, argparse._CountAction)):
            assert item["type"] == "Flag", flag
        else:
            assert item["type"] != "Flag", flag
            assert bool(item.get("list")) == (action.nargs == "+"), flag
    positional = [a.dest for a in build_parser()._actions if not a.option_strings]
    tokens = descriptor["command-line"].split()
    assert tokens[0] == "mmrqa"
    assert tokens[1:4] == [f"[{d.upper()}]" for d in positional]


def test_generated_command_line_parses(tmp_path):
    invocation = {"bids_dir": "/data", "output_dir": "/out", "analysis_level": "participant",
                  "participant_label": ["01", "02"], "modalities": ["T1w", "bold"],
                  "nprocs": 2, "plugin": "SLURM", "plugin_args": "/cfg/slurm.json",
                  "no_reports": True, "verbose": True, "grader": "openai",
                  "llm_base_url": "http://vllm:8000/v1", "llm_model": "mmrqa-lora",
                  "holdout_fraction": 0.25}
    inv = tmp_path / "invocation.json"
    inv.write_text(json.dumps(invocation))
    proc = _bosh("exec", "simulate", "-i", str(inv), str(DESCRIPTOR))
    assert proc.returncode == 0, proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("mmrqa ")]
    assert line, proc.stdout
    args = build_parser().parse_args(shlex.split(line[0])[1:])
    assert (str(args.bids_dir), str(args.output_dir), args.analysis_level) == \
        ("/data", "/out", "participant")
    assert args.participant_label == ["01", "02"] and args.modalities == ["T1w", "bold"]
    assert (args.nprocs, args.plugin, str(args.plugin_args)) == (2, "SLURM", "/cfg/slurm.json")
    assert args.no_reports and args.verbose == 1
    assert (args.grader, args.llm_base_url, args.llm_model) == \
        ("openai", "http://vllm:8000/v1", "mmrqa-lora")
    assert args.holdout_fraction == 0.25

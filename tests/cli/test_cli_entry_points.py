"""Every console script lives under mmrqa_bids.cli, with a side-effect-free parser."""
import importlib
import tomllib
from pathlib import Path

import pytest

SCRIPTS = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
                        )["project"]["scripts"]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_home_and_help(name, capsys):
    module, func = SCRIPTS[name].split(":")
    assert module.startswith("mmrqa_bids.cli.") and func == "main"
    main = getattr(importlib.import_module(module), func)
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {name} ")


def test_parsers_are_named_after_their_scripts():
    for name, target in SCRIPTS.items():
        module = importlib.import_module(target.split(":")[0])
        parser = getattr(module, "build_parser", None) or importlib.import_module(
            "mmrqa_bids.cli.parser").build_parser
        assert parser().prog == name

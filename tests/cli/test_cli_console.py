"""The console: [prog] lines through logging, stdout/stderr by level, -v/-q."""
import logging

import pytest

from mmrqa_bids.cli.console import configure, level_for
from mmrqa_bids.cli.parser import build_parser


@pytest.mark.parametrize("verbosity, level", [(0, logging.INFO), (1, logging.DEBUG), (5, logging.DEBUG),
                                              (-1, logging.WARNING), (-2, logging.ERROR),
                                              (-9, logging.ERROR)])
def test_levels(verbosity, level):
    assert level_for(verbosity) == level


def test_lines_streams_and_quiet(capsys):
    log = logging.getLogger("mmrqa_bids.some.module")
    configure("mmrqa")
    log.debug("hidden")
    log.info("%d run(s) to assess", 3)
    log.warning("WARNING %s: unreadable", "x.json")
    log.error("ERROR: crashed")
    out, err = capsys.readouterr()
    assert out == "[mmrqa] 3 run(s) to assess\n[mmrqa] WARNING x.json: unreadable\n"
    assert err == "[mmrqa] ERROR: crashed\n"
    configure("mmrqa-mriqc", verbosity=-1, stderr_level=logging.WARNING)
    log.info("progress")
    log.warning("WARNING bad file; skipped")
    out, err = capsys.readouterr()
    assert out == "" and err == "[mmrqa-mriqc] WARNING bad file; skipped\n"
    consoles = [h for h in logging.getLogger("mmrqa_bids").handlers
                if type(h).__name__ == "_ConsoleHandler"]
    assert len(consoles) == 1  # reconfiguring replaces the console, never adds a second


def test_verbose_and_quiet_flags():
    args = build_parser().parse_args(["b", "o", "participant", "-qq", "-v"])
    assert (args.verbose, args.quiet) == (1, 2)

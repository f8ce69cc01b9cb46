"""Fixtures of the report tests (helpers in reports_helpers.py)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from reports_helpers import Browser, build_derivatives, chromium_path


@pytest.fixture(scope="session")
def derivatives(tmp_path_factory) -> Path:
    """A derivatives folder after the participant *and* group levels (read-only)."""
    from mmrqa_bids.group import run_group

    root = tmp_path_factory.mktemp("reports")
    out, work = root / "out", root / "work"
    work.mkdir()
    build_derivatives(out, work)
    run_group(out, ("T1w",), reports=True)
    return out


@pytest.fixture(scope="session")
def browser():
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set MMRQA_CHROMIUM); "
                    "`make test` installs it where apt works")
    profile = Path(tempfile.mkdtemp(prefix="mmrqa-chromium-"))
    b = Browser(exe, profile)
    try:
        b.send("Browser.getVersion", timeout=60)
    except RuntimeError as exc:
        b.close()
        pytest.skip(f"{exe} does not start headless here: {exc}")
    yield b
    b.close()
    shutil.rmtree(profile, ignore_errors=True)

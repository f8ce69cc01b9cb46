"""Helpers and fixtures of the report tests: a synthetic derivatives folder written with the
real report code, and a headless Chromium driven over the DevTools protocol (stdlib only).

Test modules import the fixtures they use from here (no conftest.py: a second module named
``conftest`` would shadow the top-level one that other tests import from)."""
from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.grading.base import LABELS
from mmrqa_bids.io import atomic_write_json
from mmrqa_bids.metrics import measure
from mmrqa_bids.derivatives import DerivativesLayout, derivative_document
from mmrqa_bids.reports import mosaics
from mmrqa_bids.reports.individual import write_individual

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "reports"
EVIL_NARRATIVE = "<script>window.__pwned = 1</script><b>bold?</b> & done"
EVIL_ACQ = "<img src=x onerror=window.__pwned=2>"


def phantom(shape=(40, 48, 40), noise=0.02, seed=0) -> np.ndarray:
    """An ellipsoidal 'head' (bright shell, darker core) in Rician noise."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    r = np.sqrt((grid[0] / 0.7) ** 2 + (grid[1] / 0.8) ** 2 + (grid[2] / 0.75) ** 2)
    clean = np.where(r < 0.85, 0.6, 0.0) + np.where((r >= 0.85) & (r < 1), 0.9, 0.0)
    return np.abs(clean + rng.normal(0, noise, shape) + 1j * rng.normal(0, noise, shape)).astype(np.float32) * 1000


def _grade(seed: int, evil: bool) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([2, 1, 1])
    label = LABELS[int(np.argmax(p))]
    narrative = {"classification": f"Grade {label} from the test fixture.",
                 "artifact": "No artifact stands out.", "analysis": "Usable."}
    if evil:
        narrative["classification"] = EVIL_NARRATIVE
    return {"label": label, "probabilities": dict(zip(LABELS, map(float, p))),
            "confidence": float(p.max()), "narrative": narrative,
            "artifacts": [{"type": "noise", "likelihood": 0.4}], "raw": None, "parse_error": None}


def build_derivatives(out: Path, work: Path, n_runs: int = 7) -> list[dict[str, Any]]:
    """Participant-level outputs for ``n_runs`` T1w runs (the last one with ``<script>`` in its
    narrative and an HTML tag in its file name) and one failed run; returns the documents."""
    docs, layout = [], DerivativesLayout(out)
    for i in range(n_runs):
        evil = i == n_runs - 1
        sub = f"{i + 1:02d}"
        name = f"sub-{sub}_acq-{EVIL_ACQ}_T1w" if evil else f"sub-{sub}_T1w"
        ents = {"subject": sub, **({"acquisition": EVIL_ACQ} if evil else {})}
        run = RunSpec(path=Path(f"/data/sub-{sub}/anat/{name}.nii.gz"), suffix="T1w",
                      datatype="anat", entities=ents)
        vol = phantom(noise=0.02 + 0.1 * (i == 0), seed=i)
        m = measure(vol, "T1w")
        pngs = {}
        for view in mosaics.VIEWS:
            pngs[view] = mosaics.report_mosaic(m.reference, m.head, view, tile=96)
        pngs["background"] = mosaics.background_mosaic(m.reference, m.head, tile=96)
        paths = {}
        for key, png in pngs.items():
            paths[key] = str(work / f"{i}_{key}.png")
            Path(paths[key]).write_bytes(png)
        record = {"run": run.to_dict(), "grade": _grade(i, evil), "metrics": m.metrics,
                  "checksum": f"sha256:{i:064d}", "shape": list(vol.shape), "zooms": [3.0] * 3,
                  "grader": {"backend": "classifier", "model_id": "test-model"},
                  "timings": {"measure": 0.1}}
        doc = derivative_document(record, {"grading": {"grader": "classifier"}})
        atomic_write_json(layout.run_json(run), doc)
        write_individual(layout.run_report(run.bids_name), doc, paths)
        docs.append(doc)
    atomic_write_json(layout.failure("sub-99_T1w"),
                      {"bids_name": "sub-99_T1w", "suffix": "T1w", "subject": "99",
                       "source": "/data/sub-99/anat/sub-99_T1w.nii.gz",
                       "error": "not a NIfTI <script>window.__pwned=3</script>"})
    return docs


# ---------------------------------------------------------------- headless Chromium (CDP)

def chromium_path() -> str | None:
    for name in (os.environ.get("MMRQA_CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Browser:
    """Headless Chromium over ``--remote-debugging-pipe`` (fd 3 in, fd 4 out, NUL-separated
    JSON messages). Collects console errors, exceptions, dialogs and network requests."""

    def __init__(self, exe: str, profile: Path):
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               "--disable-default-apps", "--hide-scrollbars", "--mute-audio",
               f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        # The shell maps our stdin/stdout pipes onto the fds Chromium reads and writes.
        line = " ".join(f"'{c}'" for c in cmd) + " 3<&0 4>&1 </dev/null >/dev/null"
        self.proc = subprocess.Popen(["/bin/sh", "-c", "exec " + line], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._next = 0
        self._replies: dict[int, dict] = {}
        self._events: "queue.Queue[dict]" = queue.Queue()
        self.events: list[dict] = []
        self._cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(1 << 16)
            if not chunk:
                with self._cv:
                    self._cv.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cv:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cv.notify_all()

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30) -> dict:
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.proc.stdin.write(json.dumps(msg).encode() + b"\0")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._next not in self._replies:
                if self.proc.poll() is not None or not self._cv.wait(deadline - time.monotonic()):
                    raise RuntimeError(f"chromium: no reply to {method}")
            reply = self._replies.pop(self._next)
        if "error" in reply:
            raise RuntimeError(f"chromium: {method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, predicate, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cv:
            while True:
                for ev in self.events[seen:]:
                    if predicate(ev):
                        return ev
                seen = len(self.events)
                if not self._cv.wait(max(0.0, deadline - time.monotonic())) and time.monotonic() > deadline:
                    raise TimeoutError("chromium: event not seen")

    def open(self, url: str, width: int = 1280, height: int = 1000) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, target)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                         "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        page.mark = len(self.events)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_event(lambda e: e.get("sessionId") == session and e["method"] == "Page.loadEventFired")
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - already gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Page:
    def __init__(self, browser: Browser, session: str, target: str):
        self.browser, self.session, self.target, self.mark = browser, session, target, 0

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, session=self.session)

    def eval(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True})
        if "exceptionDetails" in res:
            raise RuntimeError(f"page exception: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"page: {expression} never became true")

    def _mine(self) -> list[dict]:
        return [e for e in self.browser.events[self.mark:] if e.get("sessionId") == self.session]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions, error log entries and opened dialogs."""
        out = []
        for e in self._mine():
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')} {p['exceptionDetails'].get('exception', {}).get('description', '')}")
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p.get('args', [])]}")
            elif e["method"] == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif e["method"] == "Page.javascriptDialogOpening":
                out.append(f"dialog: {p.get('message')}")
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self._mine()
                if e["method"] == "Network.requestWillBeSent"]

    def screenshot(self, path: Path) -> bytes:
        """Full-page PNG, saved as a test artefact."""
        self.eval("window.scrollTo(0, 0)")
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000), "scale": 1}
        png = base64.b64decode(self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True, "clip": clip})["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return png

    def click(self, selector: str) -> None:
        """A real mouse click (moved, pressed, released) in the middle of the element."""
        box = self.eval(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
            el.scrollIntoView({{block: 'center'}}); const r = el.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        self.mouse(*box)

    def mouse(self, x: float, y: float) -> None:
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                   "clickCount": 1})

    def type(self, selector: str, text: str) -> None:
        self.click(selector)
        self.send("Input.insertText", {"text": text})


def export_ratings(browser: Browser, page: Page, folder: Path,
                   name: str = "ratings_T1w.tsv", timeout: float = 10) -> Path:
    """Click the group report's *Export ratings TSV* with downloads sent to ``folder`` (made
    here) and return the downloaded file's path (it may be missing if nothing came in time)."""
    folder.mkdir()
    browser.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder),
                                                 "eventsEnabled": True})
    page.click("#export")
    target = folder / name
    deadline = time.monotonic() + timeout
    while not target.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    return target


# ---------------------------------------------------------------- fixtures

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

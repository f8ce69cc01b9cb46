"""The container image: build time, size per layer, start-up time, participant time per run.

Builds both flavours with scripts/ci/build_container.sh (buildah, the local Debian bases of
scripts/ci/container_base.sh, overlay storage where the kernel allows it, else vfs) and runs them with podman under the CI contract
(no network, read-only root, /tmp tmpfs, uid 12345), beside the host install (this Python).

    python benchmarks/container.py [--cold] [--voxel-size 2] [--repeats 3]

--cold first removes the cached bases (the rootfs tarball and the base images; the pip
wheels stay: their download depends on the network, not on the build), so the first build
includes debootstrap. The cold and "bases cached" builds run without buildah's layer cache
(the Dockerfile's two stages run in full); the last one is a rebuild of an unchanged tree
with it (what `make container` does again on overlay storage). Needs root, podman, buildah, runc, debootstrap (make container-tools).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CI = REPO / "scripts" / "ci"
CACHE = REPO / "build" / "container"
FLAVOURS = {"full": "localhost/mmrqa:latest", "core": "localhost/mmrqa:core"}
CONTRACT = ["run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
            "-u", "12345:12345"]
MB = 1e6


def container_env() -> dict[str, str]:
    """The environment scripts/ci/container_env.sh sets (podman/buildah configuration)."""
    out = subprocess.run(["bash", "-c", f". {shlex.quote(str(CI / 'container_env.sh'))} && env -0"],
                         capture_output=True, check=True).stdout.decode()
    return dict(line.split("=", 1) for line in out.split("\0") if "=" in line)


ENV = container_env()


def sh(*cmd, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=ENV, **kw)
    if check and proc.returncode:
        sys.exit(f"container benchmark: {' '.join(map(str, cmd))} failed:\n{proc.stderr[-3000:]}")
    return proc


def timed(*cmd, **kw) -> float:
    t0 = time.perf_counter()
    sh(*cmd, **kw)
    return time.perf_counter() - t0


def drop_bases() -> None:
    for image in (ENV["BASE_TORCH"], ENV["BASE_PYTHON"]):
        sh("podman", "rmi", "-f", image, check=False)
    for tar in (CACHE / "base").glob("rootfs-*.tar"):
        tar.unlink()


def build(flavour: str, layers: bool = False) -> float:
    """Wall time of scripts/ci/build_container.sh; without the layer cache unless `layers`."""
    env = dict(ENV, PYTHON=sys.executable, BUILD_LAYERS=str(layers).lower())
    t0 = time.perf_counter()
    proc = subprocess.run([str(CI / "build_container.sh"), flavour, FLAVOURS[flavour]],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"container benchmark: build {flavour} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def _instruction(created_by: str) -> str:
    """`|8 A=1 B=2 /bin/sh -c CMD` -> `RUN CMD`; `/bin/sh -c #(nop) COPY x` -> `COPY x`."""
    text = " ".join(created_by.split())
    if text.startswith("|") and " /bin/sh -c " in text:
        text = "/bin/sh -c " + text.split(" /bin/sh -c ", 1)[1]
    if text.startswith("/bin/sh -c #(nop) "):
        return text[len("/bin/sh -c #(nop) "):]
    if text.startswith("/bin/sh -c "):
        return "RUN " + text[len("/bin/sh -c "):]
    return text


def layers(image: str) -> list[tuple[float, str]]:
    """(size in MB, what made it) per layer, base first; metadata-only entries dropped.

    buildah bud without --layers commits a stage as one layer (its history names the stage's
    last instruction); with --layers (make container's default on overlay) a layer per step.
    """
    rows = json.loads(sh("podman", "history", "--format", "json", image).stdout)
    out = []
    for row in reversed(rows):
        size = float(row.get("size") or row.get("Size") or 0)
        if size <= 0:
            continue
        made = _instruction(row.get("CreatedBy") or row.get("createdBy") or "")
        comment = " ".join((row.get("Comment") or row.get("comment") or "").split())
        if made == "/bin/sh":  # buildah commit in scripts/ci/container_base.sh
            made = f"torch base: pip install torch ({comment})"
        elif made.startswith(("CMD", "ENTRYPOINT", "USER", "WORKDIR")):
            made = f"whole runtime stage in one layer ({comment})"
        out.append((size / MB, made[:100]))
    return out


def image_size(image: str) -> float:
    return float(sh("podman", "image", "inspect", "--format", "{{.Size}}", image).stdout) / MB


def startup(cmd: list[str], repeats: int) -> float:
    """Median wall time of `CMD --version` (cold caches are not forced: the median of warm runs)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sh(*cmd, "--version")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def participant_time(cmd: list[str], bids: str, out: str) -> float:
    t0 = time.perf_counter()
    sh(*cmd, bids, out, "participant", "--nprocs", "1", "--no-reports")
    return time.perf_counter() - t0


def measure_builds(cold: bool) -> dict[str, float]:
    builds = {}
    if cold:
        drop_bases()
        builds["full, cold (debootstrap + torch base + image)"] = build("full")
    builds["full, bases cached"] = build("full")
    builds["core, bases cached"] = build("core")
    if ENV["MMRQA_STORAGE_DRIVER"] == "overlay":  # make container's default there
        build("full", layers=True)
        builds["full, unchanged tree, layer cache"] = build("full", layers=True)
    return builds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="rebuild the bases first")
    parser.add_argument("--voxel-size", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-build", action="store_true",
                        help="measure the images already built (no build times)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("podman"):
        sys.exit("container benchmark: needs root and podman (make container-tools)")

    builds = {} if args.no_build else measure_builds(args.cold)

    host = [str(Path(sys.executable).with_name("mmrqa"))]
    start = {"host pip install": startup(host, args.repeats)}
    for flavour, image in FLAVOURS.items():
        start[f"podman run {flavour}"] = startup(["podman", *CONTRACT, image], args.repeats)

    with tempfile.TemporaryDirectory(prefix="mmrqa-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        bids = root / "bids"
        sh(sys.executable, "-m", "mmrqa_bids.testing.demo_dataset", bids,
           "--voxel-size", args.voxel_size)
        n_runs = len([p for p in bids.glob("sub-*/**/*.nii.gz")])
        per_run = {"host": participant_time(host, str(bids), str(root / "host")) / n_runs}
        for flavour, image in FLAVOURS.items():
            out = root / flavour
            out.mkdir(mode=0o777)
            out.chmod(0o777)
            cmd = ["podman", *CONTRACT, "-v", f"{bids}:/data:ro", "-v", f"{out}:/out", image]
            per_run[flavour] = participant_time(cmd, "/data", "/out") / n_runs

    print(f"mmrqa container benchmark ({os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; buildah {_version('buildah')}, "
          f"podman {_version('podman')}, {ENV['MMRQA_STORAGE_DRIVER']} storage, runc)")
    if builds:
        print("\nBuild wall time (pip installs from pre-downloaded wheels, no index):")
    for what, seconds in builds.items():
        print(f"  {what:<48} {seconds:7.1f} s")
    print("\nImage size (podman image inspect; uncompressed):")
    for flavour, image in FLAVOURS.items():
        print(f"  {flavour:<5} {image:<26} {image_size(image):8.0f} MB")
        for size, made in layers(image):
            print(f"        {size:8.0f} MB  {made}")
    print(f"\nStart-up, `--version`, median of {args.repeats}:")
    for what, seconds in start.items():
        print(f"  {what:<28} {seconds:6.2f} s")
    print(f"\nParticipant level, {n_runs} runs of the demo dataset at {args.voxel_size:g} mm, "
          "--nprocs 1 --no-reports, wall time per run (includes start-up):")
    for what, seconds in per_run.items():
        ratio = seconds / per_run["host"]
        print(f"  {what:<6} {seconds:6.2f} s/run   x{ratio:.2f} of the host")
    return 0


def _version(tool: str) -> str:
    """`buildah version 1.28.2 (image-spec ...)` -> 1.28.2."""
    words = sh(tool, "--version").stdout.split()
    return words[words.index("version") + 1] if "version" in words else " ".join(words)


if __name__ == "__main__":
    sys.exit(main())

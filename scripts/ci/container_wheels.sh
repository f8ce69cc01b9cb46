#!/usr/bin/env bash
# Download, on the build machine, every wheel the image build installs: the build tools,
# torch, and the dependencies of mmrqa[llm,train] (the core set is a subset). The image build
# then installs from this folder alone (--no-index), so it needs no network and no trust in
# the build machine's package index or TLS setup. Kept while pyproject.toml is unchanged.
#
#   PYTHON=.venv/bin/python scripts/ci/container_wheels.sh WHEEL_DIR
# $PYTHON's pip (and its configuration) does the downloading; it must be the same CPython
# minor version and platform as the base image (Debian bookworm: 3.11, x86_64).
set -euo pipefail
dir=${1:?usage: container_wheels.sh WHEEL_DIR}
# shellcheck source=container_env.sh source-path=SCRIPTDIR
. "$(dirname "$0")/container_env.sh"
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python3}
key="$(sha256sum "$repo/pyproject.toml" | cut -c1-16)-torch-$TORCH_VERSION"
if [ -f "$dir/.complete-$key" ]; then
    exit 0
fi
mkdir -p "$dir"
echo "container_wheels: downloading into $dir (key $key)" >&2
"${NICE[@]}" "$python" -m pip download --quiet --disable-pip-version-check --progress-bar off \
    --only-binary=:all: --dest "$dir" \
    "build==1.2.2.post1" "hatchling>=1.20" "torch==$TORCH_VERSION" "${repo}[llm,train]"
rm -f "$dir"/.complete-*
touch "$dir/.complete-$key"

#!/usr/bin/env bash
# Sourced by the container scripts: podman and buildah on a machine without a Docker daemon.
# Settings come from the two files beside this one (runc + cgroupfs, no default ulimits, vfs).
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
ci_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF="$ci_dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$ci_dir/storage.conf"
# Heavy steps yield to everything else on shared machines (vfs copies whole layers).
NICE=(nice -n 19 ionice -c3)
# Local base images: a Debian rootfs with a Python venv, and the same with CPU torch.
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
BASE_PYTHON=${BASE_PYTHON:-localhost/mmrqa-base/python:3-bookworm}
BASE_TORCH=${BASE_TORCH:-localhost/mmrqa-base/torch:${TORCH_VERSION}-cpu}

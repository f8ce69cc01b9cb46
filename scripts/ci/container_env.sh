#!/usr/bin/env bash
# Sourced by the container scripts: podman and buildah on a machine without a Docker daemon.
# Settings come from the files beside this one: containers.conf (runc + cgroupfs, no default
# ulimits) and storage-overlay.conf or storage-vfs.conf.
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
ci_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF="$ci_dir/containers.conf"

# overlay if the kernel mounts an overlayfs here (a container then starts in well under a
# second), else vfs (each container start copies the whole image: minutes for the full one).
# MMRQA_STORAGE_DRIVER=overlay|vfs forces one.
overlay_mounts() {
    local d ok=1
    d=$(mktemp -d) || return 1
    mkdir "$d/l" "$d/u" "$d/w" "$d/m"
    mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" 2>/dev/null \
        && { ok=0; umount "$d/m"; }
    rm -rf "$d"
    return "$ok"
}
if [ -z "${MMRQA_STORAGE_DRIVER:-}" ]; then
    if overlay_mounts; then MMRQA_STORAGE_DRIVER=overlay; else MMRQA_STORAGE_DRIVER=vfs; fi
fi
export MMRQA_STORAGE_DRIVER
export CONTAINERS_STORAGE_CONF="$ci_dir/storage-$MMRQA_STORAGE_DRIVER.conf"
# Heavy steps yield to everything else on shared machines (builds are CPU and disk heavy).
NICE=(nice -n 19 ionice -c3)
# Local base images: a Debian rootfs with a Python venv, and the same with CPU torch.
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
BASE_PYTHON=${BASE_PYTHON:-localhost/mmrqa-base/python:3-bookworm}
BASE_TORCH=${BASE_TORCH:-localhost/mmrqa-base/torch:${TORCH_VERSION}-cpu}
export TORCH_VERSION BASE_PYTHON BASE_TORCH

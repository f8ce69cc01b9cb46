#!/usr/bin/env bash
# Build the image from the project's Dockerfile: the full flavour (wheel with [llm,train] on a
# torch base) or the core one (no extras, no torch). Both CI systems call this.
#
#   scripts/ci/build_container.sh {full|core} TAG
#
# ENGINE=docker: `docker build` on the Dockerfile's pinned registry bases (CircleCI).
# ENGINE=buildah (default): where no Docker daemon or registry is reachable. The bases are
# the local Debian ones of scripts/ci/container_base.sh, and every RUN step installs from
# the wheels of scripts/ci/container_wheels.sh (a pip.conf and the wheel folder are mounted
# for the build only; nothing of them stays in the image): no package index is used (chroot
# isolation shares the host network namespace; pip is told --no-index).
# CACHE_DIR (default build/container) holds the rootfs, the wheels and that pip.conf.
# BUILD_LAYERS=true|false: buildah's layer cache (default: true on overlay storage).
set -euo pipefail
flavour=${1:?usage: build_container.sh full|core TAG}
tag=${2:?usage: build_container.sh full|core TAG}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=container_env.sh source-path=SCRIPTDIR
. "$here/container_env.sh"
engine=${ENGINE:-buildah}
cache=${CACHE_DIR:-$repo/build/container}

version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/mmrqa_bids/__about__.py")
args=(--build-arg "VERSION=$version"
      --build-arg "VCS_REF=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
      --build-arg "BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
case "$flavour" in
    full) ;;
    # The runtime stage on the plain Python base, without extras.
    core) args+=(--build-arg MMRQA_EXTRAS=) ;;
    *) echo "build_container: flavour must be full or core, not '$flavour'" >&2; exit 2 ;;
esac

case "$engine" in
    docker)
        if [ "$flavour" = core ]; then
            python_image=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$repo/Dockerfile")
            args+=(--build-arg "PYTORCH_IMAGE=$python_image")
        fi
        docker build --progress=plain "${args[@]}" --tag "$tag" "$repo"
        ;;
    buildah)
        PYTHON=${PYTHON:-$repo/.venv/bin/python} "$here/container_wheels.sh" "$cache/wheels"
        "$here/container_base.sh" "$cache/base" "$cache/wheels"
        printf '[global]\nno-index = true\nfind-links = /wheels\n' > "$cache/pip.conf"
        runtime_base=$BASE_TORCH
        [ "$flavour" = core ] && runtime_base=$BASE_PYTHON
        # A layer per instruction, reused while its inputs are unchanged (a rebuild of an
        # unchanged tree takes seconds); not on vfs, where every layer is a full copy.
        layers=${BUILD_LAYERS:-$([ "$MMRQA_STORAGE_DRIVER" = overlay ] && echo true || echo false)}
        # Docker's image format, as `docker build` writes it (OCI has no SHELL: buildah would
        # drop the Dockerfile's bash -o pipefail).
        "${NICE[@]}" buildah bud --format docker --isolation chroot --pull-never --layers="$layers" \
            --volume "$cache/wheels:/wheels:ro" --volume "$cache/pip.conf:/etc/pip.conf:ro" \
            --build-arg "PYTHON_IMAGE=$BASE_PYTHON" --build-arg "PYTORCH_IMAGE=$runtime_base" \
            "${args[@]}" --tag "$tag" "$repo"
        ;;
    *) echo "build_container: ENGINE must be docker or buildah, not '$engine'" >&2; exit 2 ;;
esac

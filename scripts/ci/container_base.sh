#!/usr/bin/env bash
# Make the local base images `make container` builds on, where no registry can be reached:
#   $BASE_PYTHON  Debian (debootstrap --variant=minbase, the mirror apt already uses) with
#                 python3 and a venv at /opt/python first on PATH (stands in for python:*-slim)
#   $BASE_TORCH   the same plus CPU torch $TORCH_VERSION (stands in for pytorch/pytorch:*-cuda)
# The rootfs tarball is cached in CACHE_DIR; an image already in storage is kept.
#
#   scripts/ci/container_base.sh CACHE_DIR WHEEL_DIR
# WHEEL_DIR holds torch and its dependencies (scripts/ci/container_wheels.sh); nothing is
# fetched from an index while the base is made.
set -euo pipefail
cache=${1:?usage: container_base.sh CACHE_DIR WHEEL_DIR}
wheels=${2:?usage: container_base.sh CACHE_DIR WHEEL_DIR}
# shellcheck source=container_env.sh source-path=SCRIPTDIR
. "$(dirname "$0")/container_env.sh"
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
wheels=$(cd "$wheels" && pwd)

# The Debian mirror and release apt uses on this machine (deb822 or one-line sources).
debian_mirror() {
    local files=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && files+=("$f")
    done
    [ "${#files[@]}" -gt 0 ] || return 0
    awk '/^URIs:/ {print $2} /^deb / {print ($2 ~ /^\[/ ? $3 : $2)}' "${files[@]}" \
        | grep -E '/debian/?$' | head -n 1 || true
}
# shellcheck disable=SC1091  # the build machine's own release file
release=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
mirror=${DEBIAN_MIRROR:-$(debian_mirror)}
[ -n "$release" ] && [ -n "$mirror" ] \
    || { echo "container_base: no Debian release/mirror found in /etc/os-release and the apt sources" >&2; exit 2; }

image_exists() { podman image exists "$1"; }

rootfs_tar="$cache/rootfs-$release-python.tar"
if ! image_exists "$BASE_PYTHON"; then
    if [ ! -s "$rootfs_tar" ]; then
        echo "container_base: debootstrap $release from $mirror" >&2
        root=$(mktemp -d "$cache/rootfs.XXXXXX")
        trap 'rm -rf "$root"' EXIT
        "${NICE[@]}" debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            "$release" "$root" "$mirror" > "$cache/debootstrap.log" 2>&1 \
            || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
        # A venv, because Debian's python3 is externally managed (PEP 668).
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" python3 -m venv /opt/python
        # mktemp made the folder 0700: the image's / must be traversable by any uid.
        chmod 0755 "$root"
        # Nothing of the build machine stays in the image: apt lists, caches, its resolv.conf.
        rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
            "$root"/var/log/* "$root"/etc/resolv.conf "$root"/etc/hostname
        "${NICE[@]}" tar --numeric-owner -C "$root" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"
        rm -rf "$root"
        trap - EXIT
    fi
    "${NICE[@]}" podman import \
        --change 'ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        "$rootfs_tar" "$BASE_PYTHON" >/dev/null
fi

if ! image_exists "$BASE_TORCH"; then
    echo "container_base: $BASE_TORCH (CPU torch $TORCH_VERSION from $wheels)" >&2
    ctr=$(buildah from --pull-never "$BASE_PYTHON")
    trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
    "${NICE[@]}" buildah run --isolation chroot --volume "$wheels:/wheels:ro" "$ctr" -- \
        pip install --no-cache-dir --no-index --find-links /wheels "torch==$TORCH_VERSION"
    buildah run --isolation chroot "$ctr" -- \
        python -c "import torch; print('torch', torch.__version__)"
    "${NICE[@]}" buildah commit --rm "$ctr" "$BASE_TORCH" >/dev/null
    trap - EXIT
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep mmrqa-base

#!/usr/bin/env bash
# Install Debian's buildah, podman, runc and debootstrap when missing (what `make container`
# uses where no Docker daemon runs). Quiet when they are there; non-zero with apt's message
# when they cannot be installed.
set -euo pipefail
need=()
for tool in buildah podman runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
[ "${#need[@]}" -eq 0 ] && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "install_container_tools: ${need[*]} missing and no apt-get" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; else SUDO=""; fi
echo "install_container_tools: missing ${need[*]}; installing them with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    buildah podman runc debootstrap >/dev/null

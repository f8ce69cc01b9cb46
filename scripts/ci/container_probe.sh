#!/usr/bin/env bash
# Can this machine build and run the image with podman? Exit 0 if so; otherwise print one
# line saying why and exit 1 (.ci/run then skips the container test with that line).
# The check is real: a two-file image (the host's /bin/sh and its libraries) is imported and
# run with the same settings the test uses, and the Debian mirror the base comes from answers.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=container_env.sh source-path=SCRIPTDIR
. "$here/container_env.sh"
why() { echo "$*"; exit 1; }
[ "$(id -u)" -eq 0 ] || why "not root: debootstrap and rootful podman need root"
for tool in buildah podman runc debootstrap tar; do
    command -v "$tool" >/dev/null 2>&1 || why "$tool is not installed (scripts/ci/install_container_tools.sh)"
done
podman info >/dev/null 2>&1 || why "podman info fails: $(podman info 2>&1 | tail -n 1)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; podman rmi -f localhost/mmrqa-probe:latest >/dev/null 2>&1' EXIT
mkdir -p "$tmp/root/bin"
cp /bin/sh "$tmp/root/bin/sh"
for lib in $(ldd /bin/sh | grep -o '/[^ ]*'); do
    mkdir -p "$tmp/root$(dirname "$lib")" && cp -L "$lib" "$tmp/root$lib"
done
tar -C "$tmp/root" -cf "$tmp/probe.tar" . || why "cannot pack the probe image"
podman import "$tmp/probe.tar" localhost/mmrqa-probe:latest >/dev/null 2>&1 \
    || why "podman import fails: $(podman import "$tmp/probe.tar" localhost/mmrqa-probe:latest 2>&1 | tail -n 1)"
out=$(podman run --rm --network none --read-only --tmpfs /tmp -u 12345:12345 \
      localhost/mmrqa-probe:latest /bin/sh -c 'echo ok' 2>&1)
[ "$out" = ok ] || why "podman run fails: $(echo "$out" | tail -n 1)"
if ! podman image exists "$BASE_PYTHON"; then
    mirror=$(awk '/^URIs:/ {print $2} /^deb / {print ($2 ~ /^\[/ ? $3 : $2)}' \
             /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
             | grep -E '/debian/?$' | head -n 1)
    [ -n "$mirror" ] || why "no Debian mirror in the apt sources to bootstrap the base from"
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=20)' \
        "${mirror%/}/dists/" >/dev/null 2>&1 || why "the Debian mirror $mirror does not answer"
fi
exit 0

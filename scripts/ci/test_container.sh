#!/usr/bin/env bash
# Test a built image against the host install (tests/container/test_image.py): participant
# and group runs compared run by run, --version/--help, a bad path, the train level offline,
# the entrypoint, and Boutiques. Both CI systems call this.
#
#   scripts/ci/test_container.sh IMAGE [PYTEST_ARGS...]
#
# ENGINE: the command that runs containers (default podman, with container_env.sh's settings;
# `docker` on CircleCI). PYTHON: the host install with the test extra (default .venv/bin/python).
set -euo pipefail
image=${1:?usage: test_container.sh IMAGE [PYTEST_ARGS...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=container_env.sh source-path=SCRIPTDIR
. "$here/container_env.sh"
cd "$repo"
MMRQA_TEST_IMAGE=$image MMRQA_CONTAINER_ENGINE=${ENGINE:-podman} "${NICE[@]}" \
    "${PYTHON:-$repo/.venv/bin/python}" -m pytest -p no:xdist -p no:cacheprovider -q -rs \
    --durations=0 "$@" tests/container/test_image.py

#!/usr/bin/env bash
# A sorted listing of the files under an mmrqa output folder, with run timestamps (and the
# microseconds and process id that follow them in settings file names) masked, so
# that two runs of the same command compare equal: the CircleCI regression check diffs it
# against .circleci/expected_outputs.txt.
#
#   scripts/ci/list_outputs.sh OUTPUT_DIR > listing.txt
set -euo pipefail
dir=${1:?usage: list_outputs.sh OUTPUT_DIR}
cd "$dir"
find . \( -type f -o -type l \) ! -name '.mmrqa-write-test*' \
    | sed -E -e 's|^\./||' -e 's/[0-9]{8}T[0-9]{6}(\.[0-9]+)?(_[0-9]+)?/<timestamp>/g' \
    | LC_ALL=C sort

#!/usr/bin/env bash
# Print the listing CircleCI's participant-group job must find, from a real local run of the
# same commands without Docker (same demo dataset, same levels, same options):
#
#   scripts/ci/expected_outputs.sh > .circleci/expected_outputs.txt
#
# $PYTHON (default python3) must import mmrqa_bids and nilearn (the [demo] extra).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m mmrqa_bids.testing.demo_dataset "$tmp/bids" --voxel-size 3 >&2
MMRQA="$python -m mmrqa_bids" "$here/run_levels.sh" "$tmp/bids" "$tmp/out" >&2
"$here/list_outputs.sh" "$tmp/out"

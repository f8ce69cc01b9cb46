#!/usr/bin/env bash
# Run the participant then the group level the way the CircleCI regression check does, with
# the command given in $MMRQA (default: `mmrqa`), e.g. a `docker run ... mmrqa:ci` prefix.
# BIDS_DIR and OUTPUT_DIR are paths as the command sees them.
#
#   MMRQA="python -m mmrqa_bids" scripts/ci/run_levels.sh BIDS_DIR OUTPUT_DIR
set -euo pipefail
bids=${1:?usage: run_levels.sh BIDS_DIR OUTPUT_DIR}
out=${2:?usage: run_levels.sh BIDS_DIR OUTPUT_DIR}
read -r -a mmrqa <<< "${MMRQA:-mmrqa}"
"${mmrqa[@]}" "$bids" "$out" participant --grader classifier --nprocs 2
"${mmrqa[@]}" "$bids" "$out" group

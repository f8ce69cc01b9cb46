#!/usr/bin/env bash
# mmrqa on a SLURM cluster, the BIDS-Apps way: one participant per array task, then the
# group level once every task has ended.
#
#   examples/slurm_array.sh BIDS_DIR OUTPUT_DIR [more mmrqa participant options...]
#
# Submits, from a login node:
#   1. an array job, one task per sub-* folder of BIDS_DIR (at most $MAX_PARALLEL running),
#      each `mmrqa BIDS_DIR OUTPUT_DIR participant --participant-label LABEL -w WORK/LABEL
#      --resume`: the work directory of each participant is kept on shared storage, so a
#      requeued task or a second submission reuses the steps that had finished;
#   2. the group level with --dependency=afterany on the array: a participant whose runs
#      failed (mmrqa exits 1; the failures are recorded in OUTPUT_DIR/logs) does not block
#      the group tables and report, which list what was graded.
#
# Environment (all optional):
#   MMRQA         the command that runs mmrqa on the compute nodes. Default: the Apptainer
#                 image $MMRQA_SIF with BIDS_DIR (read-only), OUTPUT_DIR and WORK_ROOT bound at
#                 the same paths. Examples: MMRQA=mmrqa (a venv on the nodes),
#                 MMRQA="python -m mmrqa_bids".
#   MMRQA_SIF     the image, built once with: apptainer build mmrqa.sif docker://mmrqa/mmrqa:VERSION
#   WORK_ROOT     per-participant work directories (default: OUTPUT_DIR/../mmrqa_work)
#   MAX_PARALLEL  array tasks running at once (default 50)
#   CPUS, MEM, TIME   per participant task (default 2, 8G, 02:00:00); --nprocs follows CPUS
#   SBATCH_ARGS   more sbatch options for both jobs, e.g. "--account=lab --partition=cpu"
#   GROUP_ARGS    more mmrqa options for the group level only
#
# For the LLM graders, start one vLLM server first and point every task at it, e.g.
#   examples/slurm_array.sh /data/bids /data/out --grader openai \
#       --llm-base-url http://gpu-node-01:8000/v1 --llm-model mmrqa
# (the key comes from MMRQA_LLM_API_KEY in the environment; see examples/scaling.md).
set -euo pipefail

stage=${MMRQA_STAGE:-submit}

mmrqa_cmd() {
    if [ -n "${MMRQA:-}" ]; then
        read -r -a cmd <<< "$MMRQA"
    else
        : "${MMRQA_SIF:?set MMRQA_SIF to the mmrqa Apptainer image, or MMRQA to a command}"
        cmd=(apptainer run --cleanenv --env "HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}"
             --env "MMRQA_LLM_API_KEY=${MMRQA_LLM_API_KEY:-}"
             -B "$BIDS_DIR:$BIDS_DIR:ro" -B "$OUTPUT_DIR" -B "$WORK_ROOT" "$MMRQA_SIF")
    fi
}

case "$stage" in
submit)
    if [ $# -lt 2 ]; then
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 2
    fi
    BIDS_DIR=$(cd "$1" && pwd)
    mkdir -p "$2"
    OUTPUT_DIR=$(cd "$2" && pwd)
    shift 2
    WORK_ROOT=${WORK_ROOT:-$(dirname "$OUTPUT_DIR")/mmrqa_work}
    mkdir -p "$WORK_ROOT" "$OUTPUT_DIR/logs/slurm"
    list="$WORK_ROOT/participants.txt"
    find "$BIDS_DIR" -mindepth 1 -maxdepth 1 -type d -name 'sub-*' -printf '%f\n' \
        | sed 's/^sub-//' | LC_ALL=C sort > "$list"
    n=$(wc -l < "$list")
    if [ "$n" -eq 0 ]; then
        echo "slurm_array.sh: no sub-* folder in $BIDS_DIR" >&2
        exit 2
    fi
    read -r -a extra_sbatch <<< "${SBATCH_ARGS:-}"
    export BIDS_DIR OUTPUT_DIR WORK_ROOT
    array=$(sbatch --parsable --job-name=mmrqa-participant \
        --array="1-${n}%${MAX_PARALLEL:-50}" \
        --cpus-per-task="${CPUS:-2}" --mem="${MEM:-8G}" --time="${TIME:-02:00:00}" \
        --output="$OUTPUT_DIR/logs/slurm/participant_%A_%a.out" \
        --export="ALL,MMRQA_STAGE=participant" "${extra_sbatch[@]}" "$0" "$@")
    array=${array%%;*}
    group=$(sbatch --parsable --job-name=mmrqa-group --dependency="afterany:${array}" \
        --cpus-per-task=1 --mem=4G --time=00:30:00 \
        --output="$OUTPUT_DIR/logs/slurm/group_%j.out" \
        --export="ALL,MMRQA_STAGE=group" "${extra_sbatch[@]}" "$0")
    group=${group%%;*}
    echo "participant array ${array} (${n} tasks), group job ${group}"
    echo "logs: $OUTPUT_DIR/logs/slurm/"
    ;;
participant)
    : "${SLURM_ARRAY_TASK_ID:?the participant stage runs as a SLURM array task}"
    label=$(sed -n "${SLURM_ARRAY_TASK_ID}p" "$WORK_ROOT/participants.txt")
    [ -n "$label" ] || { echo "no participant for task $SLURM_ARRAY_TASK_ID" >&2; exit 2; }
    mmrqa_cmd
    echo "task ${SLURM_ARRAY_TASK_ID}: sub-${label} on $(hostname)"
    exec "${cmd[@]}" "$BIDS_DIR" "$OUTPUT_DIR" participant --participant-label "$label" \
        --nprocs "${SLURM_CPUS_PER_TASK:-1}" -w "$WORK_ROOT/$label" --resume "$@"
    ;;
group)
    mmrqa_cmd
    read -r -a group_args <<< "${GROUP_ARGS:-}"
    exec "${cmd[@]}" "$BIDS_DIR" "$OUTPUT_DIR" group "${group_args[@]}"
    ;;
*)
    echo "slurm_array.sh: unknown MMRQA_STAGE=$stage" >&2
    exit 2
    ;;
esac

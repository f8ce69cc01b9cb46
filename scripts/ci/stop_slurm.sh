#!/usr/bin/env bash
# Stop the cluster started by scripts/ci/start_slurm.sh DIR (slurmd, slurmctld, munged),
# by the process ids recorded in DIR; waits until they are gone and removes the pid files.
set -uo pipefail
dir=${1:?usage: stop_slurm.sh DIR}
for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [ -s "$pidfile" ] || { rm -f "$pidfile"; continue; }
    pid=$(cat "$pidfile")
    if kill -TERM "$pid" 2>/dev/null; then
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
done
exit 0

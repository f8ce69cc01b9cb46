#!/usr/bin/env bash
# Install Debian's SLURM (controller, node daemon, client tools) and MUNGE when missing.
# Idempotent and quiet when everything is there; exits non-zero with apt's message otherwise.
set -euo pipefail
need=()
for tool in slurmctld slurmd sbatch squeue sacct scontrol munged; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ "${#need[@]}" -eq 0 ]; then
    exit 0
fi
echo "install_slurm: missing ${need[*]}; installing slurm-wlm and munge with apt-get" >&2
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n"
else
    SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg process instead of failing on its lock.
APT_OPTS=(-o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends)
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# slurmctld/slurmd postinst scripts try to start services: there is no init here, so
# policy-rc.d forbids it for the duration of the install (the test starts the daemons).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    created_policy=1
fi
trap '[ "$created_policy" = 1 ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get "${APT_OPTS[@]}" install slurm-wlm munge

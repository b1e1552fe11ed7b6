#!/usr/bin/env bash
# Install the system packages the tests and targets start for real, where they are missing and
# this user can (root with apt-get): PostgreSQL's server binaries, Slurm and munge, Chromium
# (the cluster explorer's tests and `make ui-check` drive it headless), and QEMU's user-mode
# emulator (the reference numerics are checked on an emulated Intel CPU).  Never fails the build:
# tests that need a package that could not be installed fail with a message naming it.
set -u
want=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if ! command -v initdb >/dev/null 2>&1 && [ -z "$pg_bin" ]; then want+=(postgresql); fi
if ! command -v slurmctld >/dev/null 2>&1; then want+=(slurm-wlm munge); fi
if ! command -v chromium >/dev/null 2>&1; then want+=(chromium); fi
if ! command -v qemu-x86_64 >/dev/null 2>&1; then want+=(qemu-user); fi
if [ ${#want[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-packages: missing ${want[*]} and cannot install them here (needs root and apt-get)" >&2
    exit 0
fi
echo "system-packages: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null \
    || echo "system-packages: apt-get could not install ${want[*]}" >&2
exit 0

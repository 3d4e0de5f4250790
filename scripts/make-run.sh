#!/usr/bin/env bash
# make-run.sh MAKE_PID MANIFEST IMAGE_DIR SMP ACCEL MEM [TIMEOUT [BOOT [CPU_MODEL]]]
# The body of `make run`: the harness picks the accelerator and the boot
# method (BOOT=auto|iso|pvh), builds the image for MANIFEST (the ISO, or
# only the initrd for pvh; build output on stderr), boots it, streams the
# serial console to make's stdout, and exits with the harness's status
# (0 PASS, 1 FAIL, 2 otherwise).
#
# The Makefile runs this while it is read, not as a recipe: GNU make reports
# every failed recipe as status 2, and CONTRACTS.md wants 1 for a FAIL
# verdict, which make can only give in question mode (see the Makefile).
set -uo pipefail
make_pid="$1" manifest="$2" image_dir="$3" smp="$4" accel="$5" mem="$6" timeout="${7:-}"
boot="${8:-auto}" cpu_model="${9:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"

# Make captures this script's stdout; reopen make's own stdout for the
# serial stream (append mode, so a redirected file is not clobbered).
# (The braces keep `2>/dev/null` from applying to the whole script: a bare
# `exec ... 2>/dev/null` would silence every later harness message.)
if ! { exec 3>>"/proc/$make_pid/fd/1"; } 2>/dev/null; then
    exec 3>&2
fi

make -C "$root" --no-print-directory prereqs >&2 || exit 2
args=(run --manifest "$manifest" --image-dir "$image_dir" --mkiso "$root/scripts/mkiso.sh"
    --smp "$smp" --accel "$accel" --mem "$mem" --boot "$boot" --cpu "$cpu_model")
[ -n "$timeout" ] && args+=(--timeout "$timeout")
"$root/target/release/harness" "${args[@]}" >&3

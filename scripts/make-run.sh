#!/usr/bin/env bash
# make-run.sh MAKE_PID MANIFEST IMAGE_DIR SMP ACCEL MEM [TIMEOUT]
# The body of `make run`: builds the ISO for MANIFEST (build output on
# stderr), boots it with the harness, streams the serial console to make's
# stdout, and exits with the harness's status (0 PASS, 1 FAIL, 2 otherwise).
#
# The Makefile runs this while it is read, not as a recipe: GNU make reports
# every failed recipe as status 2, and CONTRACTS.md wants 1 for a FAIL
# verdict, which make can only give in question mode (see the Makefile).
set -uo pipefail
make_pid="$1" manifest="$2" image_dir="$3" smp="$4" accel="$5" mem="$6" timeout="${7:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"

# Make captures this script's stdout; reopen make's own stdout for the
# serial stream (append mode, so a redirected file is not clobbered).
if ! exec 3>>"/proc/$make_pid/fd/1" 2>/dev/null; then
    exec 3>&2
fi

make -C "$root" --no-print-directory prereqs >&2 || exit 2
"$root/scripts/mkiso.sh" "$manifest" "$image_dir" >&2 || exit 2
args=(run --iso "$image_dir/os.iso" --smp "$smp" --accel "$accel" --mem "$mem")
[ -n "$timeout" ] && args+=(--timeout "$timeout")
"$root/target/release/harness" "${args[@]}" >&3

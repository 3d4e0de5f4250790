#!/usr/bin/env bash
# Builds every user program for x86_64-unknown-none (static, non-PIE, linked
# at 0x400000 by programs/user.ld) and copies each stripped binary to
# OUTDIR/<program-name>.
#
# Usage: scripts/build-programs.sh OUTDIR
#
# Cargo output goes to target/programs (PROGRAMS_TARGET_DIR overrides it),
# apart from the kernel's and the host tools' builds: the RUSTFLAGS below
# apply to every crate of this build, and sharing a target directory with
# builds that use other flags would rebuild everything each time. A
# CARGO_TARGET_DIR set in the environment is deliberately ignored.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$1"
outdir="$(cd "$1" && pwd)"
export CARGO_TARGET_DIR="${PROGRAMS_TARGET_DIR:-$root/target/programs}"

# -C relocation-model=static: x86_64-unknown-none links position-independent
#   executables by default; we want plain ET_EXEC at fixed addresses.
# No +sse: on x86_64-unknown-none (a soft-float target) adding
#   -C target-feature=+sse,+sse2 made LLVM lower the volatile 64-byte SQE
#   store in rt as byte stores of the even offsets only (odd bytes were
#   never written; seen with rustc 1.95). The prime sieve is integer code,
#   so the programs stay on the target's default features; see
#   docs/benchmarks.md for what that means for the native comparison.
#   (rt now also writes SQEs field by field, which avoids that lowering.)
rustflags="-C relocation-model=static -C link-arg=-T$root/programs/user.ld"


# Program name -> cargo package. The smoke package has one binary per
# program (every file in programs/smoke/src/bin); primes is its own package.
smoke_bins=$(cd "$root/programs/smoke/src/bin" && ls *.rs | sed 's/\.rs$//' | sort | tr '\n' ' ')

# The rules mkimage and the kernel apply (abi::elf::validate), checked early
# with readelf so a bad link shows up here: ET_EXEC, x86-64, every PT_LOAD at
# or above 0x400000, none writable and executable.
check_elf() {
    local f="$1"
    readelf -h "$f" | grep -q 'Type: *EXEC' || { echo "build-programs: $f is not ET_EXEC" >&2; exit 1; }
    readelf -h "$f" | grep -q 'Machine: *Advanced Micro Devices X86-64' ||
        { echo "build-programs: $f is not x86-64" >&2; exit 1; }
    local n=0 vaddr flags
    while read -r vaddr flags; do
        n=$((n + 1))
        if (( vaddr < 0x400000 )); then
            echo "build-programs: $f: segment below 0x400000 at $vaddr" >&2; exit 1
        fi
        if [[ $flags == *W*E* || $flags == *E*W* ]]; then
            echo "build-programs: $f: W+X segment at $vaddr" >&2; exit 1
        fi
    done < <(readelf -lW "$f" | awk '$1 == "LOAD" { print $3, $7 $8 }')
    (( n > 0 )) || { echo "build-programs: $f: no PT_LOAD segment" >&2; exit 1; }
}

cd "$root"
RUSTFLAGS="$rustflags" cargo build --release -q --target x86_64-unknown-none \
    -p primes -p smoke -p ringbench

bindir="$CARGO_TARGET_DIR/x86_64-unknown-none/release"
for prog in primes ringbench $smoke_bins; do
    if [ ! -f "$bindir/$prog" ]; then
        echo "build-programs: $bindir/$prog was not built" >&2
        exit 1
    fi
    objcopy --strip-all "$bindir/$prog" "$outdir/$prog"
    check_elf "$outdir/$prog"
done
echo "build-programs: $(echo primes ringbench $smoke_bins | wc -w) programs in $outdir"

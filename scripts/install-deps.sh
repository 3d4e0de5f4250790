#!/usr/bin/env bash
# Installs what the build needs on a Debian/Ubuntu machine: QEMU, GRUB's
# BIOS files and grub-mkrescue's helpers, and the Rust target. As root it
# installs them; otherwise it names the one command to run and fails.
set -euo pipefail

need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
command -v grub-mkrescue >/dev/null || need_pkgs+=(grub-common)
[ -d /usr/lib/grub/i386-pc ] || need_pkgs+=(grub-pc-bin)
command -v xorriso >/dev/null || need_pkgs+=(xorriso)
command -v mformat >/dev/null || need_pkgs+=(mtools)
command -v strip >/dev/null || need_pkgs+=(binutils)

if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "install-deps: installing ${need_pkgs[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
    else
        echo "install-deps: missing packages; run: sudo apt-get install -y ${need_pkgs[*]}" >&2
        exit 1
    fi
fi

# x2APIC under TCG needs QEMU 8.1 or later (docs/architecture/smp.md).
# Debian 12 ships 7.2; its backports carry 10.0. Upgrade where we can;
# elsewhere say so once: the harness then runs x2APIC smokes under KVM,
# or reports them as skipped.
qemu_old() {
    local v
    v=$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    [ -n "$v" ] || return 1
    set -- $v
    [ "$1" -lt 8 ] || { [ "$1" -eq 8 ] && [ "$2" -lt 1 ]; }
}
if qemu_old; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null &&
        grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
        echo "install-deps: QEMU older than 8.1 has no TCG x2APIC; installing qemu-system-x86 from bookworm-backports" >&2
        export DEBIAN_FRONTEND=noninteractive
        list=/etc/apt/sources.list.d/bookworm-backports.list
        grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ ||
            echo "deb http://deb.debian.org/debian bookworm-backports main" >"$list"
        if ! { apt-get update -qq >/dev/null &&
            apt-get install -y -qq -t bookworm-backports qemu-system-x86 >/dev/null; }; then
            echo "install-deps: backports QEMU failed; keeping $(qemu-system-x86_64 --version | head -1)" >&2
        fi
    else
        echo "install-deps: $(qemu-system-x86_64 --version | head -1) has no TCG x2APIC (8.1+ has): x2APIC smokes run under KVM or are skipped" >&2
    fi
fi

if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none; then
    echo "install-deps: adding the Rust target x86_64-unknown-none" >&2
    rustup target add x86_64-unknown-none >/dev/null || {
        echo "install-deps: run: rustup target add x86_64-unknown-none" >&2
        exit 1
    }
fi

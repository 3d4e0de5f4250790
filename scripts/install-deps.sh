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

if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none; then
    echo "install-deps: adding the Rust target x86_64-unknown-none" >&2
    rustup target add x86_64-unknown-none >/dev/null || {
        echo "install-deps: run: rustup target add x86_64-unknown-none" >&2
        exit 1
    }
fi

#!/usr/bin/env bash
# mkiso.sh MANIFEST OUTDIR [REPEAT]
# Builds OUTDIR/os.iso: the stripped kernel, the initrd compiled from
# MANIFEST (with the workload's repeat overridden when REPEAT is given) and
# a minimal GRUB. Expects `make prereqs` to have built the kernel, the
# programs (build/programs) and mkimage. Prints the ISO path.
# Test hook: MKISO_KERNEL_CMDLINE (words of [a-z0-9_=], e.g.
# "test_skip_ap=1", used by `harness test --cpu-hole`) is appended to the
# kernel's line in the ISO's grub.cfg; grub/grub.cfg itself is unchanged.
#
# The kernel and the initrd are left in OUTDIR/iso/boot/ (kernel, initrd):
# the PVH boot (BOOT=pvh) hands them to QEMU directly. With MKISO_SKIP_ISO=1
# only those two are built (no grub-mkrescue) and the initrd path is printed.
# MKISO_KERNEL_CMDLINE is also written to OUTDIR/iso/boot/cmdline, which the
# harness passes to a PVH boot as -append.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
manifest="$1"
out="$2"
repeat="${3:-}"
cmdline="${MKISO_KERNEL_CMDLINE:-}"
# Spelled out, not [a-z]: a range's meaning depends on the locale.
allowed='abcdefghijklmnopqrstuvwxyz0123456789_= '
if [ -n "${cmdline//[$allowed]/}" ]; then
    echo "mkiso.sh: MKISO_KERNEL_CMDLINE may hold only [a-z0-9_= ], got: $(printf %q "$cmdline")" >&2
    exit 1
fi

rm -rf "$out/iso"
mkdir -p "$out/iso/boot/grub"
args=(build "$manifest" --programs "$root/build/programs" -o "$out/iso/boot/initrd")
[ -n "$repeat" ] && args+=(--repeat "$repeat")
"$root/target/release/mkimage" "${args[@]}"
# Test hook (harness test --corrupt-initrd): flip one payload byte so the
# kernel's checksum check must refuse the initrd.
if [ -n "${MKISO_CORRUPT_INITRD:-}" ]; then
    printf '\377' | dd of="$out/iso/boot/initrd" bs=1 seek=40 conv=notrunc status=none
fi
cp "$root/build/kernel" "$out/iso/boot/kernel"
if [ -n "${cmdline// /}" ]; then
    printf '%s\n' "$cmdline" >"$out/iso/boot/cmdline"
fi
if [ -n "${MKISO_SKIP_ISO:-}" ]; then
    rm -f "$out/os.iso"
    echo "$out/iso/boot/initrd"
    exit 0
fi
cp "$root/grub/grub.cfg" "$out/iso/boot/grub/grub.cfg"
if [ -n "${cmdline// /}" ]; then
    cfg="$out/iso/boot/grub/grub.cfg"
    sed -i "s|^\([[:space:]]*multiboot2 /boot/kernel\)[[:space:]]*\$|\1 $cmdline|" "$cfg"
    grep -q "^[[:space:]]*multiboot2 /boot/kernel $cmdline\$" "$cfg" || {
        echo "mkiso.sh: no 'multiboot2 /boot/kernel' line in grub/grub.cfg to add the command line to" >&2
        exit 1
    }
fi
# Only the modules grub.cfg needs, no fonts, locales or themes: every MB
# costs seconds of boot under our KVM (DESIGN.md, known pitfalls).
grub-mkrescue -o "$out/os.iso" "$out/iso" \
    --install-modules="normal multiboot2 iso9660 biosdisk part_msdos configfile" \
    --fonts= --locales= --themes= >"$out/grub-mkrescue.log" 2>&1 || {
    cat "$out/grub-mkrescue.log" >&2
    exit 1
}
echo "$out/os.iso"

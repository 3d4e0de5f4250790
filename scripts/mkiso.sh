#!/usr/bin/env bash
# mkiso.sh MANIFEST OUTDIR [REPEAT]
# Builds OUTDIR/os.iso: the stripped kernel, the initrd compiled from
# MANIFEST (with the workload's repeat overridden when REPEAT is given) and
# a minimal GRUB. Expects `make prereqs` to have built the kernel, the
# programs (build/programs) and mkimage. Prints the ISO path.
#
# The kernel and the initrd are left in OUTDIR/iso/boot/ (kernel, initrd):
# the PVH boot (BOOT=pvh) hands them to QEMU directly. With MKISO_SKIP_ISO=1
# only those two are built (no grub-mkrescue) and the initrd path is printed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
manifest="$1"
out="$2"
repeat="${3:-}"

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
if [ -n "${MKISO_SKIP_ISO:-}" ]; then
    rm -f "$out/os.iso"
    echo "$out/iso/boot/initrd"
    exit 0
fi
cp "$root/grub/grub.cfg" "$out/iso/boot/grub/grub.cfg"
# Only the modules grub.cfg needs, no fonts, locales or themes: every MB
# costs seconds of boot under our KVM (DESIGN.md, known pitfalls).
grub-mkrescue -o "$out/os.iso" "$out/iso" \
    --install-modules="normal multiboot2 iso9660 biosdisk part_msdos configfile" \
    --fonts= --locales= --themes= >"$out/grub-mkrescue.log" 2>&1 || {
    cat "$out/grub-mkrescue.log" >&2
    exit 1
}
echo "$out/os.iso"

//! The Multiboot2 header, the PVH note and the 32-bit entry stubs.
//!
//! Two loaders can start the kernel (docs/architecture/boot.md):
//! - GRUB enters `_start` in 32-bit protected mode, paging off, with
//!   EAX = the Multiboot2 magic and EBX = the physical address of the boot
//!   information;
//! - a PVH loader (QEMU `-kernel`) finds `pvh_start` through the
//!   XEN_ELFNOTE_PHYS32_ENTRY note and enters it in the same mode with
//!   EBX = the physical address of `struct hvm_start_info` and no stack.
//!
//! Each entry checks its magic, then both join one path with the info
//! address in EDI and a protocol tag (`bootinfo::PROTOCOL_*`) in ESI: it
//! checks the CPU (long mode, NX), builds early page tables that
//! identity-map the first 4 GiB and map the first 1 GiB again at
//! KERNEL_BASE, turns on PAE, long mode, NX and paging, and jumps to the
//! higher-half [`super::entry::kernel_entry`] with the address in RDI and
//! the tag in RSI. On any failed check it prints a line on COM1 and halts:
//! nothing else can run without long mode.
//!
//! The early tables stay alive after boot: the AP trampoline uses them
//! (`BOOT_PML4`) to reach long mode before switching to the kernel's tables.

use core::arch::global_asm;

extern "C" {
    /// Physical address of the early PML4 (a linker symbol in low memory).
    static boot_pml4: u8;
}

/// Physical address of the early PML4 used by the boot and AP stubs.
pub fn boot_pml4_phys() -> u64 {
    // The boot section is linked at its physical address (VMA = LMA, low),
    // so the symbol's address is the physical address. Taking the address
    // of an extern static reads nothing.
    core::ptr::addr_of!(boot_pml4) as u64
}

global_asm!(
    r#"
    .section .multiboot2, "a"
    .balign 8
mb2_header_start:
    .long 0xe85250d6                 /* Multiboot2 header magic */
    .long 0                          /* architecture: i386 protected mode */
    .long mb2_header_end - mb2_header_start
    .long 0x100000000 - (0xe85250d6 + (mb2_header_end - mb2_header_start))
    .balign 8
    .short 0                         /* end tag */
    .short 0
    .long 8
mb2_header_end:

    /* The PVH entry (Xen public/elfnote.h, XEN_ELFNOTE_PHYS32_ENTRY = 18):
     * name "Xen", descriptor = the 32-bit physical address of pvh_start.
     * The descriptor is 8 bytes, as in Linux: QEMU reads a 64-bit ELF's
     * descriptor as a 64-bit word and keeps its low half. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                          /* namesz: "Xen\0" */
    .long 8                          /* descsz */
    .long 18                         /* type: XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_start
    .balign 4

    .section .boot.bss, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:      .skip 4096
boot_pdpt_low:  .skip 4096
boot_pdpt_high: .skip 4096
boot_pd:        .skip 4096 * 4       /* 4 GiB identity with 2 MiB pages */
boot_stack32:   .skip 4096
boot_stack32_top:

    .section .boot.rodata, "a"
    .balign 16
    .global boot_gdt64
boot_gdt64:
    .quad 0
    .quad 0x00af9a000000ffff         /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff         /* 0x10: data, DPL 0 */
boot_gdt64_end:
    .global boot_gdt64_ptr
boot_gdt64_ptr:
    .short boot_gdt64_end - boot_gdt64 - 1
    .long boot_gdt64
msg_no_mb2: .asciz "BOOT FAIL not loaded by a Multiboot2 loader\r\n"
msg_no_pvh: .asciz "BOOT FAIL PVH entry without the hvm_start_info magic\r\n"
msg_no_lm:  .asciz "BOOT FAIL CPU lacks long mode\r\n"
msg_no_nx:  .asciz "BOOT FAIL CPU lacks NX\r\n"

    .section .boot.text, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    mov esp, offset boot_stack32_top
    cmp eax, 0x36d76289              /* Multiboot2 boot magic (spec 3.3) */
    jne 1f
    mov edi, ebx                     /* keep the boot information address */
    mov esi, {proto_mb2}             /* and which protocol brought it */
    jmp boot_common

    /* PVH: EBX = physical address of struct hvm_start_info (Xen
     * public/arch-x86/hvm/start_info.h), whose first word is its magic.
     * No stack is given: take ours before anything else. */
    .global pvh_start
pvh_start:
    cli
    cld
    mov esp, offset boot_stack32_top
    cmp dword ptr [ebx], 0x336ec578  /* XEN_HVM_START_MAGIC_VALUE */
    jne 6f
    mov edi, ebx
    mov esi, {proto_pvh}

boot_common:

    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb 2f
    mov eax, 0x80000001
    cpuid
    test edx, 1 << 29                /* LM */
    jz 2f
    test edx, 1 << 20                /* NX */
    jz 3f

    /* Zero the early tables (7 pages). */
    push edi
    mov edi, offset boot_pml4
    xor eax, eax
    mov ecx, 4096 * 7 / 4
    rep stosd
    pop edi

    /* PML4[0] -> identity PDPT, PML4[511] -> high PDPT. */
    mov eax, offset boot_pdpt_low
    or eax, 3
    mov [boot_pml4], eax
    mov eax, offset boot_pdpt_high
    or eax, 3
    mov [boot_pml4 + 511 * 8], eax
    /* identity PDPT[0..4] -> the four PDs; high PDPT[510] -> PD 0. */
    mov eax, offset boot_pd
    or eax, 3
    mov [boot_pdpt_low], eax
    mov [boot_pdpt_high + 510 * 8], eax
    add eax, 4096
    mov [boot_pdpt_low + 8], eax
    add eax, 4096
    mov [boot_pdpt_low + 16], eax
    add eax, 4096
    mov [boot_pdpt_low + 24], eax
    /* 2048 PDEs of 2 MiB: present, writable, PS. */
    mov ecx, 0
4:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [boot_pd + ecx * 8], eax
    mov eax, ecx
    shr eax, 11
    mov [boot_pd + ecx * 8 + 4], eax
    inc ecx
    cmp ecx, 2048
    jb 4b

    mov eax, cr4
    or eax, 1 << 5                   /* PAE */
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax
    mov ecx, 0xc0000080              /* IA32_EFER */
    rdmsr
    or eax, (1 << 8) | (1 << 11)     /* LME | NXE */
    wrmsr
    mov eax, cr0
    or eax, (1 << 31) | (1 << 16) | (1 << 5) | 1 /* PG | WP | NE | PE */
    mov cr0, eax
    lgdt [boot_gdt64_ptr]
    push 0x08                        /* far return into the 64-bit code segment */
    mov eax, offset boot_long_mode
    push eax
    retf

1:  mov esi, offset msg_no_mb2
    jmp 9f
6:  mov esi, offset msg_no_pvh
    jmp 9f
2:  mov esi, offset msg_no_lm
    jmp 9f
3:  mov esi, offset msg_no_nx
9:  mov dx, 0x3f8 + 5                /* COM1 line status */
8:  in al, dx
    test al, 0x20
    jz 8b
    mov dx, 0x3f8
    lodsb
    test al, al
    jz 7f
    out dx, al
    jmp 9b
7:  cli
    hlt
    jmp 7b

    .code64
boot_long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov edi, edi                     /* zero-extend the boot information address */
    mov esi, esi                     /* and the protocol tag */
    movabs rax, offset kernel_entry_high
    jmp rax

    .text
    .global kernel_entry_high
kernel_entry_high:
    movabs rsp, offset {stack} + {stack_size}
    xor ebp, ebp
    call {kmain}
5:  cli
    hlt
    jmp 5b
"#,
    stack = sym super::entry::BOOT_STACK,
    stack_size = const super::entry::BOOT_STACK_SIZE,
    kmain = sym super::entry::kernel_entry,
    proto_mb2 = const super::bootinfo::PROTOCOL_MULTIBOOT2,
    proto_pvh = const super::bootinfo::PROTOCOL_PVH,
);

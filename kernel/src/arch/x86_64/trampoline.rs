//! The AP trampoline: how an application processor gets from the real
//! mode it wakes in (after INIT-SIPI-SIPI) to Rust on the kernel's tables.
//!
//! 1. [`install`] copies the 16-bit code below to [`TRAMPOLINE_PHYS`]
//!    (low memory, kept out of the frame allocator) and patches in the
//!    early PML4 (`boot_pml4`, which identity-maps low memory and maps the
//!    kernel image) and the 64-bit entry's address.
//! 2. The SIPI vector `TRAMPOLINE_PHYS >> 12` starts the AP at CS:IP =
//!    0x0800:0000. It loads its own GDT, enters protected mode, enables
//!    PAE, loads `boot_pml4`, sets EFER.LME|NXE and paging, and far-jumps
//!    into 64-bit code, still in low memory.
//! 3. It jumps to [`ap_entry64`] in the higher-half kernel text, which
//!    loads the kernel's CR3, takes the stack the boot CPU published in
//!    `AP_BOOT_STACK` (with an atomic exchange, so a late AP that finds no
//!    stack halts instead of sharing one), and calls [`ap_rust_entry`]
//!    with the CPU index stored just above that stack's top.
//!
//! The boot CPU starts APs one at a time (crate::smp), so one published
//! stack at a time is enough.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use super::boot::boot_pml4_phys;

/// Where the trampoline runs: page 8 (0x8000), conventional memory below
/// the EBDA, inside the low 1 MiB the frame allocator never hands out.
pub const TRAMPOLINE_PHYS: u64 = 0x8000;
/// The SIPI vector: the trampoline's page number.
pub const SIPI_VECTOR: u8 = (TRAMPOLINE_PHYS >> 12) as u8;

/// The kernel PML4 an AP loads first thing in 64-bit mode.
static AP_KERNEL_CR3: AtomicU64 = AtomicU64::new(0);
/// The stack the next AP takes (0 = none published). The CPU index sits
/// at `[stack + 8]`.
static AP_BOOT_STACK: AtomicU64 = AtomicU64::new(0);

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_trampoline_cr3: u8;
    static ap_trampoline_entry: u8;
}

fn addr(s: *const u8) -> u64 {
    s as u64
}

/// Copies the trampoline to low memory and fills in its parameters.
/// `kernel_cr3` is the physical address of the kernel PML4.
pub fn install(kernel_cr3: u64) {
    AP_KERNEL_CR3.store(kernel_cr3, Ordering::SeqCst);
    // Taking the addresses of the trampoline's labels reads nothing.
    let (start, end, cr3_slot, entry_slot) = (
        addr(core::ptr::addr_of!(ap_trampoline_start)),
        addr(core::ptr::addr_of!(ap_trampoline_end)),
        addr(core::ptr::addr_of!(ap_trampoline_cr3)),
        addr(core::ptr::addr_of!(ap_trampoline_entry)),
    );
    let len = end - start;
    assert!(len <= 4096, "AP trampoline larger than a page");
    let dst = crate::mm::phys_to_virt(TRAMPOLINE_PHYS);
    // The source is the trampoline's bytes in the kernel image; the patched
    // slots lie inside the copied range (their labels sit between start and
    // end), 8-aligned.
    // SAFETY: [TRAMPOLINE_PHYS, +4 KiB) is reserved low memory (never given
    // out by the frame allocator), direct-mapped, disjoint from the source.
    unsafe {
        super::cpu::copy_words(dst, start, len.next_multiple_of(8));
        core::ptr::write_volatile((dst + (cr3_slot - start)) as *mut u64, boot_pml4_phys());
        core::ptr::write_volatile(
            (dst + (entry_slot - start)) as *mut u64,
            ap_entry64 as *const () as u64,
        );
    }
}

/// Publishes a stack for the next AP: `stack_top` (16-aligned) of a stack
/// it may use, and the CPU index it will run as.
pub fn publish_stack(stack_top: u64, cpu_index: usize) {
    let slot = stack_top - 16;
    // SAFETY: `stack_top` is the end of a stack the caller owns and hands
    // to the AP; the two words below it are inside that stack.
    unsafe { core::ptr::write_volatile((slot + 8) as *mut u64, cpu_index as u64) };
    AP_BOOT_STACK.store(slot, Ordering::SeqCst);
}

/// Withdraws the published stack if no AP took it. Returns true when it
/// was withdrawn (no AP will use it), false when an AP already took it.
pub fn withdraw_stack() -> bool {
    AP_BOOT_STACK.swap(0, Ordering::SeqCst) != 0
}

/// The AP's first Rust code: on its boot stack, kernel tables loaded,
/// interrupts off, no GDT/IDT/GS of its own yet.
extern "C" fn ap_rust_entry(cpu_index: u64) -> ! {
    crate::smp::ap_start(cpu_index as usize)
}

extern "C" {
    fn ap_entry64();
}

// AT&T syntax: the Intel parser rejects label differences in memory operands.
global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .balign 16
    .global ap_trampoline_start
ap_trampoline_start:
    .code16
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    lgdtl ({tramp} + ap_tr_gdt_ptr - ap_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    /* ljmpl $0x08, $ap_tr_pm32 (operand-size prefix: 32-bit offset) */
    .byte 0x66, 0xea
    .long {tramp} + ap_tr_pm32 - ap_trampoline_start
    .short 0x08

    .code32
ap_tr_pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $(1 << 5), %eax              /* PAE */
    movl %eax, %cr4
    movl ({tramp} + ap_trampoline_cr3 - ap_trampoline_start), %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx           /* IA32_EFER */
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax /* LME | NXE */
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | (1 << 5) | 1), %eax /* PG | WP | NE | PE */
    movl %eax, %cr0
    /* ljmp $0x18, $ap_tr_lm64 */
    .byte 0xea
    .long {tramp} + ap_tr_lm64 - ap_trampoline_start
    .short 0x18

    .code64
ap_tr_lm64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movq ({tramp} + ap_trampoline_entry - ap_trampoline_start), %rax
    jmpq *%rax

    .balign 8
ap_tr_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff         /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff         /* 0x10: data */
    .quad 0x00af9a000000ffff         /* 0x18: 64-bit code */
ap_tr_gdt_end:
ap_tr_gdt_ptr:
    .short ap_tr_gdt_end - ap_tr_gdt - 1
    .long {tramp} + ap_tr_gdt - ap_trampoline_start
    .balign 8
    .global ap_trampoline_cr3
ap_trampoline_cr3:
    .quad 0
    .global ap_trampoline_entry
ap_trampoline_entry:
    .quad 0
    .global ap_trampoline_end
ap_trampoline_end:

    .text
    .global ap_entry64
ap_entry64:
    movq {cr3}(%rip), %rax
    movq %rax, %cr3
    xorl %eax, %eax
    xchgq %rax, {stack}(%rip)
    testq %rax, %rax
    jz 2f
    movq %rax, %rsp
    movq 8(%rsp), %rdi
    xorl %ebp, %ebp
    call {rust_entry}
2:
    cli
    hlt
    jmp 2b
"#,
    tramp = const TRAMPOLINE_PHYS,
    cr3 = sym AP_KERNEL_CR3,
    stack = sym AP_BOOT_STACK,
    rust_entry = sym ap_rust_entry,
    options(att_syntax)
);

//! Thin, safe wrappers around single CPU instructions and registers.
//!
//! Everything else in the kernel reaches the processor through these (or
//! through the other `arch` modules); no other module uses `asm!`.

use core::arch::asm;

/// Reads the time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc only reads the TSC into EDX:EAX; CR4.TSD is clear.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Whether interrupts are enabled (RFLAGS.IF).
#[inline(always)]
pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: pushfq/pop reads RFLAGS into a register and touches only the stack.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags & (1 << 9) != 0
}

/// Disables interrupts.
#[inline(always)]
pub fn cli() {
    // SAFETY: clearing IF cannot break memory safety; callers restore it.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// Enables interrupts.
#[inline(always)]
pub fn sti() {
    // SAFETY: the IDT is loaded before the first sti, so every interrupt has a handler.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Enables interrupts and halts until the next one, atomically: an
/// interrupt pending at `sti` is taken after `hlt` starts (the STI shadow),
/// so no wakeup is lost between the caller's check and the halt.
#[inline(always)]
pub fn sti_hlt() {
    // SAFETY: as for `sti`; `hlt` only waits.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
}

/// Halts forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: cli; hlt stops this CPU; only an NMI can wake it, and we halt again.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Writes a byte to an I/O port.
#[inline(always)]
pub fn outb(port: u16, value: u8) {
    // SAFETY: the kernel owns the legacy devices it drives (COM1, PIC, PIT,
    // isa-debug-exit); callers name only those ports.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a byte from an I/O port.
#[inline(always)]
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a 32-bit value to an I/O port.
#[inline(always)]
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a model-specific register.
#[inline(always)]
pub fn rdmsr(msr: u32) -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: the kernel reads only architectural MSRs it knows exist.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes a model-specific register.
///
/// # Safety
/// The write must not break an invariant the kernel relies on (GS base,
/// EFER, syscall MSRs are set once by their owners).
#[inline(always)]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller upholds the MSR's invariants (function contract).
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    };
}

/// A full memory fence (`mfence`): every earlier load and store,
/// including uncached MMIO writes, completes before any later one and
/// before a later WRMSR to IA32_TSC_DEADLINE (SDM vol. 3A 11.5.4.1).
#[inline(always)]
pub fn mfence() {
    // SAFETY: mfence only orders memory accesses.
    unsafe { asm!("mfence", options(nostack, preserves_flags)) };
}

/// Whether the TSC is invariant (CPUID.80000007H:EDX bit 8): constant
/// rate across P-, C- and T-states.
pub fn invariant_tsc() -> bool {
    cpuid(0x8000_0000, 0)[0] >= 0x8000_0007 && cpuid(0x8000_0007, 0)[3] & (1 << 8) != 0
}

/// Runs CPUID.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Reads CR2 (the faulting address of the last #PF).
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reads CR3.
pub fn cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Loads CR3.
///
/// # Safety
/// `pml4_phys` must be a complete PML4 whose kernel half maps the running
/// kernel exactly as the current one does.
pub unsafe fn write_cr3(pml4_phys: u64) {
    // SAFETY: guaranteed by the caller (function contract).
    unsafe { asm!("mov cr3, {}", in(reg) pml4_phys, options(nostack, preserves_flags)) };
}

/// Invalidates one page's TLB entry on this CPU.
pub fn invlpg(addr: u64) {
    // SAFETY: invlpg only drops a cached translation.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

/// MSR numbers (Intel SDM vol. 4).
pub mod msr {
    /// IA32_EFER.
    pub const EFER: u32 = 0xc000_0080;
    /// IA32_STAR: syscall segment selectors.
    pub const STAR: u32 = 0xc000_0081;
    /// IA32_LSTAR: 64-bit syscall entry.
    pub const LSTAR: u32 = 0xc000_0082;
    /// IA32_FMASK: RFLAGS bits cleared on syscall.
    pub const FMASK: u32 = 0xc000_0084;
    /// IA32_FS_BASE.
    pub const FS_BASE: u32 = 0xc000_0100;
    /// IA32_GS_BASE.
    pub const GS_BASE: u32 = 0xc000_0101;
    /// IA32_KERNEL_GS_BASE: swapped with GS_BASE by swapgs.
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    /// IA32_APIC_BASE.
    pub const APIC_BASE: u32 = 0x1b;
    /// IA32_TSC_DEADLINE: the local APIC timer fires when the TSC reaches it.
    pub const TSC_DEADLINE: u32 = 0x6e0;
}

/// CR0.MP: `wait`/`fwait` honour CR0.TS.
const CR0_MP: u64 = 1 << 1;
/// CR0.EM: x87 emulation (must be clear for SSE).
const CR0_EM: u64 = 1 << 2;
/// CR0.NE: report x87 errors as #MF (vector 16), not through the legacy
/// FERR# pin (IRQ 13 through the PIC), SDM vol. 3A 2.5.
const CR0_NE: u64 = 1 << 5;
/// CR0.WP: supervisor writes honour read-only pages.
const CR0_WP: u64 = 1 << 16;
/// CR4.OSFXSR: fxsave/fxrstor and SSE.
const CR4_OSFXSR: u64 = 1 << 9;
/// CR4.OSXMMEXCPT: unmasked SSE exceptions raise #XM (vector 19), not #UD.
const CR4_OSXMMEXCPT: u64 = 1 << 10;
/// CR4.UMIP: sgdt/sidt/sldt/str/smsw raise #GP outside ring 0.
const CR4_UMIP: u64 = 1 << 11;
/// CR4.SMEP: the kernel cannot execute user pages.
const CR4_SMEP: u64 = 1 << 20;
/// CPUID.(EAX=7,ECX=0):ECX bit 2: UMIP exists.
const CPUID7_ECX_UMIP: u32 = 1 << 2;
/// CPUID.(EAX=7,ECX=0):EBX bit 7: SMEP exists.
const CPUID7_EBX_SMEP: u32 = 1 << 7;

/// What [`enable_features`] turned on where it depends on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hardening {
    /// CR4.UMIP is set (the CPU has UMIP and the bit stuck).
    pub umip: bool,
    /// CPUID advertises UMIP (whether or not the bit could be set).
    pub umip_advertised: bool,
    /// CR4.SMEP is set.
    pub smep: bool,
}

/// Whether CPUID leaf 7 exists (a CPU without it has neither SMEP nor UMIP).
fn has_leaf7() -> bool {
    cpuid(0, 0)[0] >= 7
}

fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effect.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effect.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Turns on what the kernel needs in CR0/CR4/EFER on this CPU: SSE for
/// user programs (OSFXSR, OSXMMEXCPT; EM clear, MP set), x87 errors as
/// #MF (NE), write protection, UMIP and SMEP where the CPU has them, NX and
/// SYSCALL. CR4.OSXSAVE stays off (xsave stops our KVM). Then loads a
/// clean FPU/SSE image, so nothing the firmware left pending survives.
/// docs/architecture/boot.md ("CPU hardening") says why each bit is set.
pub fn enable_features() -> Hardening {
    let leaf7 = if has_leaf7() { cpuid(7, 0) } else { [0; 4] };
    let umip_advertised = leaf7[2] & CPUID7_ECX_UMIP != 0;
    let smep = leaf7[1] & CPUID7_EBX_SMEP != 0;
    let cr0 = (read_cr0() & !CR0_EM) | CR0_MP | CR0_NE | CR0_WP;
    let mut cr4 = read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT;
    if smep {
        cr4 |= CR4_SMEP; // the kernel never runs user code
    }
    if umip_advertised {
        cr4 |= CR4_UMIP;
    }
    // NE changes only how an x87 error is reported; the kernel runs no x87.
    // SAFETY: each bit enables a feature the boot stub checked (NX, long
    // mode), every x86-64 CPU has (SSE, FXSR, SYSCALL, NE, WP), or CPUID 7 advertised (SMEP, UMIP).
    unsafe {
        asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
        asm!("mov cr4, {}", in(reg) cr4, options(nostack, preserves_flags));
        let efer = rdmsr(msr::EFER);
        wrmsr(msr::EFER, efer | 1 | (1 << 11)); // SCE, NXE
    }
    super::fpu::load_clean();
    let cr4_now = read_cr4();
    Hardening {
        umip: cr4_now & CR4_UMIP != 0,
        umip_advertised,
        smep: cr4_now & CR4_SMEP != 0,
    }
}

/// Whether we run under KVM (CPUID hypervisor leaf signature "KVMKVMKVM").
/// Under our KVM (PVM) guest ring 0 is emulated and some instructions stop
/// the VM, so boot-time self-checks that trap in ring 0 skip it.
pub fn under_kvm() -> bool {
    if cpuid(1, 0)[2] & (1 << 31) == 0 {
        return false;
    }
    let r = cpuid(0x4000_0000, 0);
    r[1] == u32::from_le_bytes(*b"KVMK") && r[2] == u32::from_le_bytes(*b"VMKV")
}

/// Sets RFLAGS.TF and executes one `nop`: a single-step #DB in kernel mode,
/// which trap.rs must drop (clearing TF). A boot self-check of that path.
pub fn single_step_once() {
    // SAFETY: TF only makes the CPU raise #DB after the next instruction;
    // the #DB handler runs on its IST stack and clears TF in the frame it
    // returns through, so execution continues after the nop with TF clear.
    unsafe {
        asm!(
            "pushfq",
            "or qword ptr [rsp], 0x100",
            "popfq",
            "nop",
            "nop",
            options(nomem)
        );
    }
}

/// Whether CR0.NE is set on this CPU (x87 errors raise #MF).
pub fn x87_errors_native() -> bool {
    read_cr0() & CR0_NE != 0
}

/// Whether the CPU has 1 GiB pages.
pub fn has_1g_pages() -> bool {
    cpuid(0x8000_0001, 0)[3] & (1 << 26) != 0
}

/// Zeroes the 4 KiB page at kernel address `virt` with `rep stosq` (one
/// instruction: cheap where guest kernel code is emulated).
pub fn zero_page(virt: u64) {
    // SAFETY: callers pass a page-aligned direct-map address of a frame they own.
    unsafe {
        asm!("rep stosq", inout("rdi") virt => _, inout("rcx") 512u64 => _, in("rax") 0u64,
             options(nostack, preserves_flags))
    };
}

/// Copies `len_bytes` (a multiple of 8) from `src` to `dst` with `rep movsq`.
///
/// # Safety
/// Both ranges must be valid kernel memory that does not overlap.
pub unsafe fn copy_words(dst: u64, src: u64, len_bytes: u64) {
    // SAFETY: the caller guarantees valid, disjoint ranges.
    unsafe {
        asm!("rep movsq", inout("rdi") dst => _, inout("rsi") src => _, inout("rcx") len_bytes / 8 => _,
             options(nostack, preserves_flags))
    };
}

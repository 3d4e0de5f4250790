//! `hostile-trap`: privileged and trapping instructions from user mode.
//!
//! Each case (the first argument) runs one instruction or short sequence
//! that ring 3 must not get away with, or that must be harmless. The kernel
//! must print a FAULT line, end only this process, and go on with the next
//! program (manifests/smoke-hostile-trap.toml has one `[[program]]` per
//! case). A trapping case that survives its instruction exits with
//! [`SURVIVED`], which its manifest entry (`expect = "fault"`) turns into a
//! FAIL; a harmless case exits 0 after checking what it can.
//!
//! Five cases need a parent, because their right outcome depends on the
//! machine, while a manifest verdict must not:
//! - `umip` (console, spawner): runs `sgdt`, `sidt`, `sldt`, `str` and
//!   `smsw` as children. Where CPUID.(7,0):ECX[2] advertises UMIP, each
//!   must end Faulted with #GP (vector 13: the kernel turns CR4.UMIP on);
//!   where it does not, each must exit 0 (the instruction is allowed there,
//!   and the kernel says so once in its boot log).
//! - `sse` (console, spawner): runs `sse-div0` (an unmasked SSE
//!   zero-divide) as a child, which must end with #XM (vector 19). QEMU's
//!   TCG (7.2) never raises #XM: it only sets MXCSR.ZE, and the child
//!   reports that instead; the parent accepts it and says so. Under KVM
//!   user code runs on the real CPU and #XM is checked.
//! - `either` (console, spawner): `wrgsbase` and `mov-ds-tss` fault on
//!   TCG and real hardware but are allowed under our KVM, whose guest user
//!   code runs with the host's CR4 and GDT; each must fault or show it did
//!   no harm (a leaked GS base is a FAIL).
//! - `tcg-quirks` (console, spawner): `wbinvd`, `invd` and `into` as
//!   children, each of which must fault; QEMU 10's TCG alone lets them
//!   through as no-ops, accepted only where CPUID says TCG.
//! - `stub` (console, spawner): finds the kernel's syscall stub by jumping
//!   to each page from `KERNEL_BASE + 1 MiB` upward in a child (the stub
//!   opens the kernel text, at `KERNEL_BASE + __boot_end`,
//!   docs/architecture/boot.md): every other page must fault, and the stub
//!   must behave as a system call (DESIGN.md: "a user jump straight to the
//!   stub is just a system call with those registers"). Then the same jump
//!   with a non-canonical or kernel return RIP in RCX must fault, as must a
//!   jump into the middle of the stub.
#![no_std]
#![no_main]

use abi::caps::CapKind;
use abi::op::ExitKind;
use core::arch::asm;
use rt::{process, Args};
use smoke::{ensure, fail, need_cap, num, Ctx, Fail};

rt::entry!(main);

const NAME: &str = "hostile-trap";

/// Exit status of a case whose trapping instruction did not trap.
const SURVIVED: i64 = 7;
/// Exit status for an unknown case name.
const UNKNOWN_CASE: i64 = 2;

/// The kernel's link base (kernel/linker.ld, `KERNEL_BASE`).
const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;
/// The kernel image's boot part starts 1 MiB above the link base; the
/// kernel text (opened by the syscall stub) follows it, page-aligned.
const KERNEL_TEXT_SEARCH_FROM: u64 = KERNEL_BASE + 0x10_0000;
/// Pages searched for the stub (the boot part is far smaller than 1 MiB).
const STUB_SEARCH_PAGES: u64 = 256;
/// The direct map's base (docs/architecture/memory.md, `PHYS_OFFSET`).
const DIRECT_MAP: u64 = 0xffff_8000_0000_0000;
/// The first non-canonical address above the user half.
const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;
/// User code selector (RPL 3) and data selector, as the kernel's GDT has them.
const USER_CS: u64 = 0x23;
const USER_DS: u64 = 0x1b;
/// Kernel code and data selectors.
const KERNEL_CS: u64 = 0x08;
const KERNEL_DS: u64 = 0x10;
/// The TSS selector.
const TSS_SEL: u64 = 0x28;
/// RFLAGS.TF and RFLAGS.IOPL.
const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_IOPL3: u64 = 3 << 12;
/// QEMU's isa-debug-exit port: a write from user mode must not power off.
const ISA_DEBUG_EXIT_PORT: u16 = 0xf4;
/// Vectors the parents check.
const VECTOR_GP: i64 = 13;
const VECTOR_PF: i64 = 14;

/// Runs one trapping instruction (or sequence) on purpose.
macro_rules! insn {
    ($($t:tt)*) => {
        // SAFETY: a privileged or trapping instruction run on purpose; the
        // kernel must end this process at it, which is the test. Where it
        // is allowed, it changes no memory this program relies on.
        unsafe { asm!($($t)*) }
    };
}

fn main(a: &Args) -> i64 {
    match a.get(0) {
        None => {
            rt::println!("hostile-trap: name a case (see the module doc)");
            UNKNOWN_CASE
        }
        Some("umip") => smoke::run("hostile-trap-umip", a, umip_parent),
        Some("stub") => smoke::run("hostile-trap-stub", a, stub_parent),
        Some("sse") => smoke::run("hostile-trap-sse", a, sse_parent),
        Some("sse-div0") => sse_div0(),
        Some("either") => smoke::run("hostile-trap-either", a, either_parent),
        Some("tcg-quirks") => smoke::run("hostile-trap-tcg-quirks", a, tcg_quirks_parent),
        Some("wrgsbase") => wrgsbase(),
        Some("mov-ds-tss") => {
            insn!("mov ds, {0:x}", in(reg) TSS_SEL as u16);
            0
        }
        Some("stub-jump") => with_addr(a, stub_jump),
        Some("stub-badret") => with_addr(a, |s| stub_jump_ret(s, NON_CANONICAL)),
        Some("stub-kret") => with_addr(a, |s| stub_jump_ret(s, KERNEL_BASE)),
        Some(case) => {
            if let Some(r) = harmless(case) {
                return r;
            }
            if let Some(r) = umip_case(case) {
                return r;
            }
            if trapping(case) {
                SURVIVED
            } else {
                rt::println!("hostile-trap: unknown case {}", case);
                UNKNOWN_CASE
            }
        }
    }
}

fn with_addr(a: &Args, f: impl FnOnce(u64) -> i64) -> i64 {
    match a.get_u64(1) {
        Some(addr) => f(addr),
        None => UNKNOWN_CASE,
    }
}

/// The cases that must end the process. Returns false for an unknown name.
fn trapping(case: &str) -> bool {
    if privileged(case) || interrupts(case) || control_flow(case) || stack(case) {
        return true;
    }
    fpu(case)
}

/// Privileged instructions: #GP (or #UD) at CPL 3.
fn privileged(case: &str) -> bool {
    match case {
        "swapgs" => insn!("swapgs"),
        "cli" => insn!("cli"),
        "sti" => insn!("sti"),
        "hlt" => insn!("hlt"),
        "wrmsr" => insn!("wrmsr", in("ecx") 0xc000_0101u32, in("eax") 0u32, in("edx") 0u32),
        "rdmsr" => insn!("rdmsr", in("ecx") 0xc000_0082u32, out("eax") _, out("edx") _),
        "out-f4" => insn!("out dx, al", in("dx") ISA_DEBUG_EXIT_PORT, in("al") 0x10u8),
        "out-imm-f4" => insn!("out 0xf4, al", in("al") 0x10u8),
        "in-60" => insn!("in al, 0x60", out("al") _),
        "out-cf8" => insn!("out dx, eax", in("dx") 0xcf8u16, in("eax") 0x8000_0000u32),
        "outsb" => {
            let b = [0x10u8; 4];
            insn!("outsb", in("dx") ISA_DEBUG_EXIT_PORT, inout("rsi") b.as_ptr() => _);
        }
        "mov-cr3" => insn!("mov cr3, {}", in(reg) 0u64),
        "read-cr3" => insn!("mov {}, cr3", out(reg) _),
        "mov-cr0" => insn!("mov cr0, {}", in(reg) 0u64),
        "mov-cr4" => insn!("mov cr4, {}", in(reg) 0u64),
        "mov-dr7" => insn!("mov dr7, {}", in(reg) 0x3ffu64),
        "clts" => insn!("clts"),
        "lmsw" => insn!("lmsw {0:x}", in(reg) 0u16),
        "wbinvd" => insn!("wbinvd"),
        "invd" => insn!("invd"),
        "lgdt" => {
            let desc = [0u64; 2];
            insn!("lgdt [{}]", in(reg) desc.as_ptr());
        }
        "lidt" => {
            let desc = [0u64; 2];
            insn!("lidt [{}]", in(reg) desc.as_ptr());
        }
        "lldt" => insn!("lldt {0:x}", in(reg) 0u16),
        "ltr" => insn!("ltr {0:x}", in(reg) TSS_SEL as u16),
        "invlpg" => insn!("invlpg [{}]", in(reg) 0x40_0000u64),
        "rdpmc" => insn!("rdpmc", in("ecx") 0u32, out("eax") _, out("edx") _),
        "xsetbv" => insn!("xsetbv", in("ecx") 0u32, in("eax") 3u32, in("edx") 0u32),
        "sysret" => insn!("sysretq"),
        "sysexit" => insn!("sysexitq"),
        "sysenter" => insn!("sysenter"),
        "mov-ss-kernel" => insn!("mov ss, {0:x}", in(reg) KERNEL_DS as u16),
        "popf-iopl" => insn!(
            "pushfq",
            "or qword ptr [rsp], {iopl}",
            "popfq",
            "cli",
            iopl = in(reg) RFLAGS_IOPL3,
        ),
        _ => return false,
    }
    true
}

/// Software interrupts: every gate is DPL 0, so `int n` raises #GP (our
/// KVM: #UD); `int1` (icebp) raises #DB without a DPL check; `into` is
/// invalid in 64-bit mode (#UD).
fn interrupts(case: &str) -> bool {
    match case {
        "int80" => insn!("int 0x80"),
        "int2e" => insn!("int 0x2e"),
        "int3" => insn!("int3"),
        "int3-imm" => insn!(".byte 0xcd, 0x03"),
        "int1" => insn!(".byte 0xf1"),
        "int2" => insn!("int 2"),
        "int4" => insn!("int 4"),
        "int8" => insn!("int 8"),
        "int20" => insn!("int 0x20"),
        "intff" => insn!("int 0xff"),
        "into" => insn!(".byte 0xce"),
        "ud2" => insn!("ud2"),
        "tf-step" => insn!(
            "pushfq",
            "or qword ptr [rsp], {tf}",
            "popfq",
            "nop",
            "nop",
            tf = in(reg) RFLAGS_TF,
        ),
        _ => return false,
    }
    true
}

/// Control transfers into the kernel or to bad addresses.
fn control_flow(case: &str) -> bool {
    match case {
        "jump-kernel-image" => jump(KERNEL_TEXT_SEARCH_FROM),
        "jump-direct-map" => jump(DIRECT_MAP),
        "jump-top" => jump(0xffff_ffff_ffff_f000),
        "jump-noncanonical" => jump(NON_CANONICAL),
        "jump-noncanonical-high" => jump(0x8000_0000_0000_0000),
        "ret-noncanonical" => insn!("push {}", "ret", in(reg) NON_CANONICAL),
        "far-jmp-kernel" => {
            let target = far_pointer(KERNEL_CS);
            insn!("ljmpq *({})", in(reg) target.as_ptr(), options(att_syntax));
        }
        "far-call-kernel" => {
            let target = far_pointer(KERNEL_CS);
            insn!("lcallq *({})", in(reg) target.as_ptr(), options(att_syntax));
        }
        "lret-kernel" => insn!(
            "lea {t}, [rip + 2f]",
            "push {cs}",
            "push {t}",
            "retfq",
            "2:",
            t = out(reg) _,
            cs = in(reg) KERNEL_CS,
        ),
        "iretq-kernel" => iretq(KERNEL_CS, USER_DS, 0),
        "iretq-kernel-ss" => iretq(USER_CS, KERNEL_DS, 0),
        // iretq at CPL 3 leaves IOPL alone: the port write must still fault.
        "iretq-iopl" => {
            iretq(USER_CS, USER_DS, RFLAGS_IOPL3);
            insn!("out dx, al", in("dx") ISA_DEBUG_EXIT_PORT, in("al") 0x10u8);
        }
        _ => return false,
    }
    true
}

/// Jumps to `addr`.
fn jump(addr: u64) {
    insn!("jmp {}", in(reg) addr);
}

/// A far pointer in memory: 8-byte offset (here), then the selector. The
/// offset is below 4 GiB, so a CPU that reads m16:32 sees selector 0.
fn far_pointer(sel: u64) -> [u64; 2] {
    [0x40_0000, sel]
}

/// `iretq` through a frame with these selectors and extra RFLAGS bits,
/// to the next instruction.
fn iretq(cs: u64, ss: u64, extra_flags: u64) {
    insn!(
        "mov {save}, rsp",
        "push {ss}",
        "push {save}",
        "pushfq",
        "or qword ptr [rsp], {extra}",
        "push {cs}",
        "lea {t}, [rip + 2f]",
        "push {t}",
        "iretq",
        "2:",
        save = out(reg) _,
        t = out(reg) _,
        ss = in(reg) ss,
        cs = in(reg) cs,
        extra = in(reg) extra_flags,
    );
}

/// Stack pointers the kernel must not trust.
fn stack(case: &str) -> bool {
    match case {
        "rsp-kernel" => with_rsp(KERNEL_BASE),
        "rsp-direct-map" => with_rsp(DIRECT_MAP + 0x1000),
        "rsp-noncanonical" => with_rsp(NON_CANONICAL + 0x1000),
        "rsp-unmapped" => with_rsp(0x1000),
        // A system call with a kernel-half RSP: the kernel must not iretq
        // to it (trap::syscall ends the process instead).
        "rsp-kernel-syscall" => insn!(
            "mov {save}, rsp",
            "mov rsp, {bad}",
            "syscall",
            "mov rsp, {save}",
            save = out(reg) _,
            bad = in(reg) DIRECT_MAP + 0x1000,
            inout("rax") abi::SYS_CAP_ENTER => _,
            in("rdi") 0u64,
            in("rsi") 0u64,
            out("rcx") _,
            out("r11") _,
        ),
        _ => return false,
    }
    true
}

/// Loads RSP with `rsp` and pushes: the fault is delivered on the kernel
/// stack (TSS.RSP0), never on this one.
fn with_rsp(rsp: u64) {
    insn!(
        "mov {save}, rsp",
        "mov rsp, {bad}",
        "push rax",
        "mov rsp, {save}",
        save = out(reg) _,
        bad = in(reg) rsp,
    );
}

/// Floating-point errors: with CR0.NE an unmasked x87 error is #MF at the
/// next waiting instruction; an unmasked SSE error is #XM at once.
fn fpu(case: &str) -> bool {
    match case {
        "x87-div0" => {
            x87_pending_div0();
            insn!("fwait");
        }
        // The error stays pending across system calls and context switches
        // (the kernel's fxsave64/fxrstor64 never raise it) and fires at
        // this thread's fwait, in user mode.
        "x87-pending-fault" => {
            x87_pending_div0();
            for _ in 0..4 {
                rt::arch::cap_enter(1, 2_000_000);
            }
            insn!("fwait");
        }
        _ => return false,
    }
    true
}

/// Unmasks the x87 zero-divide exception and divides 1 by 0 without
/// waiting: the error is left pending in the status word.
fn x87_pending_div0() {
    insn!(
        "sub rsp, 8",
        "fninit",
        "fnstcw [rsp]",
        "and word ptr [rsp], 0xfffb", // clear ZM
        "fldcw [rsp]",
        "add rsp, 8",
        "fld1",
        "fldz",
        "fdivp",
    );
}

/// Exit status of `sse-div0` when no #XM came although MXCSR recorded the
/// unmasked zero-divide: the CPU (QEMU's TCG up to at least 7.2) does not
/// raise SSE exceptions.
const SSE_NO_XM: i64 = 8;
/// MXCSR.ZE: a zero-divide happened.
const MXCSR_ZE: u32 = 1 << 2;
/// Vector of #XM.
const VECTOR_XM: i64 = 19;

/// Divides 1.0 by 0.0 with the SSE zero-divide exception unmasked: #XM.
fn sse_div0() -> i64 {
    let mut mxcsr: u32 = 0;
    insn!(
        "sub rsp, 8",
        "mov dword ptr [rsp], 0x1d80", // 0x1f80 with ZM (bit 9) clear
        "ldmxcsr [rsp]",
        "mov eax, 0x3f800000", // 1.0f
        "movd xmm0, eax",
        "xorps xmm1, xmm1",
        "divss xmm0, xmm1",
        "stmxcsr [rsp]",
        "mov {mx:e}, dword ptr [rsp]",
        "add rsp, 8",
        mx = out(reg) mxcsr,
        out("eax") _,
    );
    if mxcsr & MXCSR_ZE != 0 {
        SSE_NO_XM
    } else {
        SURVIVED
    }
}

/// `sse-div0` as a child: it must end with #XM (vector 19), or, on a CPU
/// that does not raise SSE exceptions at all, report that it could not.
fn sse_parent(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    let r = child_outcome(spawner, &["sse-div0"])?;
    if r == (ExitKind::Exited, SSE_NO_XM) {
        rt::println!(
            "hostile-trap: this CPU records an unmasked SSE zero-divide without raising #XM (QEMU TCG); #XM not exercised"
        );
        return Ok(());
    }
    ensure!(
        r == (ExitKind::Faulted, VECTOR_XM),
        "sse-div0 ended {:?}, want fault 19",
        r
    );
    rt::println!("hostile-trap: unmasked SSE zero-divide ended the process with #XM");
    Ok(())
}

/// `wrgsbase rax` (F3 REX.W 0F AE /3) with a kernel-half value. The guest
/// kernel leaves CR4.FSGSBASE off, so this is #UD on TCG and real
/// hardware; under our KVM (PVM) user code runs with the host's CR4 and it
/// works. Then the kernel must not be fooled: a kernel-half user GS base
/// must not be taken for the kernel's in its paranoid (NMI, #DB, #MC)
/// entries, nor leak to the next thread. Survivors block in the kernel a
/// few times and spin so that interrupts land in user mode, then exit 0.
fn wrgsbase() -> i64 {
    insn!(".byte 0xf3, 0x48, 0x0f, 0xae, 0xd8", in("rax") DIRECT_MAP);
    for _ in 0..4 {
        rt::arch::cap_enter(1, 2_000_000);
        let t0 = rt::arch::rdtsc();
        while rt::arch::rdtsc().wrapping_sub(t0) < 20_000_000 {
            core::hint::spin_loop();
        }
    }
    0
}

/// `rdgsbase rax` (F3 REX.W 0F AE /1); #UD where FSGSBASE is off.
fn rdgsbase() -> u64 {
    let v: u64;
    insn!(".byte 0xf3, 0x48, 0x0f, 0xae, 0xc8", out("rax") v);
    v
}

/// Cases whose instruction faults on TCG and real hardware but is allowed
/// under our KVM (PVM), where guest user code runs in the host's ring 3
/// with the host's CR4 and GDT: each must fault with its vector or exit 0
/// after showing that it did no harm.
fn either_parent(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    for (case, vector) in [("wrgsbase", 6), ("mov-ds-tss", VECTOR_GP)] {
        let r = child_outcome(spawner, &[case])?;
        if r == (ExitKind::Faulted, vector) {
            continue;
        }
        ensure!(
            r == (ExitKind::Exited, 0),
            "{} ended {:?}, want fault {} or a harmless exit 0",
            case,
            r,
            vector
        );
        rt::println!(
            "hostile-trap: {} is allowed on this CPU (host ring 3 under a hypervisor)",
            case
        );
        if case == "wrgsbase" {
            // rdgsbase works here too. The child's GS base must not have
            // followed this process: the kernel resets it on every switch.
            let gs = rdgsbase();
            ensure!(gs == 0, "GS base {:#x} leaked from a dead child", gs);
        }
    }
    Ok(())
}

/// `wbinvd`, `invd` (#GP) and `into` (#UD in 64-bit mode) must fault.
/// QEMU 10's TCG lets all three through from ring 3 as no-ops (QEMU 7.2
/// trapped them); where CPUID leaf 0x4000_0000 says the CPU is QEMU's
/// TCG, a child that survived is accepted and reported, never elsewhere.
fn tcg_quirks_parent(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    let tcg = under_qemu_tcg();
    for (case, vector) in [("wbinvd", VECTOR_GP), ("invd", VECTOR_GP), ("into", 6)] {
        let r = child_outcome(spawner, &[case])?;
        if r == (ExitKind::Faulted, vector) {
            continue;
        }
        ensure!(
            tcg && r == (ExitKind::Exited, SURVIVED),
            "{} ended {:?}, want fault {}",
            case,
            r,
            vector
        );
        rt::println!(
            "hostile-trap: {} is not trapped from ring 3 by this QEMU's TCG (an emulator gap, no effect)",
            case
        );
    }
    Ok(())
}

/// Whether the hypervisor CPUID leaf names QEMU's TCG ("TCGTCGTCGTCG").
fn under_qemu_tcg() -> bool {
    // Leaf 0x4000_0000 is only meaningful with the hypervisor bit set.
    if core::arch::x86_64::__cpuid(1).ecx & (1 << 31) == 0 {
        return false;
    }
    let l = core::arch::x86_64::__cpuid(0x4000_0000);
    let tcg = u32::from_le_bytes(*b"TCGT");
    let cgt = u32::from_le_bytes(*b"CGTC");
    let gtc = u32::from_le_bytes(*b"GTCG");
    (l.ebx, l.ecx, l.edx) == (tcg, cgt, gtc)
}

/// x87 status word: error summary (ES) and the six exception flags.
const FSW_ERRORS: u16 = 0xbf;
/// x87 control word after FNINIT.
const FCW_INIT: u16 = 0x037f;
/// MXCSR at reset.
const MXCSR_INIT: u32 = 0x1f80;

/// Cases that must not fault: they exit 0 after checking what they can.
fn harmless(case: &str) -> Option<i64> {
    let r = match case {
        // Leaves an unmasked x87 error pending, blocks in the kernel a few
        // times (other threads use this CPU's FPU meanwhile), and exits
        // without ever waiting: nothing may fire, in the kernel or later.
        "x87-pending-exit" => {
            x87_pending_div0();
            insn!(
                "sub rsp, 8",
                "mov dword ptr [rsp], 0", // all SSE exceptions unmasked
                "ldmxcsr [rsp]",
                "add rsp, 8",
            );
            for _ in 0..4 {
                rt::arch::cap_enter(1, 2_000_000);
            }
            0
        }
        // Runs after the pending cases: a new process starts with a clean
        // x87/SSE state (masked, nothing pending), whatever ran before.
        "fpu-clean" => fpu_clean(),
        // A valid user frame: iretq from ring 3 is just a jump.
        "iretq-user" => {
            iretq(USER_CS, USER_DS, 0);
            0
        }
        // TF set right before `syscall`: SFMASK clears it on entry; if a
        // CPU still traps on the stub, the kernel drops that #DB (trap.rs).
        // The kernel returns with TF clear, so no trap follows.
        "tf-syscall" => tf_syscall(false),
        // The same behind `mov ss`, which defers the single-step trap past
        // the next instruction (the syscall) on real CPUs.
        "tf-movss-syscall" => tf_syscall(true),
        // An odd, user-half RSP through a push, a system call and back.
        "rsp-odd-syscall" => {
            let mut sp = [0u64; 8];
            let odd = sp.as_mut_ptr() as u64 + 8 * 6 + 3;
            insn!(
                "mov {save}, rsp",
                "mov rsp, {odd}",
                "push rax",
                "pop rax",
                "syscall",
                "mov rsp, {save}",
                save = out(reg) _,
                odd = in(reg) odd,
                inout("rax") abi::SYS_CAP_ENTER => _,
                in("rdi") 0u64,
                in("rsi") 0u64,
                out("rcx") _,
                out("r11") _,
            );
            0
        }
        _ => return None,
    };
    Some(r)
}

fn fpu_clean() -> i64 {
    let mut fsw: u16 = 0xffff;
    let mut fcw: u16 = 0;
    let mut mxcsr: u32 = 0;
    insn!(
        "sub rsp, 8",
        "fnstsw [rsp]",
        "mov {sw:x}, word ptr [rsp]",
        "fnstcw [rsp]",
        "mov {cw:x}, word ptr [rsp]",
        "stmxcsr [rsp]",
        "mov {mx:e}, dword ptr [rsp]",
        "add rsp, 8",
        sw = out(reg) fsw,
        cw = out(reg) fcw,
        mx = out(reg) mxcsr,
    );
    if fsw & FSW_ERRORS != 0 {
        rt::println!("hostile-trap: x87 status {:#x} at start", fsw);
        return 3;
    }
    if fcw != FCW_INIT || mxcsr != MXCSR_INIT {
        rt::println!("hostile-trap: fcw {:#x} mxcsr {:#x} at start", fcw, mxcsr);
        return 4;
    }
    // Masked zero-divides: flags only, no trap.
    insn!("fld1", "fldz", "fdivp", "fwait", "fstp st(0)");
    0
}

fn tf_syscall(mov_ss: bool) -> i64 {
    let flags: u64;
    if mov_ss {
        insn!(
            "mov {ss:x}, ss",
            "pushfq",
            "or qword ptr [rsp], {tf}",
            "popfq",
            "mov ss, {ss:x}",
            "syscall",
            "pushfq",
            "pop {flags}",
            ss = out(reg) _,
            tf = in(reg) RFLAGS_TF,
            flags = out(reg) flags,
            inout("rax") abi::SYS_CAP_ENTER => _,
            in("rdi") 0u64,
            in("rsi") 0u64,
            out("rcx") _,
            out("r11") _,
        );
    } else {
        insn!(
            "pushfq",
            "or qword ptr [rsp], {tf}",
            "popfq",
            "syscall",
            "pushfq",
            "pop {flags}",
            tf = in(reg) RFLAGS_TF,
            flags = out(reg) flags,
            inout("rax") abi::SYS_CAP_ENTER => _,
            in("rdi") 0u64,
            in("rsi") 0u64,
            out("rcx") _,
            out("r11") _,
        );
    }
    if flags & RFLAGS_TF != 0 {
        return 5;
    }
    0
}

/// `sgdt` and friends: allowed without UMIP, #GP with it. Survivors exit
/// 0 (the `umip` parent knows which outcome is right).
fn umip_case(case: &str) -> Option<i64> {
    let mut buf = [0u64; 2];
    let p = buf.as_mut_ptr();
    match case {
        "sgdt" => insn!("sgdt [{}]", in(reg) p),
        "sidt" => insn!("sidt [{}]", in(reg) p),
        "sldt" => insn!("sldt {0:x}", out(reg) _),
        "str" => insn!("str {0:x}", out(reg) _),
        "smsw" => insn!("smsw {}", out(reg) _),
        _ => return None,
    }
    Some(0)
}

/// CPUID.(EAX=7,ECX=0):ECX bit 2.
fn cpu_has_umip() -> bool {
    let max = core::arch::x86_64::__cpuid(0).eax;
    if max < 7 {
        return false;
    }
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
    leaf7.ecx & (1 << 2) != 0
}

fn child_outcome(spawner: u32, args: &[&str]) -> Result<(ExitKind, i64), Fail> {
    let c = process::spawn(spawner, NAME, args, &[]).ctx("spawn")?;
    let r = c.wait().ctx("wait")?;
    c.close().ctx("close")?;
    Ok(r)
}

fn umip_parent(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    let umip = cpu_has_umip();
    for case in ["sgdt", "sidt", "sldt", "str", "smsw"] {
        let r = child_outcome(spawner, &[case])?;
        if umip {
            ensure!(
                r == (ExitKind::Faulted, VECTOR_GP),
                "{} ended {:?} with UMIP, want fault 13",
                case,
                r
            );
        } else {
            ensure!(
                r == (ExitKind::Exited, 0),
                "{} ended {:?} without UMIP, want exit 0",
                case,
                r
            );
        }
    }
    rt::println!(
        "hostile-trap: UMIP {}: sgdt/sidt/sldt/str/smsw {}",
        if umip { "advertised" } else { "absent" },
        if umip { "fault" } else { "run" }
    );
    Ok(())
}

/// Jumps to the syscall stub at `stub` with the registers of
/// `cap_enter(0, 0)` and RCX/R11 as `syscall` would set them: a system
/// call that returns to the next instruction.
fn stub_jump(stub: u64) -> i64 {
    let ret: i64;
    insn!(
        "lea rcx, [rip + 2f]",
        "pushfq",
        "pop r11",
        "jmp {stub}",
        "2:",
        stub = in(reg) stub,
        inout("rax") abi::SYS_CAP_ENTER as i64 => ret,
        in("rdi") 0u64,
        in("rsi") 0u64,
        out("rcx") _,
        out("r11") _,
    );
    if ret < 0 {
        return 6;
    }
    0
}

/// The same jump with a bad return RIP in RCX: the kernel must end the
/// process rather than iretq there.
fn stub_jump_ret(stub: u64, rcx: u64) -> i64 {
    insn!(
        "pushfq",
        "pop r11",
        "jmp {stub}",
        stub = in(reg) stub,
        inout("rax") abi::SYS_CAP_ENTER => _,
        in("rdi") 0u64,
        in("rsi") 0u64,
        inout("rcx") rcx => _,
        out("r11") _,
    );
    SURVIVED
}

fn stub_parent(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    let mut found = None;
    for page in 0..STUB_SEARCH_PAGES {
        let addr = KERNEL_TEXT_SEARCH_FROM + page * 4096;
        let r = child_outcome(spawner, &["stub-jump", num(addr).as_str()])?;
        match r {
            (ExitKind::Exited, 0) => {
                found = Some(addr);
                break;
            }
            (ExitKind::Faulted, VECTOR_PF) => {}
            other => fail!("jump to {:#x} ended {:?}", addr, other),
        }
    }
    let Some(stub) = found else {
        fail!(
            "no page from {:#x} behaved as the syscall stub",
            KERNEL_TEXT_SEARCH_FROM
        );
    };
    let r = child_outcome(spawner, &["stub-jump", num(stub + 16).as_str()])?;
    ensure!(
        r == (ExitKind::Faulted, VECTOR_PF),
        "jump into the stub's middle ended {:?}",
        r
    );
    for case in ["stub-badret", "stub-kret"] {
        let r = child_outcome(spawner, &[case, num(stub).as_str()])?;
        ensure!(
            r == (ExitKind::Faulted, VECTOR_GP),
            "{} ended {:?}, want fault 13",
            case,
            r
        );
    }
    rt::println!(
        "hostile-trap: the syscall stub at {:#x} is a system call when jumped to; its middle faults",
        stub
    );
    Ok(())
}

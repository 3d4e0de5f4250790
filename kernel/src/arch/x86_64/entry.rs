//! Kernel entry and exit: the trap stubs, the syscall stub, the return to
//! user mode, and the boot CPU's first Rust function.
//!
//! Every entry builds one [`TrapFrame`] on the current kernel stack and calls
//! Rust with a pointer to it; every exit pops that frame and leaves with
//! `iretq` (never `sysretq`, which raises #GP under our KVM). A context
//! switch is a copy of the frame: the scheduler saves the running thread's
//! frame and writes the next thread's frame in its place before returning.
//!
//! System calls arrive two ways (docs/architecture/capabilities.md):
//! - normally, `syscall` jumps to [`syscall_entry`], which swaps GS,
//!   switches to the kernel stack and builds an interrupt-style frame;
//! - under our KVM, the hypervisor runs LSTAR code in hardware ring 3, so
//!   the stub's first fetch (a supervisor page) raises #PF from user mode
//!   with RIP = the stub. The #PF/#GP handler recognizes that frame
//!   ([`is_reflected_syscall`]), rewrites it ([`reflect_syscall`]) and
//!   takes the same path.

use core::arch::global_asm;
use core::cell::UnsafeCell;

use super::gdt::{USER_CS, USER_DS};
use super::percpu::{KERNEL_STACK_TOP_OFFSET, USER_RSP_SCRATCH_OFFSET};

/// The register state of an interrupted context, as the stubs lay it out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Vector number, or [`SYSCALL_VECTOR`].
    pub vector: u64,
    /// The CPU's error code, or 0.
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// The pseudo-vector the syscall stub records.
pub const SYSCALL_VECTOR: u64 = 0x100;

/// RFLAGS.IF.
pub const RFLAGS_IF: u64 = 1 << 9;
/// RFLAGS bits user space may not set: TF, IOPL, NT, RF, VM, AC, VIF, VIP, ID? (ID is harmless; keep).
const RFLAGS_USER_FORBIDDEN: u64 =
    (1 << 8) | (3 << 12) | (1 << 14) | (1 << 16) | (1 << 17) | (1 << 18) | (1 << 19) | (1 << 20);
/// Bit 1 of RFLAGS always reads as one.
const RFLAGS_RESERVED_ONE: u64 = 1 << 1;

impl TrapFrame {
    /// Whether the trap came from user mode.
    pub fn came_from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// A fresh user-mode frame that starts at `rip` with stack `rsp`.
    pub fn new_user(rip: u64, rsp: u64) -> TrapFrame {
        TrapFrame {
            rip,
            rsp,
            cs: u64::from(USER_CS),
            ss: u64::from(USER_DS),
            rflags: RFLAGS_IF | RFLAGS_RESERVED_ONE,
            ..TrapFrame::default()
        }
    }

    /// Makes the frame safe to `iretq` to user mode: user selectors,
    /// interrupts on, no privileged flags.
    pub fn sanitize_for_user(&mut self) {
        self.cs = u64::from(USER_CS);
        self.ss = u64::from(USER_DS);
        self.rflags = (self.rflags & !RFLAGS_USER_FORBIDDEN) | RFLAGS_IF | RFLAGS_RESERVED_ONE;
    }
}

/// Whether `frame` is a #PF/#GP raised by the first fetch of the syscall
/// stub from user mode (the KVM path).
pub fn is_reflected_syscall(frame: &TrapFrame) -> bool {
    frame.came_from_user()
        && (frame.vector == 14 || frame.vector == 13)
        && frame.rip == syscall_entry_addr()
}

/// Turns a reflected-syscall fault frame into the frame the normal stub
/// builds: return RIP from RCX, flags from R11, user RSP as delivered.
pub fn reflect_syscall(frame: &mut TrapFrame) {
    frame.rip = frame.rcx;
    frame.rflags = frame.r11;
    frame.vector = SYSCALL_VECTOR;
    frame.error = 0;
}

/// Address of the syscall stub (what LSTAR holds).
pub fn syscall_entry_addr() -> u64 {
    syscall_entry as *const () as u64
}

extern "C" {
    fn syscall_entry();
    fn trap_return();
    /// 256 stubs, 16 bytes apart, one per vector.
    pub fn trap_stubs();
}

/// Address of vector `v`'s stub.
pub fn trap_stub_addr(v: u8) -> u64 {
    trap_stubs as *const () as u64 + 16 * u64::from(v)
}

/// Size of the boot CPU's first stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

/// A stack for the boot CPU until it switches to its per-CPU stack.
#[repr(C, align(16))]
pub struct BootStack(UnsafeCell<[u8; BOOT_STACK_SIZE]>);
// SAFETY: only the boot CPU uses this stack, through RSP, before any other CPU runs.
unsafe impl Sync for BootStack {}
/// The boot CPU's first stack (referenced by the boot stub).
pub static BOOT_STACK: BootStack = BootStack(UnsafeCell::new([0; BOOT_STACK_SIZE]));

/// The boot CPU's first Rust code, called by the boot stub with the
/// loader's information address (RDI) and the protocol tag (RSI,
/// `bootinfo::PROTOCOL_*`).
pub extern "C" fn kernel_entry(boot_info_phys: u64, protocol: u64) -> ! {
    crate::kmain(super::bootinfo::Handoff::new(protocol, boot_info_phys))
}

extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    crate::trap::handle(frame);
}

extern "C" fn syscall_dispatch(frame: &mut TrapFrame) {
    crate::trap::syscall(frame);
}

/// Leaves the kernel through `frame`, which must lie at the top of this
/// CPU's kernel stack (see [`user_frame_slot`]).
///
/// # Safety
/// `frame` must be a valid user frame at [`user_frame_slot`]; everything
/// below it on the stack is abandoned.
pub unsafe fn enter_frame(frame: *mut TrapFrame) -> ! {
    // SAFETY: the caller guarantees `frame` is a complete frame; trap_return
    // pops it and iretqs.
    unsafe {
        core::arch::asm!("mov rsp, {}", "jmp {ret}", in(reg) frame, ret = sym trap_return, options(noreturn))
    }
}

/// Where the entry stubs put a user-mode frame on a stack whose top is `top`.
pub fn user_frame_slot(top: u64) -> *mut TrapFrame {
    (top - core::mem::size_of::<TrapFrame>() as u64) as *mut TrapFrame
}

global_asm!(
    r#"
    /* The general registers in TrapFrame order (r15 ends up lowest). */
    .macro PUSH_GPRS
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    .endm
    .macro POP_GPRS
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    .endm

    .text
    .balign 16
    .global trap_stubs
trap_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    push 0
    .endif
    push vec
    .if vec == 2
    jmp trap_paranoid
    .elseif (vec == 1) || (vec == 8) || (vec == 18)
    jmp trap_ist
    .else
    jmp trap_common
    .endif
    .set vec, vec + 1
    .endr

    /* NMIs can arrive anywhere: in user mode, in the kernel, between
     * `syscall` and the stub's swapgs, or between trap_return's swapgs and
     * its iretq. So neither CS nor the sign of GS_BASE says which GS is
     * live: under our KVM user code can even set GS_BASE to a kernel-half
     * value with wrgsbase (mod.rs, set_fs_base). Instead, like Linux's
     * paranoid entry with FSGSBASE, save GS_BASE, load this CPU's block
     * (stored by gdt::init_cpu in the word right above the hardware frame
     * on every IST stack: [rsp + 56] before PUSH_GPRS), run the handler,
     * and put the saved value back. KERNEL_GS_BASE is never touched.
     * rbx (callee-saved) keeps the saved value across the call. #DB/#DF/
     * #MC from kernel mode come here too (trap_ist). */
trap_paranoid:
    PUSH_GPRS
    mov ecx, 0xc0000101              /* IA32_GS_BASE */
    rdmsr
    shl rdx, 32
    or rax, rdx
    mov rbx, rax
    mov rax, [rsp + 15 * 8 + 56]
    mov rdx, rax
    shr rdx, 32
    wrmsr
    mov rdi, rsp
    cld
    call {trap_dispatch}
    mov ecx, 0xc0000101
    mov rax, rbx
    mov rdx, rbx
    shr rdx, 32
    wrmsr
    POP_GPRS
    add rsp, 16
    iretq

    /* #DB, #DF and #MC arrive on their own IST stacks (gdt.rs). From
     * kernel mode they take the NMI's path: GS loaded from the IST stack
     * and restored afterwards (a single-step trap can land on the syscall
     * stub's first instruction, before its swapgs), and the handler runs
     * on the IST stack. From user mode CS is reliable (the CPU pushed it) and GS is
     * the user's: swap, move the 7-word hardware frame (vector .. ss) to
     * the top of this CPU's kernel stack, where every other user entry
     * puts it (user_frame_slot), and go on as trap_common does. So a user
     * fault on one of these vectors is handled, scheduled and returned
     * from exactly like any other, never on an IST stack that a nested
     * trap of the same vector would overwrite. */
trap_ist:
    test qword ptr [rsp + 24], 3
    jz trap_paranoid
    swapgs
    push rax
    push rcx
    mov rax, gs:[{kstack}]
    sub rax, 56
    .set off, 0
    .rept 7
    mov rcx, [rsp + 16 + off]
    mov [rax + off], rcx
    .set off, off + 8
    .endr
    mov rcx, rsp
    mov rsp, rax
    mov rax, [rcx + 8]
    mov rcx, [rcx]
    jmp trap_common_swapped

trap_common:
    /* [rsp] vector, +8 error, +16 rip, +24 cs */
    test qword ptr [rsp + 24], 3
    jz trap_common_swapped
    swapgs
trap_common_swapped:
    PUSH_GPRS
    mov rdi, rsp
    cld
    call {trap_dispatch}
    .global trap_return
trap_return:
    POP_GPRS
    test qword ptr [rsp + 24], 3
    jz 2f
    swapgs
2:
    add rsp, 16
    iretq

    /* The stub opens the kernel text (section .text.syscall_entry, placed
     * first by kernel/linker.ld), so its address is the documented
     * KERNEL_BASE + __boot_end (docs/architecture/boot.md); the hostile
     * trap smoke finds it there and jumps to it from user mode. */
    .pushsection .text.syscall_entry, "ax"
    .balign 16
    .global syscall_entry
syscall_entry:
    swapgs
    mov gs:[{scratch}], rsp
    mov rsp, gs:[{kstack}]
    push {user_ds}
    push qword ptr gs:[{scratch}]
    push r11
    push {user_cs}
    push rcx
    push 0
    push {sysvec}
    PUSH_GPRS
    mov rdi, rsp
    cld
    call {syscall_dispatch}
    jmp trap_return
    .popsection
"#,
    trap_dispatch = sym trap_dispatch,
    syscall_dispatch = sym syscall_dispatch,
    scratch = const USER_RSP_SCRATCH_OFFSET,
    kstack = const KERNEL_STACK_TOP_OFFSET,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    sysvec = const SYSCALL_VECTOR,
);

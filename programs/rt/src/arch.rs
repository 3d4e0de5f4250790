//! All of rt's assembly, for x86-64 user mode.
//!
//! - `_start`: the ELF entry. The kernel enters with `rdi` = start-up block,
//!   `rsi` = ring address, `rsp` 16-byte aligned; we clear the frame pointer,
//!   re-align and call `rt_start`.
//! - `rt_thread_trampoline`: the entry of every spawned thread (`rdi` = its
//!   TLS block, `rsi` = its ring); it makes the stack ABI-correct and calls
//!   `rt_thread_start`. Neither returns.
//! - [`cap_enter`]: the one system call.
//! - [`rdtsc`] and [`tls_self`] (the `fs:0` self-pointer load).
//!
//! On the host (for `cargo test`) only inert stand-ins exist.

#[cfg(target_os = "none")]
mod imp {
    use core::arch::{asm, global_asm};

    global_asm!(
        ".pushsection .text.start, \"ax\"",
        ".global _start",
        "_start:",
        "xor ebp, ebp",
        "and rsp, -16",
        "call {start}",
        "ud2",
        ".popsection",
        ".pushsection .text.rt_thread_trampoline, \"ax\"",
        ".global rt_thread_trampoline",
        "rt_thread_trampoline:",
        "xor ebp, ebp",
        "and rsp, -16",
        "call {thread_start}",
        "ud2",
        ".popsection",
        start = sym crate::rt_start,
        thread_start = sym crate::thread::rt_thread_start,
    );

    extern "C" {
        fn rt_thread_trampoline();
    }

    /// Address of the thread entry trampoline (for `Op::ThreadSpawn`).
    pub fn thread_trampoline() -> u64 {
        rt_thread_trampoline as *const () as usize as u64
    }

    /// `cap_enter(min_complete, timeout_ns)`: returns the number of
    /// completions waiting, or a negative error code.
    pub fn cap_enter(min_complete: u64, timeout_ns: u64) -> i64 {
        cap_enter_flags(min_complete, timeout_ns, 0)
    }

    /// `cap_enter` with `flags` in rdx (`abi::ring::ENTER_SQ_WAKEUP`).
    pub fn cap_enter_flags(min_complete: u64, timeout_ns: u64, flags: u64) -> i64 {
        let ret: i64;
        // SAFETY: the system call reads and writes only this thread's ring
        // (hence no `nomem`: the compiler must not cache ring memory across
        // it) and clobbers rcx and r11 besides rax.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") abi::SYS_CAP_ENTER as i64 => ret,
                in("rdi") min_complete,
                in("rsi") timeout_ns,
                in("rdx") flags,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    /// The time-stamp counter (allowed in user mode).
    pub fn rdtsc() -> u64 {
        let lo: u32;
        let hi: u32;
        // SAFETY: rdtsc only reads the TSC into edx:eax.
        unsafe {
            asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
        }
        (u64::from(hi) << 32) | u64::from(lo)
    }

    /// The word at `fs:0`: the current thread's TLS self-pointer.
    pub fn tls_self() -> usize {
        let p: usize;
        // SAFETY: rt sets FS base to a TLS block whose first word is its own
        // address before any caller can get here (`tls::init_main`, and the
        // kernel for spawned threads); the load has no other effect.
        unsafe {
            asm!("mov {}, fs:0", out(reg) p, options(nostack, preserves_flags, readonly));
        }
        p
    }

    /// Ends the process by a fault, when even `Exit` failed.
    pub fn die() -> ! {
        // SAFETY: ud2 raises #UD; the kernel ends the process.
        unsafe { asm!("ud2", options(noreturn, nomem, nostack)) }
    }
}

#[cfg(not(target_os = "none"))]
mod imp {
    /// Host stand-in: there is no trampoline.
    pub fn thread_trampoline() -> u64 {
        0
    }

    /// Host stand-in: there is no kernel.
    pub fn cap_enter(_min_complete: u64, _timeout_ns: u64) -> i64 {
        abi::error::Error::Invalid.as_result()
    }

    /// Host stand-in: there is no kernel.
    pub fn cap_enter_flags(_min_complete: u64, _timeout_ns: u64, _flags: u64) -> i64 {
        abi::error::Error::Invalid.as_result()
    }

    /// Host stand-in.
    pub fn rdtsc() -> u64 {
        0
    }

    /// Host stand-in: no TLS through FS on the host.
    pub fn tls_self() -> usize {
        panic!("rt TLS is only available in the kernel's user mode")
    }

    /// Host stand-in.
    pub fn die() -> ! {
        panic!("rt::arch::die on the host")
    }
}

pub use imp::*;

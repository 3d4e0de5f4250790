//! User FPU/SSE state: saved with `fxsave64`, restored with `fxrstor64`.
//!
//! The kernel is soft-float and never touches x87/SSE registers, so a
//! thread's state stays in the registers while the kernel runs and only
//! needs saving when another thread takes the CPU. `xsave` is not used: it
//! stops our KVM (DESIGN.md, known pitfalls).

/// A 512-byte FXSAVE area.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpuState([u8; 512]);

/// FCW after FNINIT: every x87 exception masked, 64-bit precision.
const FCW_INIT: u16 = 0x037f;
/// MXCSR at reset: every SSE exception masked, round to nearest.
const MXCSR_INIT: u32 = 0x1f80;

/// The clean image: as after FNINIT, status word clear (nothing pending).
static CLEAN: FpuState = FpuState::clean();

impl FpuState {
    /// The state a new thread starts with: FCW = 0x37f, MXCSR = 0x1f80
    /// (all exceptions masked, round to nearest), as after FNINIT.
    pub fn new() -> FpuState {
        FpuState::clean()
    }

    const fn clean() -> FpuState {
        let mut s = [0u8; 512];
        let fcw = FCW_INIT.to_le_bytes();
        s[0] = fcw[0];
        s[1] = fcw[1];
        let mxcsr = MXCSR_INIT.to_le_bytes();
        let mut i = 0;
        while i < 4 {
            s[24 + i] = mxcsr[i];
            i += 1;
        }
        // MXCSR_MASK = 0xffff (fxrstor ignores it).
        s[28] = 0xff;
        s[29] = 0xff;
        FpuState(s)
    }

    /// Saves this CPU's FPU/SSE registers here.
    pub fn save(&mut self) {
        // SAFETY: the area is 512 bytes and 16-byte aligned as fxsave64 needs.
        unsafe {
            core::arch::asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack, preserves_flags))
        };
    }

    /// Loads the registers from here.
    pub fn restore(&self) {
        // SAFETY: the area holds a valid image: from `new` (reserved bits
        // zero, MXCSR valid) or from a previous fxsave64.
        unsafe {
            core::arch::asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack, preserves_flags))
        };
    }
}

/// Loads the clean image into this CPU's registers: drops any pending x87
/// error and any unmasked control word a dead thread left behind.
pub fn load_clean() {
    CLEAN.restore();
}

impl Default for FpuState {
    fn default() -> Self {
        Self::new()
    }
}

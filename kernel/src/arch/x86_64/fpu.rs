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

impl FpuState {
    /// The state a new thread starts with: FCW = 0x37f, MXCSR = 0x1f80
    /// (all exceptions masked, round to nearest), as after FNINIT.
    pub fn new() -> FpuState {
        let mut s = FpuState([0; 512]);
        s.0[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        s.0[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        s.0[28..32].copy_from_slice(&0xffffu32.to_le_bytes()); // MXCSR_MASK
        s
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

impl Default for FpuState {
    fn default() -> Self {
        Self::new()
    }
}

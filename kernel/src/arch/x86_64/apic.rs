//! The local APIC: one interface, [`LocalApic`], and its xAPIC (MMIO)
//! backend. An x2APIC backend (MSRs 0x800+) can implement the same trait
//! later; nothing outside this file knows which one runs.
//!
//! Every CPU's xAPIC sits at the same physical address (IA32_APIC_BASE /
//! the MADT), so one uncached mapping in the shared MMIO window serves all
//! of them: each CPU reaches its own APIC through it.
//!
//! Register offsets and bits: Intel SDM vol. 3, chapter 11 (tables 11-1,
//! 11-6, figure 11-12 for the ICR, 11-8 for the LVT).

use spin::Once;

use super::cpu::{self, msr};

/// How the local APIC timer divides its input clock (divide by 16).
pub const TIMER_DIVIDE: u32 = 16;
/// Divide-configuration register value for divide by 16.
const DIVIDE_BY_16: u32 = 0b0011;

/// xAPIC register offsets.
mod reg {
    pub const ID: u64 = 0x20;
    pub const TPR: u64 = 0x80;
    pub const EOI: u64 = 0xb0;
    pub const SPURIOUS: u64 = 0xf0;
    pub const ESR: u64 = 0x280;
    pub const ICR_LOW: u64 = 0x300;
    pub const ICR_HIGH: u64 = 0x310;
    pub const LVT_TIMER: u64 = 0x320;
    pub const LVT_ERROR: u64 = 0x370;
    pub const TIMER_INITIAL: u64 = 0x380;
    pub const TIMER_CURRENT: u64 = 0x390;
    pub const TIMER_DIVIDE: u64 = 0x3e0;
}

/// Spurious-vector register: APIC software enable.
const SPURIOUS_ENABLE: u32 = 1 << 8;
/// LVT: masked.
const LVT_MASKED: u32 = 1 << 16;
/// LVT timer mode: periodic.
const LVT_TIMER_PERIODIC: u32 = 1 << 17;
/// ICR: delivery status (send pending).
const ICR_PENDING: u32 = 1 << 12;
/// ICR: level assert (required for INIT, harmless elsewhere).
const ICR_ASSERT: u32 = 1 << 14;
/// ICR: level-triggered (INIT assert, as the MP spec sends it).
const ICR_LEVEL: u32 = 1 << 15;
/// ICR destination shorthand: all excluding self.
const ICR_ALL_BUT_SELF: u32 = 3 << 18;
/// IA32_APIC_BASE: global enable, and the base address bits.
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// An inter-processor interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipi {
    /// A fixed interrupt on a vector.
    Fixed(u8),
    /// A non-maskable interrupt (vector 2).
    Nmi,
    /// INIT: resets the target into wait-for-SIPI.
    Init,
    /// Start-up: the target runs real-mode code at `page << 12`.
    Startup(u8),
}

impl Ipi {
    fn icr_low(self) -> u32 {
        match self {
            Ipi::Fixed(v) => u32::from(v) | ICR_ASSERT,
            Ipi::Nmi => (4 << 8) | ICR_ASSERT,
            Ipi::Init => (5 << 8) | ICR_ASSERT | ICR_LEVEL,
            Ipi::Startup(page) => (6 << 8) | ICR_ASSERT | u32::from(page),
        }
    }
}

/// Where an IPI goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// One CPU by local APIC id.
    Apic(u32),
    /// Every CPU but the sender.
    AllButSelf,
}

/// What the kernel needs from a local APIC (xAPIC now, x2APIC later).
pub trait LocalApic: Sync {
    /// This CPU's APIC id.
    fn id(&self) -> u32;
    /// Software-enables the APIC on this CPU with `spurious_vector`, masks
    /// the error LVT and accepts every priority.
    fn enable(&self, spurious_vector: u8);
    /// Signals the end of the interrupt being handled.
    fn eoi(&self);
    /// Sends `ipi` to `dest`. Waits (bounded) for the previous send to leave.
    fn send_ipi(&self, dest: Dest, ipi: Ipi);
    /// Starts the timer: fire `vector` after `count` ticks (of the divided
    /// clock), once or every `count` ticks.
    fn timer_start(&self, vector: u8, count: u32, periodic: bool);
    /// Stops the timer.
    fn timer_stop(&self);
    /// The timer's current count (counts down to zero).
    fn timer_current(&self) -> u32;
}

/// The xAPIC: memory-mapped registers at `base` (kernel-virtual, uncached).
pub struct XApic {
    base: u64,
}

impl XApic {
    fn read(&self, offset: u64) -> u32 {
        // SAFETY: `base` maps the APIC's 4 KiB register page uncached
        // (`init`), and `offset` is one of its 32-bit registers.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(&self, offset: u64, value: u32) {
        // SAFETY: as in `read`; the registers written here have no memory effects.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }
}

/// How long a previous IPI may stay pending before we send anyway (TSC
/// cycles at an assumed 20 GHz upper bound: 1 ms or more).
const ICR_PENDING_FAILSAFE_CYCLES: u64 = 20_000_000;

impl LocalApic for XApic {
    fn id(&self) -> u32 {
        self.read(reg::ID) >> 24
    }

    fn enable(&self, spurious_vector: u8) {
        self.write(reg::TPR, 0);
        self.write(reg::LVT_ERROR, LVT_MASKED);
        self.write(reg::ESR, 0);
        self.write(reg::SPURIOUS, SPURIOUS_ENABLE | u32::from(spurious_vector));
    }

    fn eoi(&self) {
        self.write(reg::EOI, 0);
    }

    fn send_ipi(&self, dest: Dest, ipi: Ipi) {
        // The two ICR writes must not be split by an interrupt handler that
        // sends its own IPI: keep interrupts off across them.
        let were_enabled = cpu::interrupts_enabled();
        cpu::cli();
        let start = cpu::rdtsc();
        while self.read(reg::ICR_LOW) & ICR_PENDING != 0
            && cpu::rdtsc().wrapping_sub(start) < ICR_PENDING_FAILSAFE_CYCLES
        {
            core::hint::spin_loop();
        }
        let (high, shorthand) = match dest {
            Dest::Apic(id) => (id << 24, 0),
            Dest::AllButSelf => (0, ICR_ALL_BUT_SELF),
        };
        self.write(reg::ICR_HIGH, high);
        self.write(reg::ICR_LOW, ipi.icr_low() | shorthand);
        if were_enabled {
            cpu::sti();
        }
    }

    fn timer_start(&self, vector: u8, count: u32, periodic: bool) {
        let mode = if periodic { LVT_TIMER_PERIODIC } else { 0 };
        self.write(reg::TIMER_DIVIDE, DIVIDE_BY_16);
        self.write(reg::LVT_TIMER, u32::from(vector) | mode);
        self.write(reg::TIMER_INITIAL, count.max(1));
    }

    fn timer_stop(&self) {
        self.write(reg::LVT_TIMER, LVT_MASKED);
        self.write(reg::TIMER_INITIAL, 0);
    }

    fn timer_current(&self) -> u32 {
        self.read(reg::TIMER_CURRENT)
    }
}

static LAPIC: Once<XApic> = Once::new();

/// Whether this CPU has a local APIC (CPUID.1:EDX bit 9) that is globally
/// enabled in IA32_APIC_BASE.
pub fn present() -> bool {
    cpu::cpuid(1, 0)[3] & (1 << 9) != 0 && cpu::rdmsr(msr::APIC_BASE) & APIC_BASE_ENABLE != 0
}

/// The physical base of this CPU's local APIC (IA32_APIC_BASE).
pub fn base_phys_from_msr() -> u64 {
    cpu::rdmsr(msr::APIC_BASE) & APIC_BASE_ADDR_MASK
}

/// Maps the xAPIC registers at `phys` (once, shared by every CPU).
pub fn init(phys: u64) {
    LAPIC.call_once(|| XApic {
        base: crate::mm::kernel_space::map_mmio(phys, 4096),
    });
}

/// The local APIC, once [`init`] ran (`None` on the no-APIC fallback).
pub fn local() -> Option<&'static dyn LocalApic> {
    LAPIC.get().map(|a| a as &dyn LocalApic)
}

/// This CPU's initial APIC id from CPUID (usable before the APIC is mapped).
pub fn initial_id() -> u32 {
    cpu::cpuid(1, 0)[1] >> 24
}

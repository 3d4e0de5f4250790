//! The local APIC: one interface, [`LocalApic`], and its two backends,
//! the xAPIC (MMIO) and the x2APIC (MSRs 0x800 + offset / 16). The boot CPU
//! picks one ([`init`]) before any AP starts, and every CPU switches its
//! own APIC into that mode ([`enter_mode`]); nothing outside this file
//! knows which one runs.
//!
//! Every CPU's xAPIC sits at the same physical address (IA32_APIC_BASE /
//! the MADT), so one uncached mapping in the shared MMIO window serves all
//! of them: each CPU reaches its own APIC through it. The x2APIC needs no
//! mapping: its registers are this CPU's MSRs. What differs there (SDM
//! vol. 3A, 11.12): the ID register holds the whole 32-bit x2APIC ID; the
//! ICR is one 64-bit MSR (destination in bits 63:32) written once, with no
//! delivery-status bit to poll; a self IPI has its own MSR (0x83F); EOI
//! must be written 0.
//!
//! The TSC-deadline timer is the local APIC timer in LVT mode 10b, armed
//! by IA32_TSC_DEADLINE (an MSR in both modes, SDM 11.5.4.1).
//!
//! Register offsets and bits: Intel SDM vol. 3, chapter 11 (tables 11-1,
//! 11-6, figure 11-12 for the ICR, 11-8 for the LVT).

use abi::kernel_modes::ApicChoice;
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
/// LVT timer mode: TSC-deadline (bits 18:17 = 10b).
const LVT_TIMER_TSC_DEADLINE: u32 = 2 << 17;
/// ICR: delivery status (send pending).
const ICR_PENDING: u32 = 1 << 12;
/// ICR: level assert (required for INIT, harmless elsewhere).
const ICR_ASSERT: u32 = 1 << 14;
/// ICR: level-triggered (INIT assert, as the MP spec sends it).
const ICR_LEVEL: u32 = 1 << 15;
/// ICR destination shorthand: self.
const ICR_SELF: u32 = 1 << 18;
/// ICR destination shorthand: all excluding self.
const ICR_ALL_BUT_SELF: u32 = 3 << 18;
/// IA32_APIC_BASE: global enable, x2APIC enable (EXTD), and the base address bits.
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_EXTD: u64 = 1 << 10;
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
    /// The sender itself (the x2APIC's self-IPI MSR for a fixed vector).
    SelfOnly,
}

/// What the kernel needs from a local APIC (xAPIC or x2APIC).
pub trait LocalApic: Sync {
    /// Which interface this is.
    fn mode(&self) -> ApicChoice;
    /// Reads the 32-bit register at xAPIC `offset` (the backends differ
    /// in how: MMIO, or MSR `0x800 + offset / 16`).
    fn read(&self, offset: u64) -> u32;
    /// Writes the 32-bit register at xAPIC `offset`.
    fn write(&self, offset: u64, value: u32);
    /// This CPU's APIC id.
    fn id(&self) -> u32;
    /// Sends `ipi` to `dest`. Waits (bounded) for the previous send to leave.
    fn send_ipi(&self, dest: Dest, ipi: Ipi);

    /// Software-enables the APIC on this CPU with `spurious_vector`, masks
    /// the error LVT and accepts every priority.
    fn enable(&self, spurious_vector: u8) {
        self.write(reg::TPR, 0);
        self.write(reg::LVT_ERROR, LVT_MASKED);
        self.write(reg::ESR, 0);
        self.write(reg::SPURIOUS, SPURIOUS_ENABLE | u32::from(spurious_vector));
    }

    /// Signals the end of the interrupt being handled.
    fn eoi(&self) {
        self.write(reg::EOI, 0);
    }

    /// Starts the timer: fire `vector` after `count` ticks (of the divided
    /// clock), once or every `count` ticks.
    fn timer_start(&self, vector: u8, count: u32, periodic: bool) {
        let mode = if periodic { LVT_TIMER_PERIODIC } else { 0 };
        self.write(reg::TIMER_DIVIDE, DIVIDE_BY_16);
        self.write(reg::LVT_TIMER, u32::from(vector) | mode);
        self.write(reg::TIMER_INITIAL, count.max(1));
    }

    /// Puts the timer in TSC-deadline mode on `vector` (it fires when the
    /// TSC reaches IA32_TSC_DEADLINE; writing that MSR arms it, 0 disarms).
    /// Ends with a fence, so a deadline written next is ordered after it
    /// (SDM 11.5.4.1: in xAPIC mode WRMSR does not wait for the MMIO
    /// write; x2APIC writes are WRMSRs and in order anyway, and the fence
    /// costs little there).
    fn timer_deadline_mode(&self, vector: u8) {
        self.write(reg::LVT_TIMER, u32::from(vector) | LVT_TIMER_TSC_DEADLINE);
        cpu::mfence();
    }

    /// Stops the timer.
    fn timer_stop(&self) {
        self.write(reg::LVT_TIMER, LVT_MASKED);
        self.write(reg::TIMER_INITIAL, 0);
    }

    /// The timer's current count (counts down to zero).
    fn timer_current(&self) -> u32 {
        self.read(reg::TIMER_CURRENT)
    }
}

/// The xAPIC: memory-mapped registers at `base` (kernel-virtual, uncached).
pub struct XApic {
    base: u64,
}

/// How long a previous IPI may stay pending before we send anyway (TSC
/// cycles at an assumed 20 GHz upper bound: 1 ms or more).
const ICR_PENDING_FAILSAFE_CYCLES: u64 = 20_000_000;

impl LocalApic for XApic {
    fn read(&self, offset: u64) -> u32 {
        // SAFETY: `base` maps the APIC's 4 KiB register page uncached
        // (`init`), and `offset` is one of its 32-bit registers.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(&self, offset: u64, value: u32) {
        // SAFETY: as in `read`; the registers written here have no memory effects.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn mode(&self) -> ApicChoice {
        ApicChoice::XApic
    }

    fn id(&self) -> u32 {
        self.read(reg::ID) >> 24
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
            Dest::SelfOnly => (0, ICR_SELF),
        };
        self.write(reg::ICR_HIGH, high);
        self.write(reg::ICR_LOW, ipi.icr_low() | shorthand);
        if were_enabled {
            cpu::sti();
        }
    }
}

/// The x2APIC: this CPU's registers are MSRs `0x800 + offset / 16`.
pub struct X2Apic;

/// MSR numbers of the x2APIC registers (SDM vol. 3A, table 11-6).
mod x2msr {
    /// First x2APIC MSR; register at xAPIC offset `o` is `BASE + o / 16`.
    pub const BASE: u32 = 0x800;
    /// The 64-bit ICR (xAPIC offsets 0x300 and 0x310 as one register).
    pub const ICR: u32 = 0x830;
    /// SELF IPI: write a vector, it is delivered to this CPU (fixed, edge).
    pub const SELF_IPI: u32 = 0x83f;
}

impl X2Apic {
    fn msr(offset: u64) -> u32 {
        x2msr::BASE + (offset >> 4) as u32
    }
}

impl LocalApic for X2Apic {
    fn read(&self, offset: u64) -> u32 {
        cpu::rdmsr(Self::msr(offset)) as u32
    }

    fn write(&self, offset: u64, value: u32) {
        // SAFETY: this CPU is in x2APIC mode (`enter_mode` ran on it before
        // the backend was used), so the MSR exists, and the APIC registers
        // written here hold no memory-safety invariant.
        unsafe { cpu::wrmsr(Self::msr(offset), u64::from(value)) }
    }

    fn mode(&self) -> ApicChoice {
        ApicChoice::X2Apic
    }

    fn id(&self) -> u32 {
        // x2APIC mode: the whole register is the 32-bit ID.
        self.read(reg::ID)
    }

    fn send_ipi(&self, dest: Dest, ipi: Ipi) {
        // One 64-bit write sends: no pending state to wait for and no two
        // halves an interrupt could split, so interrupts may stay on.
        let low = u64::from(ipi.icr_low());
        let value = match (dest, ipi) {
            (Dest::SelfOnly, Ipi::Fixed(v)) => {
                // SAFETY: as in `write`; the self-IPI MSR only sends.
                unsafe { cpu::wrmsr(x2msr::SELF_IPI, u64::from(v)) };
                return;
            }
            (Dest::SelfOnly, _) => low | u64::from(ICR_SELF),
            (Dest::Apic(id), _) => (u64::from(id) << 32) | low,
            (Dest::AllButSelf, _) => low | u64::from(ICR_ALL_BUT_SELF),
        };
        // SAFETY: as in `write`; the ICR only sends the interrupt.
        unsafe { cpu::wrmsr(x2msr::ICR, value) }
    }
}

static XAPIC: Once<XApic> = Once::new();
static X2APIC: X2Apic = X2Apic;
/// The mode the boot CPU chose (set once by [`init`]).
static MODE: Once<ApicChoice> = Once::new();

/// Arms this CPU's TSC-deadline timer at TSC value `tsc`; 0 disarms it.
/// A value already passed fires at once. Takes effect only while the LVT
/// timer is in TSC-deadline mode ([`LocalApic::timer_deadline_mode`]).
pub fn set_tsc_deadline(tsc: u64) {
    // SAFETY: IA32_TSC_DEADLINE exists (CPUID.1:ECX[24] was checked before
    // the TSC-deadline timer was chosen) and only schedules an interrupt.
    unsafe { cpu::wrmsr(msr::TSC_DEADLINE, tsc) }
}

/// CPUID.1:ECX bit 21: the CPU has an x2APIC.
pub fn has_x2apic() -> bool {
    cpu::cpuid(1, 0)[2] & (1 << 21) != 0
}

/// CPUID.1:ECX bit 24: the local APIC timer has TSC-deadline mode.
pub fn has_tsc_deadline() -> bool {
    cpu::cpuid(1, 0)[2] & (1 << 24) != 0
}

/// Whether this CPU has a local APIC (CPUID.1:EDX bit 9) that is globally
/// enabled in IA32_APIC_BASE.
pub fn present() -> bool {
    cpu::cpuid(1, 0)[3] & (1 << 9) != 0 && cpu::rdmsr(msr::APIC_BASE) & APIC_BASE_ENABLE != 0
}

/// The physical base of this CPU's local APIC (IA32_APIC_BASE).
pub fn base_phys_from_msr() -> u64 {
    cpu::rdmsr(msr::APIC_BASE) & APIC_BASE_ADDR_MASK
}

/// Chooses `mode` for every CPU (once, on the boot CPU, before any AP
/// starts), puts the boot CPU's APIC in it, and for xAPIC maps the
/// registers at `phys` (one mapping shared by every CPU). The caller
/// checked that the CPU offers `mode`.
pub fn init(mode: ApicChoice, phys: u64) {
    let mode = *MODE.call_once(|| mode);
    if mode == ApicChoice::XApic {
        XAPIC.call_once(|| XApic {
            base: crate::mm::kernel_space::map_mmio(phys, 4096),
        });
    }
    enter_mode();
}

/// Puts this CPU's local APIC in the mode [`init`] chose, through
/// IA32_APIC_BASE (SDM vol. 3A, 11.12.1): EN|EXTD for x2APIC; for xAPIC,
/// EN only, leaving x2APIC first through the disabled state (EXTD cannot
/// be cleared while EN stays set) when firmware had enabled it. Each AP
/// runs this before it touches its APIC.
pub fn enter_mode() {
    let Some(mode) = MODE.get() else { return };
    let base = cpu::rdmsr(msr::APIC_BASE);
    let keep = base & !(APIC_BASE_ENABLE | APIC_BASE_EXTD);
    let target = match mode {
        ApicChoice::X2Apic => keep | APIC_BASE_ENABLE | APIC_BASE_EXTD,
        ApicChoice::XApic => keep | APIC_BASE_ENABLE,
    };
    if base == target {
        return;
    }
    // The transitions are the architectural ones: xAPIC -> x2APIC
    // directly; x2APIC -> disabled -> xAPIC.
    // SAFETY: only the enable bits change (the base address stays), and
    // nothing uses this APIC meanwhile (interrupts are off in bring-up).
    unsafe {
        if base & APIC_BASE_EXTD != 0 && *mode == ApicChoice::XApic {
            cpu::wrmsr(msr::APIC_BASE, keep);
        }
        cpu::wrmsr(msr::APIC_BASE, target);
    }
}

/// The local APIC, once [`init`] ran (`None` on the no-APIC fallback).
pub fn local() -> Option<&'static dyn LocalApic> {
    match MODE.get()? {
        ApicChoice::XApic => XAPIC.get().map(|a| a as &dyn LocalApic),
        ApicChoice::X2Apic => Some(&X2APIC as &dyn LocalApic),
    }
}

/// The mode [`init`] chose (`None` on the no-APIC fallback).
pub fn mode() -> Option<ApicChoice> {
    MODE.get().copied()
}

/// The highest APIC id the xAPIC can address (8-bit destination; 0xff is
/// the broadcast id).
pub const XAPIC_MAX_ID: u32 = 0xfe;

/// This CPU's initial APIC id from CPUID (usable before the APIC is
/// mapped): the 32-bit x2APIC id from leaf 0xB where the CPU has it, else
/// the 8-bit id of leaf 1.
pub fn initial_id() -> u32 {
    if cpu::cpuid(0, 0)[0] >= 0xb && cpu::cpuid(0xb, 0)[1] != 0 {
        return cpu::cpuid(0xb, 0)[3];
    }
    cpu::cpuid(1, 0)[1] >> 24
}

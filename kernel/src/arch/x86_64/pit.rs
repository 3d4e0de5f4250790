//! The 8253/8254 programmable interval timer: the reference clock for
//! calibrating the TSC and the local APIC timer, and the fallback tick on
//! CPUs without a local APIC.
//!
//! Calibration uses channel 2 (gated through port 0x61, not wired to an
//! IRQ) in mode 0: its OUT2 line, readable at port 0x61 bit 5, goes high
//! when the count reaches zero, so one `in` per poll tells when the window
//! ends (Linux's `pit_calibrate_tsc` does the same). Machines without
//! port 0x61 (QEMU microvm: it reads 0xff there, [`channel2_gate_present`])
//! may still have the PIT itself: [`measure_channel0`] then lets channel 0
//! run free and reads it by latching (command 0x00 to port 0x43, then two
//! reads of port 0x40). Every wait here is bounded by the PIT itself plus a
//! TSC fail-safe, never by a loop count.

use super::cpu::{inb, outb, rdtsc};

/// The PIT's input clock (Hz), fixed by the PC design.
pub const PIT_HZ: u64 = 1_193_182;

/// Channel 0 and channel 2 data ports, and the mode/command port.
const CH0_DATA: u16 = 0x40;
const CH2_DATA: u16 = 0x42;
const COMMAND: u16 = 0x43;
/// Port B of the keyboard controller: bit 0 gates channel 2, bit 1 drives
/// the speaker, bit 5 reads OUT2.
const PORT_B: u16 = 0x61;
const PORT_B_GATE2: u8 = 1 << 0;
const PORT_B_SPEAKER: u8 = 1 << 1;
const PORT_B_OUT2: u8 = 1 << 5;

/// Command: channel 2, lobyte/hibyte access, mode 0, binary.
const CMD_CH2_MODE0: u8 = 0b1011_0000;
/// Command: latch channel 0's count (read it next at port 0x40, low byte first).
const CMD_CH0_LATCH: u8 = 0b0000_0000;
/// What port 0x61 reads where no device decodes it (floating bus).
const PORT_B_ABSENT: u8 = 0xff;
/// Command: channel 0, lobyte/hibyte, mode 0 (one-shot: interrupt on terminal count).
const CMD_CH0_MODE0: u8 = 0b0011_0000;
/// Command: channel 0, lobyte/hibyte, mode 2 (rate generator: periodic).
const CMD_CH0_MODE2: u8 = 0b0011_0100;

/// A fail-safe for a PIT that never counts: give up after this many TSC
/// cycles per millisecond of window (20 GHz: no real TSC is faster).
const FAILSAFE_CYCLES_PER_MS: u64 = 20_000_000;

/// What one calibration window measured.
pub struct Window {
    /// TSC cycles that passed during the window.
    pub tsc_cycles: u64,
    /// The window's length in PIT ticks.
    pub pit_ticks: u64,
}

/// Runs `during` right after starting a window of `ms` milliseconds
/// (1..=50) on channel 2, then waits for the window to end and returns the
/// TSC cycles it took, and `after`'s result taken at the end. Returns
/// `None` when the PIT never signals the end (no PIT, or a broken one).
pub fn measure<T>(
    ms: u64,
    during: impl FnOnce(),
    after: impl FnOnce() -> T,
) -> Option<(Window, T)> {
    let ticks = (PIT_HZ * ms.clamp(1, 50) / 1000) as u16;
    let b = inb(PORT_B);
    outb(PORT_B, (b & !PORT_B_SPEAKER) | PORT_B_GATE2);
    outb(COMMAND, CMD_CH2_MODE0);
    outb(CH2_DATA, ticks as u8);
    during();
    let start = rdtsc();
    outb(CH2_DATA, (ticks >> 8) as u8); // counting starts with the high byte
    let failsafe = FAILSAFE_CYCLES_PER_MS * ms.max(1);
    let end = loop {
        let now = rdtsc();
        if inb(PORT_B) & PORT_B_OUT2 != 0 {
            break now;
        }
        if now.wrapping_sub(start) > failsafe {
            return None;
        }
    };
    let t = after();
    Some((
        Window {
            tsc_cycles: end.wrapping_sub(start),
            pit_ticks: u64::from(ticks),
        },
        t,
    ))
}

/// Whether port 0x61 (port B, with channel 2's gate and OUT2) exists:
/// an absent port reads 0xff, where a PC's reads 0x10 or 0x30 (bits 6
/// and 7, memory and I/O check errors, are never both set in practice).
pub fn channel2_gate_present() -> bool {
    inb(PORT_B) != PORT_B_ABSENT
}

fn channel0_latched() -> u16 {
    outb(COMMAND, CMD_CH0_LATCH);
    let lo = inb(CH0_DATA);
    let hi = inb(CH0_DATA);
    u16::from_le_bytes([lo, hi])
}

/// Measures a window of `ms` milliseconds (1..=50) on channel 0, read by
/// latching. Channel 0 runs free in mode 2 with the longest period (65536
/// ticks, 55 ms) meanwhile; every read's distance from the previous one
/// (modulo the period) is added up, so the window may span wraps as long
/// as two reads are less than 55 ms apart. Returns `None` when the count
/// never moves (no PIT: unassigned ports read 0xff). Leaves channel 0
/// stopped. The caller keeps interrupts off; IRQ0 may be raised at each
/// wrap but is masked at the PIC and the I/O APIC.
pub fn measure_channel0(ms: u64) -> Option<Window> {
    let target = PIT_HZ * ms.clamp(1, 50) / 1000;
    outb(COMMAND, CMD_CH0_MODE2);
    outb(CH0_DATA, 0);
    outb(CH0_DATA, 0); // 0 = 65536: the longest period
    let failsafe = FAILSAFE_CYCLES_PER_MS * ms.max(1);
    // Wait for the count to move, so the window starts on a tick edge.
    let first = channel0_latched();
    let t0 = rdtsc();
    let (mut prev, start) = loop {
        let c = channel0_latched();
        let now = rdtsc();
        if c != first {
            break (c, now);
        }
        if now.wrapping_sub(t0) > failsafe {
            stop();
            return None;
        }
    };
    let mut ticks = 0u64;
    let end = loop {
        let c = channel0_latched();
        let now = rdtsc();
        // The count runs down: the distance travelled is prev - c.
        ticks += u64::from(prev.wrapping_sub(c));
        prev = c;
        if ticks >= target {
            break now;
        }
        if now.wrapping_sub(start) > failsafe {
            stop();
            return None;
        }
    };
    stop();
    Some(Window {
        tsc_cycles: end.wrapping_sub(start),
        pit_ticks: ticks,
    })
}

/// Starts channel 0 as a periodic tick at `hz` (the no-APIC fallback).
pub fn start_periodic(hz: u64) {
    let divisor = (PIT_HZ / hz.max(19)).clamp(1, 65535) as u16;
    outb(COMMAND, CMD_CH0_MODE2);
    outb(CH0_DATA, divisor as u8);
    outb(CH0_DATA, (divisor >> 8) as u8);
}

/// Arms channel 0 to interrupt once after `ticks` PIT ticks (clamped to
/// 1..=65535, about 55 ms).
pub fn start_oneshot(ticks: u64) {
    let count = ticks.clamp(1, 65535) as u16;
    outb(COMMAND, CMD_CH0_MODE0);
    outb(CH0_DATA, count as u8);
    outb(CH0_DATA, (count >> 8) as u8);
}

/// Stops channel 0 (mode 0 with no count written never fires).
pub fn stop() {
    outb(COMMAND, CMD_CH0_MODE0);
}

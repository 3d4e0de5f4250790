//! The legacy 8259 PIC pair: remapped and masked at boot.
//!
//! The BIOS leaves the master PIC on vectors 8..15, where IRQ0 (the PIT)
//! would look like a double fault once interrupts are on. We remap both
//! PICs to [`PIC_VECTOR_BASE`]..+16 and mask every line. Only the PIT/PIC
//! fallback tick (no local APIC) unmasks IRQ0.

use super::cpu::{inb, outb};

/// Master PIC command and data ports (PC/AT standard).
const PIC1_CMD: u16 = 0x20;
const PIC1_DATA: u16 = 0x21;
/// Slave PIC command and data ports.
const PIC2_CMD: u16 = 0xa0;
const PIC2_DATA: u16 = 0xa1;
/// ICW1: initialization, ICW4 follows.
const ICW1_INIT_ICW4: u8 = 0x11;
/// ICW4: 8086 mode.
const ICW4_8086: u8 = 0x01;
/// OCW2: non-specific end of interrupt.
const OCW2_EOI: u8 = 0x20;
/// An unused port written between PIC commands as a short I/O delay.
const IO_DELAY_PORT: u16 = 0x80;

/// First vector of the remapped PICs (IRQ0 = the PIT).
pub const PIC_VECTOR_BASE: u8 = 0x20;
/// The vector IRQ0 (PIT) arrives on after remapping.
pub const PIT_VECTOR: u8 = PIC_VECTOR_BASE;

fn io_wait() {
    outb(IO_DELAY_PORT, 0);
}

/// Remaps both PICs to [`PIC_VECTOR_BASE`] and masks every line.
pub fn remap_and_mask() {
    outb(PIC1_CMD, ICW1_INIT_ICW4);
    io_wait();
    outb(PIC2_CMD, ICW1_INIT_ICW4);
    io_wait();
    outb(PIC1_DATA, PIC_VECTOR_BASE);
    io_wait();
    outb(PIC2_DATA, PIC_VECTOR_BASE + 8);
    io_wait();
    outb(PIC1_DATA, 4); // the slave sits on IRQ2
    io_wait();
    outb(PIC2_DATA, 2); // its cascade identity
    io_wait();
    outb(PIC1_DATA, ICW4_8086);
    io_wait();
    outb(PIC2_DATA, ICW4_8086);
    io_wait();
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);
}

/// Unmasks IRQ0 (the PIT) only: the fallback tick.
pub fn unmask_timer() {
    let mask = inb(PIC1_DATA) & !1;
    outb(PIC1_DATA, mask);
}

/// Whether `vector` is one of the PICs' (a remapped IRQ).
pub fn owns_vector(vector: u64) -> bool {
    (u64::from(PIC_VECTOR_BASE)..u64::from(PIC_VECTOR_BASE) + 16).contains(&vector)
}

/// Acknowledges the IRQ behind `vector` (slave first when it came from there).
pub fn eoi(vector: u64) {
    if vector >= u64::from(PIC_VECTOR_BASE) + 8 {
        outb(PIC2_CMD, OCW2_EOI);
    }
    outb(PIC1_CMD, OCW2_EOI);
}

/// Whether IRQ 7/15 on `vector` is spurious (not set in the in-service register).
pub fn is_spurious(vector: u64) -> bool {
    /// OCW3: read the in-service register on the next read of the command port.
    const OCW3_READ_ISR: u8 = 0x0b;
    let (cmd, bit) = match vector.checked_sub(u64::from(PIC_VECTOR_BASE)) {
        Some(7) => (PIC1_CMD, 7),
        Some(15) => (PIC2_CMD, 7),
        _ => return false,
    };
    outb(cmd, OCW3_READ_ISR);
    let spurious = inb(cmd) & (1 << bit) == 0;
    if spurious && cmd == PIC2_CMD {
        // The master saw a real IRQ2 from the slave: acknowledge it.
        outb(PIC1_CMD, OCW2_EOI);
    }
    spurious
}

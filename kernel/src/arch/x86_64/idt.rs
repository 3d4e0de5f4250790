//! The interrupt descriptor table, shared by every CPU.
//!
//! Every vector points at its stub in [`super::entry::trap_stubs`]; all are
//! interrupt gates (IF cleared on entry) at DPL 0, so `int n` from user mode
//! raises #GP instead of reaching a handler (`int1`/`icebp` is the one
//! exception: it raises #DB without a DPL check, which ends the process
//! like any user #DB). The double fault, NMI, #DB and #MC run on their own
//! IST stacks (table in gdt.rs), so they work on a broken kernel stack and
//! in the syscall stub before it switched stacks.

use alloc::boxed::Box;
use spin::Once;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use super::entry::trap_stub_addr;
use super::gdt::{IST_DEBUG, IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CS};

/// Vector of the debug exception (#DB).
const VECTOR_DEBUG: u8 = 1;
/// Vector of the NMI.
const VECTOR_NMI: u8 = 2;
/// Vector of the double fault (#DF).
const VECTOR_DOUBLE_FAULT: u8 = 8;
/// Vector of the machine check (#MC).
const VECTOR_MACHINE_CHECK: u8 = 18;
/// Present, DPL 0, 64-bit interrupt gate.
const GATE_INTERRUPT: u8 = 0x8e;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    fn new(handler: u64, ist: u16) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist: ist as u8,
            attributes: GATE_INTERRUPT,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: Once<&'static Idt> = Once::new();

/// Loads the IDT on this CPU (building it on first use).
pub fn load() {
    let idt = IDT.call_once(|| {
        let mut idt = Box::new(Idt([Gate::default(); 256]));
        for v in 0..=255u8 {
            let ist = match v {
                VECTOR_DOUBLE_FAULT => IST_DOUBLE_FAULT,
                VECTOR_NMI => IST_NMI,
                VECTOR_DEBUG => IST_DEBUG,
                VECTOR_MACHINE_CHECK => IST_MACHINE_CHECK,
                _ => 0,
            };
            idt.0[usize::from(v)] = Gate::new(trap_stub_addr(v), ist);
        }
        Box::leak(idt)
    });
    let ptr = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::new(&idt.0 as *const _ as u64),
    };
    // SAFETY: the table is 'static, fully initialized and its gates point at
    // the trap stubs with the kernel code selector.
    unsafe { lidt(&ptr) };
}

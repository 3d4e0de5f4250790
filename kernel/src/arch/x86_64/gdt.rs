//! Per-CPU GDT and TSS.
//!
//! Layout (fixed; the syscall MSRs and the user frames depend on it):
//! `0x08` kernel code, `0x10` kernel data, `0x18` user data (DPL 3),
//! `0x20` user code (DPL 3), `0x28` the TSS. TSS.RSP0 is the CPU's one
//! kernel stack (shared with the syscall entry). The vectors that can
//! arrive on a kernel stack that is not usable (a double fault), or in the
//! syscall stub before it has switched to the kernel stack (NMI, #DB,
//! #MC), each get their own IST stack, so they never run on a user RSP and
//! never nest on one another's stack:
//!
//! | IST | vector | why |
//! |---|---|---|
//! | 1 | 8 #DF | the kernel stack may be what failed |
//! | 2 | 2 NMI | stop/park IPIs; can land anywhere, even before `swapgs` |
//! | 3 | 1 #DB | a single-step trap can land on the syscall stub's first instruction |
//! | 4 | 18 #MC | asynchronous, can land anywhere |

use alloc::boxed::Box;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::{PrivilegeLevel, VirtAddr};

/// Kernel code selector.
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data selector.
pub const KERNEL_DS: u16 = 0x10;
/// User data selector (RPL 3).
pub const USER_DS: u16 = 0x18 | 3;
/// User code selector (RPL 3).
pub const USER_CS: u16 = 0x20 | 3;

/// IST index of the double-fault stack (1-based in the IDT, 0-based in the TSS).
pub const IST_DOUBLE_FAULT: u16 = 1;
/// IST index of the NMI stack.
pub const IST_NMI: u16 = 2;
/// IST index of the debug-exception (#DB) stack.
pub const IST_DEBUG: u16 = 3;
/// IST index of the machine-check (#MC) stack.
pub const IST_MACHINE_CHECK: u16 = 4;
/// Size of each IST stack.
pub const IST_STACK_BYTES: usize = 16 * 1024;

/// Bytes reserved at the top of each IST stack, above the hardware frame:
/// the first word holds this CPU's `PerCpu` address (see [`init_cpu`]).
pub const IST_TOP_RESERVED: u64 = 16;

/// Builds and loads a GDT and TSS for this CPU. `kernel_stack_top` becomes
/// TSS.RSP0. `percpu_block` (this CPU's `PerCpu` address) is stored in the
/// top word of each IST stack, right above where the CPU pushes its frame,
/// so a paranoid entry finds its CPU's GS base without trusting GS_BASE
/// (entry.rs). The tables are leaked: a CPU never goes away.
pub fn init_cpu(kernel_stack_top: u64, percpu_block: u64) {
    let mut tss = Box::new(TaskStateSegment::new());
    tss.privilege_stack_table[0] = VirtAddr::new(kernel_stack_top);
    for ist in [IST_DOUBLE_FAULT, IST_NMI, IST_DEBUG, IST_MACHINE_CHECK] {
        let stack: &'static mut [u8] =
            Box::leak(alloc::vec![0u8; IST_STACK_BYTES].into_boxed_slice());
        let end = (stack.as_ptr() as u64 + IST_STACK_BYTES as u64) & !15;
        let top = end - IST_TOP_RESERVED;
        let offset = usize::try_from(top - stack.as_ptr() as u64).expect("inside the stack");
        stack[offset..offset + 8].copy_from_slice(&percpu_block.to_le_bytes());
        tss.interrupt_stack_table[usize::from(ist - 1)] = VirtAddr::new(top);
    }
    let tss: &'static TaskStateSegment = Box::leak(tss);

    let gdt: &'static mut GlobalDescriptorTable = Box::leak(Box::new(GlobalDescriptorTable::new()));
    let kcs = gdt.append(Descriptor::kernel_code_segment());
    let kds = gdt.append(Descriptor::kernel_data_segment());
    let uds = gdt.append(Descriptor::user_data_segment());
    let ucs = gdt.append(Descriptor::user_code_segment());
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    assert_eq!(kcs.0, KERNEL_CS);
    assert_eq!(kds.0, KERNEL_DS);
    assert_eq!(uds.0 | 3, USER_DS);
    assert_eq!(ucs.0 | 3, USER_CS);
    assert_eq!(tss_sel.0, 0x28);
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, with the layout the
    // asserts above check; the TSS descriptor is present and unused.
    unsafe {
        CS::set_reg(SegmentSelector::new(1, PrivilegeLevel::Ring0));
        SS::set_reg(SegmentSelector::new(2, PrivilegeLevel::Ring0));
        DS::set_reg(SegmentSelector::new(2, PrivilegeLevel::Ring0));
        ES::set_reg(SegmentSelector::new(2, PrivilegeLevel::Ring0));
        load_tss(tss_sel);
    }
}

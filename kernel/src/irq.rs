//! Interrupt vectors and their dispatch: the timer tick, the IPIs, the
//! spurious vectors, the legacy PIC lines, and the NMI.
//!
//! Vector map (one table, owners in brackets):
//! - `0x20..0x30` legacy PIC after remapping (`arch::pic`); IRQ0 `0x20`
//!   is the PIT tick on the no-APIC fallback (`time`)
//! - `0xf0` local APIC timer (`time::TIMER_VECTOR`)
//! - `0xf1` reschedule/wake IPI (`smp::RESCHED_VECTOR`)
//! - `0xf2` function-call and TLB-shootdown IPI (`smp::CALL_VECTOR`)
//! - `0xff` local APIC spurious (`smp::SPURIOUS_VECTOR`)
//! - NMI (vector 2): the stop and park requests of `smp`.

use crate::arch::{self, apic, pic, TrapFrame};
use crate::percpu::{self, stats};
use crate::{smp, time};

/// Called for every vector >= 32.
pub fn handle(frame: &mut TrapFrame) {
    let vector = frame.vector;
    match u8::try_from(vector) {
        Ok(time::TIMER_VECTOR) => {
            time::on_timer_interrupt();
            percpu::bump(&stats(arch::cpu_id()).ticks);
            lapic_eoi();
            crate::sched::timer_tick(frame);
        }
        Ok(smp::RESCHED_VECTOR) => {
            percpu::bump(&stats(arch::cpu_id()).ipi_recv);
            lapic_eoi();
            crate::sched::resched_ipi(frame);
        }
        Ok(smp::CALL_VECTOR) => {
            percpu::bump(&stats(arch::cpu_id()).ipi_recv);
            smp::handle_call_ipi();
            lapic_eoi();
        }
        Ok(smp::SPURIOUS_VECTOR) => {}
        _ if pic::owns_vector(vector) => legacy(frame),
        _ => panic!(
            "unexpected interrupt vector {} at rip={:#x}",
            vector, frame.rip
        ),
    }
}

fn legacy(frame: &mut TrapFrame) {
    let vector = frame.vector;
    if pic::is_spurious(vector) {
        return;
    }
    pic::eoi(vector);
    if vector == u64::from(time::PIT_TIMER_VECTOR) && time::timer_kind() == time::TimerKind::Pit {
        percpu::bump(&stats(arch::cpu_id()).ticks);
        crate::sched::timer_tick(frame);
    }
}

fn lapic_eoi() {
    if let Some(a) = apic::local() {
        a.eoi();
    }
}

/// The NMI (vector 2): a stop or park request, else a hardware NMI, which
/// in the kernel is a bug.
pub fn nmi(frame: &mut TrapFrame) {
    if !smp::handle_nmi(frame) {
        panic!("unexpected NMI at rip={:#x}", frame.rip);
    }
}

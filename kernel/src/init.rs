//! The init service: runs the scenario the manifest describes.

use abi::initrd::Payload;

use crate::arch;
use crate::mm;

/// Prints the scenario, runs the boot checks and reports the verdict.
pub fn run(initrd: Payload<'static>) -> ! {
    let m = &initrd.manifest;
    kprintln!("init: scenario {} ({} program(s), workload: {})", m.scenario.name, m.programs.len(), m.workload.is_some());
    let mut ok = boot_checks();
    ok &= crate::selftest::run(&m.scenario.selftests);
    crate::percpu::print_cpustat();
    verdict(m.scenario.name, ok.then_some(()).ok_or("boot checks failed"))
}

fn boot_checks() -> bool {
    let free = mm::frame::free_frames();
    let mut ok = free > 1024 && free <= mm::frame::total_frames();
    let before = mm::heap::used_bytes();
    for round in 0..64usize {
        let v: alloc::vec::Vec<u64> = (0..(round * 37 + 1) as u64).collect();
        ok &= v.iter().sum::<u64>() == (v.len() as u64 * (v.len() as u64 - 1)) / 2;
    }
    ok &= mm::heap::used_bytes() == before;
    kprintln!("SMOKE boot {}", if ok { "PASS" } else { "FAIL reason=memory-checks" });
    ok
}

/// Prints the verdict line and powers off with a matching status.
pub fn verdict(name: &str, result: Result<(), &str>) -> ! {
    match result {
        Ok(()) => {
            kprintln!("SCENARIO {name} PASS");
            arch::qemu::exit(abi::QEMU_EXIT_PASS)
        }
        Err(reason) => {
            kprintln!("SCENARIO {name} FAIL reason={reason}");
            arch::qemu::exit(abi::QEMU_EXIT_FAIL)
        }
    }
}

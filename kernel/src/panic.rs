//! The panic path: report, stop the other CPUs, power off with the panic status.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch;

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    arch::cli();
    let cpu = if arch::percpu::installed() {
        arch::cpu_id() as i64
    } else {
        -1
    };
    if PANICKING.swap(true, Ordering::SeqCst) {
        // A second panic (another CPU, or a panic while panicking): the
        // first one reports and powers off.
        arch::halt_forever();
    }
    crate::smp_stop_others();
    let loc = info
        .location()
        .map(|l| (l.file(), l.line()))
        .unwrap_or(("?", 0));
    crate::console::print_panic(format_args!(
        "PANIC {} at {}:{} cpu={}\n",
        info.message(),
        loc.0,
        loc.1,
        cpu
    ));
    arch::qemu::exit(abi::QEMU_EXIT_PANIC)
}

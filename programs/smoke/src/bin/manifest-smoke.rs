//! `manifest-smoke --expect-caps K1,K2 --expect-tail "A|B" A B`: checks that
//! the arguments and capabilities arrive exactly as the manifest lists them
//! (slot 0 = self, then the granted kinds in order, nothing more; the tail
//! arguments byte for byte, spaces included), that the start-up block agrees
//! with the kernel (pid, CPUs, TSC Hz) and that the kernel refuses an
//! operation on a capability of the wrong kind and on an empty slot.
#![no_std]
#![no_main]

use abi::caps::CapKind;
use rt::{sys, Args, Error};
use smoke::{ensure, fail, need_cap, Ctx, Fail};

rt::entry!(main);

fn main(args: &Args) -> i64 {
    smoke::run("manifest", args, body)
}

fn body(a: &Args) -> Result<(), Fail> {
    ensure!(a.get(0) == Some("--expect-caps"), "arg0 is {:?}", a.get(0));
    let Some(caps) = a.get(1) else {
        fail!("no arg1")
    };
    ensure!(a.get(2) == Some("--expect-tail"), "arg2 is {:?}", a.get(2));
    let Some(tail) = a.get(3) else {
        fail!("no arg3")
    };

    // Capabilities: slot 0 is self, then exactly the listed kinds.
    ensure!(
        a.cap_kind(0) == Some(CapKind::SelfProcess),
        "slot 0 is {:?}",
        a.cap_kind_raw(0)
    );
    let mut n = 1u32;
    for name in caps.split(',').filter(|s| !s.is_empty()) {
        let Some(kind) = CapKind::from_name(name) else {
            fail!("bad expected kind {}", name)
        };
        ensure!(
            a.cap_kind(n) == Some(kind),
            "slot {} is {:?}, want {}",
            n,
            a.cap_kind_raw(n),
            name
        );
        n += 1;
    }
    ensure!(
        a.cap_count() == n,
        "{} slots described, want {}",
        a.cap_count(),
        n
    );

    // Arguments after the four flags: exactly the '|'-separated tail.
    let mut i = 4;
    for want in tail.split('|') {
        ensure!(
            a.get(i) == Some(want),
            "arg{} is {:?}, want {:?}",
            i,
            a.get(i),
            want
        );
        i += 1;
    }
    ensure!(a.len() == i, "{} args, want {}", a.len(), i);

    // The start-up block agrees with the kernel.
    let (_, pid) = sys::mem_stats().ctx("mem-stats")?;
    ensure!(
        pid == a.pid(),
        "startup pid {} but mem-stats pid {}",
        a.pid(),
        pid
    );
    let (cpus, hz) = sys::sys_info().ctx("sys-info")?;
    ensure!(
        cpus == a.cpus() && cpus >= 1,
        "cpus: startup {} sys-info {}",
        a.cpus(),
        cpus
    );
    ensure!(
        hz == a.tsc_hz() && hz > 0,
        "tsc hz: startup {} sys-info {}",
        a.tsc_hz(),
        hz
    );

    // Kind checks: a timer op on the console and a console op on the
    // timer are refused; an empty slot is refused.
    let console = need_cap(a, CapKind::Console)?;
    if let Some(timer) = a.find_cap(CapKind::Timer) {
        sys::timer_now(timer).ctx("timer-now")?;
        let r = sys::console_write(timer, b"must not print\n");
        ensure!(
            r == Err(Error::Denied),
            "console write on timer slot: {:?}",
            r
        );
    }
    let r = sys::timer_now(console);
    ensure!(
        r.is_err_and(|e| e == Error::Denied),
        "timer-now on console slot: {:?}",
        r
    );
    let r = sys::timer_now(a.cap_count() + 3);
    ensure!(
        r.is_err_and(|e| e == Error::BadSlot),
        "timer-now on an empty slot: {:?}",
        r
    );
    Ok(())
}

//! The init service: runs the scenario the manifest describes.
//!
//! It is a small state machine driven by process ends, not a thread: it
//! starts the manifest's programs one after another (each with exactly its
//! args and caps), judges each end against its `expect`, then runs the
//! workload program if there is a `[workload]`, and finally prints the
//! CPUSTAT lines and the one SCENARIO verdict and powers off. A watchdog
//! timer enforces `timeout_ms`; it is armed before anything else runs
//! (self-tests included), so no step can outlast it.
//!
//! The manifest was validated when the initrd was decoded
//! ([`crate::initrd`]); still, every string from it that reaches the
//! console (scenario name, program names) is printed through
//! [`Escaped`], so it can never end a line or forge one.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use abi::initrd::Payload;
use abi::manifest::{Expect, Manifest, Mode};
use abi::op::ExitKind;
use spin::Once;

use crate::arch;
use crate::cap::table::Cap;
use crate::console::Escaped;
use crate::mm;
use crate::proc::{self, ExitStatus, Waiter};
use crate::sync::IrqMutex;

static MANIFEST: Once<Manifest<'static>> = Once::new();

struct State {
    /// Next step: programs in order, then the workload.
    next: usize,
    /// Free frames and heap bytes in use just before the first program
    /// started (MEMSTAT).
    start_free_frames: u64,
    start_heap_used: usize,
    /// The step running now: (pid, label, expect).
    running: Option<(u64, String, Expect)>,
    /// Failures so far, for the verdict.
    failures: Vec<String>,
}

static STATE: IrqMutex<State, crate::sync::class::InitState> = IrqMutex::new(State {
    next: 0,
    start_free_frames: 0,
    start_heap_used: 0,
    running: None,
    failures: Vec::new(),
});

/// Boots the scenario and becomes this CPU's scheduler.
pub fn run(initrd: Payload<'static>) -> ! {
    let m = MANIFEST.call_once(|| initrd.manifest.clone());
    // First of all, so that self-tests and boot checks are bounded too.
    if let Some(ms) = m.scenario.timeout_ms {
        let deadline =
            arch::rdtsc().saturating_add(crate::time::ns_to_tsc(ms.saturating_mul(1_000_000)));
        crate::sched::timer::add(deadline, crate::sched::timer::TimerEvent::Watchdog);
    }
    kprintln!(
        "init: scenario {} ({} program(s), workload: {})",
        Escaped(m.scenario.name),
        m.programs.len(),
        m.workload.is_some()
    );
    proc::image::init(&initrd);
    if !boot_checks() {
        STATE.lock().failures.push(String::from("boot-checks"));
    }
    if !crate::selftest::run(&m.scenario.selftests) {
        STATE.lock().failures.push(String::from("selftests"));
    }
    {
        let mut s = STATE.lock();
        s.start_free_frames = mm::frame::free_frames();
        s.start_heap_used = mm::heap::used_bytes();
    }
    start_next();
    crate::sched::cpu_main(0)
}

fn boot_checks() -> bool {
    let free = mm::frame::free_frames();
    let mut ok = free > 1024 && free <= mm::frame::total_frames();
    let before = mm::heap::used_bytes();
    for round in 0..64usize {
        let v: Vec<u64> = (0..(round * 37 + 1) as u64).collect();
        ok &= v.iter().sum::<u64>() == (v.len() as u64 * (v.len() as u64 - 1)) / 2;
    }
    ok &= mm::heap::used_bytes() == before;
    kprintln!(
        "SMOKE boot {}",
        if ok {
            "PASS"
        } else {
            "FAIL reason=memory-checks"
        }
    );
    ok
}

/// One step: a program name, args, caps and what to expect.
struct Step {
    label: String,
    name: &'static str,
    args: Vec<String>,
    caps: Vec<abi::caps::CapKind>,
    expect: Expect,
    /// Its kernel-memory budget.
    kernel_kib: u32,
}

fn step(i: usize) -> Option<Step> {
    let m = MANIFEST.get()?;
    if let Some(p) = m.programs.get(i) {
        return Some(Step {
            // Escaped once here: every line and reason that names the step
            // uses this label.
            label: format!("{}", Escaped(p.name)),
            name: p.name,
            args: p.args.iter().map(|a| String::from(*a)).collect(),
            caps: p.caps.clone(),
            expect: p.expect,
            kernel_kib: p.kernel_kib.unwrap_or(abi::limits::KERNEL_KIB_DEFAULT),
        });
    }
    let w = m.workload.as_ref().filter(|_| i == m.programs.len())?;
    let workers = w.workers.resolve(crate::smp::cpu_count() as u32);
    let mode = match w.mode {
        Mode::Process => "process",
        Mode::Thread => "thread",
    };
    use abi::caps::CapKind::*;
    let args = match &w.ring {
        // kind = "ring": `ringbench parent ROUNDS NOPS TIMERS PINGPONGS WORKERS MODE REPEAT`.
        Some(r) => alloc::vec![
            String::from("parent"),
            format!("{}", r.rounds),
            format!("{}", r.nops),
            format!("{}", r.timers),
            format!("{}", r.pingpongs),
            format!("{workers}"),
            String::from(mode),
            format!("{}", w.repeat),
        ],
        None => alloc::vec![
            String::from("parent"),
            format!("{}", w.lo),
            format!("{}", w.hi),
            format!("{}", w.expected),
            format!("{workers}"),
            String::from(mode),
            format!("{}", w.repeat),
            String::from(if w.serialize { "1" } else { "0" }),
        ],
    };
    Some(Step {
        label: String::from("workload"),
        name: w.kind.program(),
        args,
        caps: alloc::vec![Console, Timer, Spawner, Stats],
        expect: Expect::Exit(0),
        kernel_kib: abi::limits::KERNEL_KIB_DEFAULT,
    })
}

/// Starts the next step, or finishes the scenario.
fn start_next() {
    loop {
        let i = {
            let mut s = STATE.lock();
            let i = s.next;
            s.next += 1;
            i
        };
        let Some(st) = step(i) else {
            // Finish from a clean context (a timer event on this CPU), once
            // the stacks that ended the last program have unwound and
            // dropped their references: MEMSTAT must see every frame back.
            let now = arch::rdtsc();
            crate::sched::timer::add(now, crate::sched::timer::TimerEvent::Finish);
            return;
        };
        let args: Vec<&[u8]> = st.args.iter().map(|a| a.as_bytes()).collect();
        let caps = st.caps.iter().filter_map(|k| Cap::grant(*k)).collect();
        let account = alloc::sync::Arc::new(mm::budget::Account::new(st.kernel_kib));
        match proc::spawn::spawn(st.name.as_bytes(), &args, caps, account, None) {
            Ok(p) => {
                kprintln!("init: started {} pid={}", st.label, p.pid);
                STATE.lock().running = Some((p.pid, st.label, st.expect));
                proc::exit::add_waiter(&p, Waiter::Init);
                return;
            }
            Err(e) => {
                kprintln!("init: cannot start {}: {}", st.label, e.name());
                STATE
                    .lock()
                    .failures
                    .push(format!("{}:spawn-{}", st.label, e.name()));
            }
        }
    }
}

/// A process init waits for has ended (called from any CPU).
pub fn process_ended(pid: u64, st: ExitStatus) {
    {
        let mut s = STATE.lock();
        let Some((running, label, expect)) = s.running.take() else {
            return;
        };
        if running != pid {
            s.running = Some((running, label, expect));
            return;
        }
        let got = match st.kind {
            ExitKind::Exited => format!("exit:{}", st.status),
            ExitKind::Faulted => format!("fault:{}", st.status),
            ExitKind::Killed => String::from("killed"),
        };
        let ok = match expect {
            Expect::Exit(n) => st.kind == ExitKind::Exited && st.status == n,
            Expect::Fault => st.kind == ExitKind::Faulted,
        };
        kprintln!(
            "init: {} pid={} ended {} ({})",
            label,
            pid,
            got,
            if ok { "as expected" } else { "UNEXPECTED" }
        );
        if !ok {
            s.failures.push(format!("{label}:{got}"));
        }
    }
    start_next();
}

/// The scenario's `timeout_ms` passed.
pub fn watchdog_fired() {
    crate::sched::thread::report();
    for c in crate::smp::online().iter() {
        let s = crate::sched::cpu::cpu(c);
        kprintln!(
            "WATCHDOG cpu={} queued={} idle={} kicked={}",
            c,
            s.queued.load(core::sync::atomic::Ordering::Relaxed),
            s.idle.load(core::sync::atomic::Ordering::Relaxed),
            s.kicked.load(core::sync::atomic::Ordering::Relaxed)
        );
    }
    STATE.lock().failures.push(String::from("timeout"));
    finish();
}

/// Every program has ended: print the counters and the verdict.
pub fn finish_now() {
    finish()
}

/// Leaves this CPU's user address space if no thread runs here (a cross-CPU
/// call from [`finish`], so the last spaces' roots come back).
/// It may be answered inside another lock holder's wait, so it only tries
/// the locks it needs (a CPU busy there has no idle space to give back).
fn release_cpu_space(_: u64) {
    let me = arch::cpu_id();
    let c = crate::sched::cpu::cpu(me);
    let Some(current) = c.current.try_lock() else {
        return;
    };
    if current.is_some() {
        return;
    }
    let Some(mut space) = c.space.try_lock() else {
        return;
    };
    if let Some(old) = space.take() {
        crate::mm::kernel_space::activate_on_this_cpu();
        old.mark_inactive(me);
    }
}

/// Prints MEMSTAT: frames and heap now against the start. A scenario whose
/// programs all ended and that did not get every frame back fails (leak).
fn memstat() -> bool {
    crate::smp::call_on(crate::smp::online_mask(), release_cpu_space, 0);
    let (start_free, start_heap, all_ended) = {
        let s = STATE.lock();
        (s.start_free_frames, s.start_heap_used, s.running.is_none())
    };
    let free = mm::frame::free_frames();
    let charged = mm::budget::heap_pool_used();
    let timers: usize = (0..crate::smp::MAX_CPUS)
        .map(crate::sched::timer::pending)
        .sum();
    kprintln!(
        "MEMSTAT free_frames={} start_free_frames={} heap_used={} start_heap_used={} charged_heap={} timers={}",
        free,
        start_free,
        mm::heap::used_bytes(),
        start_heap,
        charged,
        timers
    );
    !all_ended || (free == start_free && charged == 0)
}

/// Prints the counters and the verdict, and powers off.
fn finish() -> ! {
    let name = MANIFEST.get().map_or("unknown", |m| m.scenario.name);
    crate::cap::sqpoll::report::print();
    if !memstat() {
        STATE.lock().failures.push(String::from("leak"));
    }
    crate::percpu::print_cpustat();
    crate::sync::stat::print();
    let failures = core::mem::take(&mut STATE.lock().failures);
    if failures.is_empty() {
        verdict(name, Ok(()))
    } else {
        let reason = failures.join(",");
        verdict(name, Err(&reason))
    }
}

/// Prints the verdict line and powers off with a matching status.
pub fn verdict(name: &str, result: Result<(), &str>) -> ! {
    match result {
        Ok(()) => {
            kprintln!("SCENARIO {} PASS", Escaped(name));
            arch::qemu::exit(abi::QEMU_EXIT_PASS)
        }
        Err(reason) => {
            kprintln!("SCENARIO {} FAIL reason={reason}", Escaped(name));
            arch::qemu::exit(abi::QEMU_EXIT_FAIL)
        }
    }
}

//! Every CPU: discovery, AP bring-up, and the cross-CPU primitives
//! (reschedule IPI, function calls, TLB shootdown, stop).
//!
//! Bring-up (docs/architecture/smp.md): the boot CPU reads the MADT,
//! masks the legacy PICs, chooses the APIC mode (xAPIC or x2APIC) and the
//! timer (calibrated LAPIC or TSC-deadline) from the manifest's `[kernel]`
//! table and CPUID (a pinned mode the CPU lacks is a panic naming what is
//! missing), enables its local APIC in that mode, calibrates time, then
//! starts each AP in turn with INIT-SIPI-SIPI through the real-mode
//! trampoline (`arch::trampoline`); every AP enters the same modes.
//! Every wait is bounded by TSC time; an AP that does not answer is
//! reported and left out, never waited for forever. CPU ids: 0 is the
//! boot CPU, APs count up in MADT order. An AP that started but did not
//! come online in time keeps its index (it may
//! still be running its bring-up with that index's stacks and GS block),
//! so the online ids can have a hole: walk [`online`], never
//! `0..cpu_count()`. The test hook `test_skip_ap=<index>` on the kernel
//! command line (a test hook only: `harness test --cpu-hole` boots with
//! it) skips that AP and keeps its index, to make such a hole on purpose;
//! an index that names no AP is ignored with a log line.
//!
//! Cross-CPU requests use per-CPU outboxes and inboxes. A sender writes
//! its request into its own outbox, sets the bit of every target in the
//! outbox's `pending`, sets its own bit in each target's inbox and sends
//! [`CALL_VECTOR`]. A target takes its whole inbox with one swap, runs
//! each sender's request and clears its bit in that sender's `pending`.
//! The sender waits for `pending` to empty, and *while it waits it serves
//! its own inbox*: two CPUs that shoot each other down at once, with
//! interrupts off, each answer the other from their wait loops, so neither
//! can deadlock. A sender waits for its request, so an outbox is never
//! overwritten while a target still needs it; a request that posts another
//! (a call whose function shoots down, or one served from a wait loop)
//! uses the next of [`LEVELS`] outboxes.
//!
//! Stop and park use NMIs, which arrive even where interrupts are off.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use abi::kernel_modes::{
    self, ApicChoice, ApicMode, CpuOffer, KernelConfig, TimerChoice, TimerMode,
};

use crate::arch::apic::{self, Dest, Ipi};
use crate::arch::{self, TrapFrame};
use crate::percpu::{self, stats};
use crate::sync::IrqMutex;
use crate::time;

/// Most CPUs the kernel runs on (a CPU mask is one u64).
pub const MAX_CPUS: usize = percpu::MAX_CPUS;
/// The reschedule/wake IPI: its handler calls `crate::sched::resched_ipi`.
pub const RESCHED_VECTOR: u8 = 0xf1;
/// The function-call and TLB-shootdown IPI (see the module doc).
pub const CALL_VECTOR: u8 = 0xf2;
/// The local APIC's spurious-interrupt vector (ignored, no EOI).
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Most pages one shootdown names before it becomes a full flush.
pub const MAX_SHOOTDOWN_PAGES: usize = 32;

/// How long an AP may take to run its trampoline and reach Rust.
const AP_ALIVE_TIMEOUT_NS: u64 = 2_000_000_000;
/// How long an AP may take from Rust to "online" (its tables, stacks, APIC).
const AP_ONLINE_TIMEOUT_NS: u64 = 10_000_000_000;
/// INIT to first SIPI (MP spec: 10 ms).
const INIT_DELAY_NS: u64 = 10_000_000;
/// How long to wait for an AP after the first SIPI before sending the second.
const SIPI_RETRY_NS: u64 = 1_000_000;
/// How long a cross-CPU request may stay unanswered before it is a bug.
const CALL_TIMEOUT_NS: u64 = 5_000_000_000;
/// How long a parked CPU waits for release before resuming on its own.
const PARK_TIMEOUT_NS: u64 = 5_000_000_000;
/// How long `stop_others` waits for the others to confirm.
const STOP_WAIT_NS: u64 = 100_000_000;
/// Pages of each AP's boot stack (the stack `ap_start` and the AP's idle
/// loop run on; its trap stack is a separate one from `arch::init_cpu`).
const AP_BOOT_STACK_PAGES: u64 = 16;

struct CpuSlot {
    apic_id: AtomicU32,
    online: AtomicBool,
}

static CPUS: [CpuSlot; MAX_CPUS] = [const {
    CpuSlot {
        apic_id: AtomicU32::new(0),
        online: AtomicBool::new(false),
    }
}; MAX_CPUS];
/// Bit i set = CPU i is online.
static ONLINE_MASK: AtomicU64 = AtomicU64::new(0);
/// Usable processors the firmware reported (1 without a MADT).
static EXPECTED: AtomicUsize = AtomicUsize::new(1);
/// Set by an AP as soon as it reaches Rust: its CPU index.
static AP_ALIVE: AtomicUsize = AtomicUsize::new(usize::MAX);

/// A cross-CPU request. Kept by value (no heap on IPI paths), so the
/// page list makes one variant large on purpose.
#[derive(Clone, Copy)]
#[allow(clippy::large_enum_variant)]
enum Work {
    None,
    Call(fn(u64), u64),
    Flush {
        pages: [u64; MAX_SHOOTDOWN_PAGES],
        count: usize,
    },
    FlushAll,
}

/// How deep cross-CPU requests may nest on one CPU: a request's function
/// (or one served while waiting) may post one more request of its own.
const LEVELS: usize = 2;

/// One CPU's request as a sender, at one nesting level.
struct Outbox {
    /// The request (written only by its CPU, while no target has it pending).
    work: IrqMutex<Work, crate::sync::class::SmpWork>,
    /// Targets that have not finished it yet.
    pending: AtomicU64,
}

static OUTBOX: [[Outbox; LEVELS]; MAX_CPUS] = [const {
    [const {
        Outbox {
            work: IrqMutex::new(Work::None),
            pending: AtomicU64::new(0),
        }
    }; LEVELS]
}; MAX_CPUS];
/// `INBOX[cpu][level]`: the senders whose level-`level` request `cpu` has not run yet.
static INBOX: [[AtomicU64; LEVELS]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; LEVELS] }; MAX_CPUS];
/// How many of its own requests each CPU is waiting for right now.
static DEPTH: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// Set once a panic stops every CPU.
static STOPPING: AtomicBool = AtomicBool::new(false);
static STOPPED: AtomicUsize = AtomicUsize::new(0);
/// CPUs asked to park (self-test of the stop path), and those parked.
static PARK_REQUEST: AtomicU64 = AtomicU64::new(0);
static PARKED: AtomicU64 = AtomicU64::new(0);

/// What this CPU offers for the `[kernel]` choices (CPUID).
fn cpu_offer() -> CpuOffer {
    CpuOffer {
        x2apic: apic::has_x2apic(),
        tsc_deadline: apic::has_tsc_deadline(),
        invariant_tsc: arch::cpu::invariant_tsc(),
    }
}

/// The modes for `cfg` on this CPU, or a panic naming what is missing.
/// `None` without a usable local APIC (only `auto` may ask for that).
fn choose_modes(cfg: KernelConfig, has_apic: bool) -> Option<(ApicChoice, TimerChoice)> {
    let offer = cpu_offer();
    kprintln!(
        "smp: cpu offers x2apic={} tsc-deadline={} invariant-tsc={}; [kernel] apic={} timer={}",
        offer.x2apic,
        offer.tsc_deadline,
        offer.invariant_tsc,
        cfg.apic.name(),
        cfg.timer.name()
    );
    if !has_apic {
        if cfg.apic != ApicMode::Auto || cfg.timer != TimerMode::Auto {
            panic!(
                "[kernel] apic = \"{}\" timer = \"{}\" but this CPU has no usable local APIC (CPUID.1:EDX bit 9, IA32_APIC_BASE bit 11)",
                cfg.apic.name(),
                cfg.timer.name()
            );
        }
        return None;
    }
    let apic_mode = kernel_modes::resolve_apic(cfg.apic, offer).unwrap_or_else(|m| panic!("{m}"));
    let timer = kernel_modes::resolve_timer(cfg.timer, offer).unwrap_or_else(|m| panic!("{m}"));
    if timer == TimerChoice::TscDeadline && !offer.invariant_tsc {
        kprintln!("smp: TSC-deadline timer as pinned, though CPUID does not call the TSC invariant (CPUID.80000007H:EDX bit 8)");
    }
    Some((apic_mode, timer))
}

/// The `mode=.. timer=..` fields of the `CPU <id> online` lines.
pub fn mode_fields() -> (&'static str, &'static str) {
    let mode = apic::mode().map_or("none", ApicChoice::name);
    let timer = match time::timer_kind() {
        time::TimerKind::TscDeadline => TimerChoice::TscDeadline.name(),
        time::TimerKind::LocalApic => TimerChoice::Lapic.name(),
        time::TimerKind::Pit => "pit",
        time::TimerKind::None => "none",
    };
    (mode, timer)
}

/// Brings every CPU up. Called once by the boot CPU after
/// `arch::init_cpu(0, ..)`, with interrupts off. `rsdp` is the RSDP from
/// the boot information (physical address, whether ACPI 2.0+). `skip_ap` is
/// the `test_skip_ap=<index>` test hook from the command line: that AP is
/// not started and its index stays reserved (a hole in the CPU ids); 0 or
/// an index beyond the APs is ignored with a log line. `cfg` is the
/// manifest's `[kernel]` table.
pub fn init(rsdp: Option<(u64, bool)>, skip_ap: Option<usize>, cfg: KernelConfig) {
    let t0 = arch::rdtsc();
    arch::pic::remap_and_mask();
    let madt = match rsdp {
        None => {
            kprintln!("smp: no ACPI RSDP from the boot loader: running on the boot CPU only");
            None
        }
        Some((phys, _)) => match arch::acpi::read_madt(phys) {
            Ok(m) => Some(m),
            Err(e) => {
                kprintln!("smp: ACPI unusable ({e}): running on the boot CPU only");
                None
            }
        },
    };
    let has_apic = apic::present();
    let modes = choose_modes(cfg, has_apic);
    if let Some((mode, _)) = modes {
        apic::init(
            mode,
            madt.as_ref()
                .map_or_else(apic::base_phys_from_msr, |m| m.lapic_phys),
        );
    }
    let lapic = apic::local();
    if let Some(a) = lapic {
        a.enable(SPURIOUS_VECTOR);
    }
    // The APIC timer is calibrated only when it is the timer: TSC-deadline
    // counts in TSC cycles.
    time::calibrate(matches!(modes, Some((_, TimerChoice::Lapic))));
    let bsp_apic = lapic.map_or_else(apic::initial_id, |a| a.id());
    match modes {
        Some((_, TimerChoice::Lapic)) => time::set_timer_kind(time::TimerKind::LocalApic),
        Some((_, TimerChoice::TscDeadline)) => time::set_timer_kind(time::TimerKind::TscDeadline),
        None => {
            time::set_timer_kind(time::TimerKind::Pit);
            arch::pic::unmask_timer();
        }
    }
    time::init_cpu_timer();
    time::set_periodic(time::DEFAULT_TICK_HZ);
    mark_online(0, bsp_apic);

    let (Some(a), Some(m)) = (lapic, madt) else {
        if !has_apic {
            kprintln!("smp: no local APIC: PIT/PIC tick on the boot CPU only");
        }
        if let Some(i) = skip_ap {
            kprintln!("smp: test_skip_ap={i} ignored: no APs to start");
        }
        return;
    };
    if m.dropped > 0 {
        kprintln!(
            "smp: {} processor(s) beyond {} ignored",
            m.dropped,
            MAX_CPUS
        );
    }
    let expected = m.count + usize::from(!m.apic_ids[..m.count].contains(&bsp_apic));
    EXPECTED.store(expected, Ordering::Relaxed);
    arch::trampoline::install(crate::mm::kernel_space::kernel_pml4().phys());
    let mut next = 1;
    // APs take indices 1..aps; MAX_CPUS bounds them too.
    let aps = expected.min(MAX_CPUS);
    let skip = skip_ap.filter(|&i| {
        let ok = (1..aps).contains(&i);
        if !ok {
            kprintln!(
                "smp: test_skip_ap={i} ignored: no AP has that index ({} AP(s))",
                aps.saturating_sub(1)
            );
        }
        ok
    });
    for &id in m.apic_ids[..m.count].iter().filter(|&&id| id != bsp_apic) {
        if next >= MAX_CPUS {
            break;
        }
        if a.mode() == ApicChoice::XApic && id > apic::XAPIC_MAX_ID {
            kprintln!(
                "smp: apic {id} is beyond xAPIC's 8-bit ids: not started (x2APIC reaches it)"
            );
            continue;
        }
        if skip == Some(next) {
            kprintln!(
                "smp: CPU {next} (apic {id}) skipped (test_skip_ap): its index stays reserved"
            );
            next += 1;
            continue;
        }
        match start_ap(a, next, id) {
            Started::Online => next += 1,
            Started::NoAnswer => {}
            // It runs but did not finish in time: keep its index reserved.
            Started::Late => next += 1,
        }
    }
    kprintln!(
        "smp: {} of {} CPU(s) online in {} ms",
        cpu_count(),
        expected,
        time::cycles_to_ms(arch::rdtsc().wrapping_sub(t0))
    );
}

enum Started {
    Online,
    NoAnswer,
    Late,
}

/// Starts the AP with APIC id `apic_id` as CPU `index` and waits (bounded)
/// until it is online.
fn start_ap(a: &dyn apic::LocalApic, index: usize, apic_id: u32) -> Started {
    let Some(stack) = crate::mm::frame::alloc_contiguous(AP_BOOT_STACK_PAGES) else {
        kprintln!("smp: no memory for CPU {index}'s boot stack");
        return Started::NoAnswer;
    };
    arch::trampoline::publish_stack(
        stack.virt() + AP_BOOT_STACK_PAGES * crate::mm::PAGE_SIZE,
        index,
    );
    AP_ALIVE.store(usize::MAX, Ordering::SeqCst);
    a.send_ipi(Dest::Apic(apic_id), Ipi::Init);
    time::delay_ns(INIT_DELAY_NS);
    a.send_ipi(
        Dest::Apic(apic_id),
        Ipi::Startup(arch::trampoline::SIPI_VECTOR),
    );
    let alive = || AP_ALIVE.load(Ordering::SeqCst) == index;
    if !wait_until(SIPI_RETRY_NS, alive) {
        a.send_ipi(
            Dest::Apic(apic_id),
            Ipi::Startup(arch::trampoline::SIPI_VECTOR),
        );
    }
    if !wait_until(AP_ALIVE_TIMEOUT_NS, alive) && arch::trampoline::withdraw_stack() {
        kprintln!(
            "smp: CPU {index} (apic {apic_id}) did not start within {} ms; going on without it",
            AP_ALIVE_TIMEOUT_NS / 1_000_000
        );
        return Started::NoAnswer;
    }
    if !wait_until(AP_ONLINE_TIMEOUT_NS, || is_online(index)) {
        kprintln!(
            "smp: CPU {index} (apic {apic_id}) started but was not online within {} ms; going on without it",
            AP_ONLINE_TIMEOUT_NS / 1_000_000
        );
        return Started::Late;
    }
    Started::Online
}

/// Spins until `cond` holds or `timeout_ns` passes; returns whether it held.
fn wait_until(timeout_ns: u64, cond: impl Fn() -> bool) -> bool {
    let deadline = time::deadline_after_ns(timeout_ns);
    loop {
        if cond() {
            return true;
        }
        if time::passed(deadline) {
            return cond();
        }
        core::hint::spin_loop();
    }
}

fn mark_online(index: usize, apic_id: u32) {
    CPUS[index].apic_id.store(apic_id, Ordering::SeqCst);
    let (mode, timer) = mode_fields();
    kprintln!("CPU {index} online apic={apic_id} mode={mode} timer={timer}");
    CPUS[index].online.store(true, Ordering::SeqCst);
    ONLINE_MASK.fetch_or(1 << index, Ordering::SeqCst);
}

/// An AP's first Rust code (from `arch::trampoline`), on its boot stack
/// with the kernel's tables, interrupts off.
pub fn ap_start(index: usize) -> ! {
    AP_ALIVE.store(index, Ordering::SeqCst);
    // The boot CPU's mode for this CPU's APIC too, before anything reads it.
    apic::enter_mode();
    let a = apic::local().expect("an AP runs only when the APIC is up");
    let apic_id = a.id();
    arch::init_cpu(index, apic_id);
    a.enable(SPURIOUS_VECTOR);
    time::init_cpu_timer();
    time::set_periodic(time::DEFAULT_TICK_HZ);
    mark_online(index, apic_id);
    crate::sched::ap_main(index)
}

/// Whether CPU `cpu` is online.
pub fn is_online(cpu: usize) -> bool {
    cpu < MAX_CPUS && CPUS[cpu].online.load(Ordering::SeqCst)
}

/// Online CPUs as a mask (bit i = CPU i).
pub fn online_mask() -> u64 {
    ONLINE_MASK.load(Ordering::SeqCst)
}

/// The online CPUs. Their ids need not be dense (see the module doc):
/// every loop over CPUs walks this set.
pub fn online() -> klib::cpuset::CpuSet {
    klib::cpuset::CpuSet::from_mask(online_mask())
}

/// How many CPUs are online (not a bound on their ids: see [`online`]).
pub fn cpu_count() -> usize {
    online().len()
}

/// How many usable processors the firmware (MADT) reported; 1 without ACPI.
pub fn expected_count() -> usize {
    EXPECTED.load(Ordering::Relaxed)
}

/// CPU `cpu`'s local APIC id.
pub fn apic_id(cpu: usize) -> u32 {
    CPUS[cpu].apic_id.load(Ordering::Relaxed)
}

fn send(cpu: usize, ipi: Ipi) {
    if let Some(a) = apic::local() {
        // To this CPU: the self-IPI path (the x2APIC's SELF IPI MSR).
        let dest = if cpu == arch::cpu_id() {
            Dest::SelfOnly
        } else {
            Dest::Apic(apic_id(cpu))
        };
        a.send_ipi(dest, ipi);
        percpu::bump(&stats(arch::cpu_id()).ipi_sent);
    }
}

/// Wakes CPU `cpu` (out of `sti; hlt`) with [`RESCHED_VECTOR`]; its handler
/// calls `crate::sched::resched_ipi`. No-op for an offline CPU.
pub fn send_resched(cpu: usize) {
    if is_online(cpu) {
        send(cpu, Ipi::Fixed(RESCHED_VECTOR));
    }
}

/// Runs `f(arg)` on every online CPU in `mask` (this one included, directly)
/// and returns when all have finished. `f` runs with interrupts off, in an
/// interrupt handler or a wait loop: it must be short, must not block and
/// must not itself wait for this CPU.
pub fn call_on(mask: u64, f: fn(u64), arg: u64) {
    post(mask, Work::Call(f, arg));
}

/// Invalidates `pages` (virtual addresses) on every online CPU in `mask`
/// and returns when all have acknowledged. An empty slice, or more than
/// [`MAX_SHOOTDOWN_PAGES`], flushes every non-global translation instead.
/// All pages travel in one IPI per target.
pub fn shootdown(mask: u64, pages: &[u64]) {
    let work = if pages.is_empty() || pages.len() > MAX_SHOOTDOWN_PAGES {
        Work::FlushAll
    } else {
        let mut list = [0; MAX_SHOOTDOWN_PAGES];
        list[..pages.len()].copy_from_slice(pages);
        Work::Flush {
            pages: list,
            count: pages.len(),
        }
    };
    post(mask, work);
}

fn post(mask: u64, work: Work) {
    let were_enabled = arch::interrupts_enabled();
    arch::cli();
    let me = arch::cpu_id();
    let level = DEPTH[me].fetch_add(1, Ordering::SeqCst);
    assert!(
        level < LEVELS,
        "smp: cross-CPU requests nested deeper than {LEVELS} on CPU {me}"
    );
    let me_bit = 1u64 << me;
    let targets = mask & online_mask() & !me_bit;
    let outbox = &OUTBOX[me][level];
    *outbox.work.lock() = work;
    outbox.pending.store(targets, Ordering::SeqCst);
    for t in bits(targets) {
        INBOX[t][level].fetch_or(me_bit, Ordering::SeqCst);
        send(t, Ipi::Fixed(CALL_VECTOR));
    }
    if mask & me_bit != 0 {
        run(work);
    }
    let deadline = time::deadline_after_ns(CALL_TIMEOUT_NS);
    loop {
        let left = outbox.pending.load(Ordering::SeqCst);
        if left == 0 {
            break;
        }
        // Answer whoever waits for us meanwhile (see the module doc).
        serve_inbox(me);
        if time::passed(deadline) {
            panic!(
                "smp: CPU(s) {left:#x} did not answer CPU {me}'s request within {} ms",
                CALL_TIMEOUT_NS / 1_000_000
            );
        }
        core::hint::spin_loop();
    }
    DEPTH[me].fetch_sub(1, Ordering::SeqCst);
    if were_enabled {
        arch::sti();
    }
}

/// Answers the cross-CPU requests (shootdowns, calls) waiting for this
/// CPU. Long kernel loops that run with interrupts off call it between
/// steps, with no lock held, so a CPU asked for a shootdown answers within
/// one step, not at the end of the loop (issue 11: bounded work).
pub fn answer_requests() {
    serve_inbox(arch::cpu_id());
}

fn serve_inbox(me: usize) {
    for level in 0..LEVELS {
        let senders = INBOX[me][level].swap(0, Ordering::SeqCst);
        for s in bits(senders) {
            let outbox = &OUTBOX[s][level];
            let work = *outbox.work.lock();
            run(work);
            outbox.pending.fetch_and(!(1 << me), Ordering::SeqCst);
        }
    }
}

fn run(work: Work) {
    match work {
        Work::None => {}
        Work::Call(f, arg) => f(arg),
        Work::Flush { pages, count } => {
            for &p in &pages[..count] {
                arch::tlb::flush_page(p);
            }
            percpu::bump(&stats(arch::cpu_id()).shootdowns);
        }
        Work::FlushAll => {
            arch::tlb::flush_all();
            percpu::bump(&stats(arch::cpu_id()).shootdowns);
        }
    }
}

/// The set bits of `mask`, lowest first. A plain shift loop: no
/// `tzcnt`/`popcnt`, which stop our KVM in ring 0 (DESIGN.md).
pub fn bits(mask: u64) -> impl Iterator<Item = usize> {
    klib::cpuset::CpuSet::from_mask(mask).iter()
}

/// The [`CALL_VECTOR`] handler (from `crate::irq`, interrupts off).
pub fn handle_call_ipi() {
    serve_inbox(arch::cpu_id());
}

/// Stops every other CPU with an NMI (the panic path) and waits briefly
/// for them to confirm. Safe to call before SMP is up (then it does nothing).
pub fn stop_others() {
    STOPPING.store(true, Ordering::SeqCst);
    let others = cpu_count().saturating_sub(1);
    let Some(a) = apic::local() else { return };
    if others == 0 {
        return;
    }
    a.send_ipi(Dest::AllButSelf, Ipi::Nmi);
    if time::tsc_hz() != 0 {
        wait_until(STOP_WAIT_NS, || STOPPED.load(Ordering::SeqCst) >= others);
    }
    kprintln!(
        "smp: stopped {} of {} other CPU(s)",
        STOPPED.load(Ordering::SeqCst),
        others
    );
}

/// The NMI handler (from `crate::trap` via `crate::irq`). Returns false
/// when the NMI was not ours (a hardware NMI: the caller panics).
pub fn handle_nmi(_frame: &mut TrapFrame) -> bool {
    if STOPPING.load(Ordering::SeqCst) {
        // Do not touch GS: the NMI may have hit the syscall stub before swapgs.
        STOPPED.fetch_add(1, Ordering::SeqCst);
        arch::halt_forever();
    }
    let bit = 1u64 << arch::cpu_id();
    if PARK_REQUEST.load(Ordering::SeqCst) & bit == 0 {
        return false;
    }
    PARKED.fetch_or(bit, Ordering::SeqCst);
    let deadline = time::deadline_after_ns(PARK_TIMEOUT_NS);
    while PARK_REQUEST.load(Ordering::SeqCst) & bit != 0 && !time::passed(deadline) {
        if STOPPING.load(Ordering::SeqCst) {
            STOPPED.fetch_add(1, Ordering::SeqCst);
            arch::halt_forever();
        }
        core::hint::spin_loop();
    }
    PARKED.fetch_and(!bit, Ordering::SeqCst);
    true
}

/// Parks CPU `cpu` in its NMI handler (the stop path, minus the halt) and
/// waits until it confirms. Returns false if it did not within the timeout.
pub fn park(cpu: usize, timeout_ns: u64) -> bool {
    if !is_online(cpu) || cpu == arch::cpu_id() {
        return false;
    }
    let bit = 1u64 << cpu;
    PARK_REQUEST.fetch_or(bit, Ordering::SeqCst);
    send(cpu, Ipi::Nmi);
    wait_until(timeout_ns, || PARKED.load(Ordering::SeqCst) & bit != 0)
}

/// Releases a CPU parked by [`park`] and waits until it has left its NMI handler.
pub fn unpark(cpu: usize, timeout_ns: u64) -> bool {
    let bit = 1u64 << cpu;
    PARK_REQUEST.fetch_and(!bit, Ordering::SeqCst);
    wait_until(timeout_ns, || PARKED.load(Ordering::SeqCst) & bit == 0)
}

/// Whether CPU `cpu` is parked right now.
pub fn is_parked(cpu: usize) -> bool {
    PARKED.load(Ordering::SeqCst) & (1 << cpu) != 0
}

//! Sets of CPU ids and the scheduler's placement policy over them.
//!
//! CPU ids are indices into per-CPU arrays, but the online ones need not be
//! dense: an AP that started late keeps its index reserved, so the online
//! set can be {0, 2, 3}. Every loop over CPUs walks a [`CpuSet`], never
//! `0..count` (that loop would visit the hole and skip the last CPU).
//!
//! The policy functions take the load of a CPU as a closure, so the kernel
//! feeds them its atomics and the tests feed them arrays.
//!
//! Iteration is a plain shift loop: no `tzcnt`/`popcnt`, which some
//! hypervisors do not emulate in ring 0 (DESIGN.md, "Known pitfalls").

use core::sync::atomic::Ordering::SeqCst;
use core::sync::atomic::{AtomicBool, AtomicUsize};

/// Most CPUs a set can hold (a set is one `u64` mask).
pub const MAX_CPUS: usize = 64;

/// A set of CPU ids below [`MAX_CPUS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(u64);

impl CpuSet {
    /// No CPU.
    pub const EMPTY: CpuSet = CpuSet(0);

    /// The set whose bit i is CPU i.
    pub const fn from_mask(mask: u64) -> CpuSet {
        CpuSet(mask)
    }

    /// Bit i set = CPU i in the set.
    pub const fn mask(self) -> u64 {
        self.0
    }

    /// Whether `cpu` is in the set (false for ids beyond [`MAX_CPUS`]).
    pub const fn contains(self, cpu: usize) -> bool {
        cpu < MAX_CPUS && (self.0 >> cpu) & 1 != 0
    }

    /// The set plus `cpu` (unchanged for ids beyond [`MAX_CPUS`]).
    pub const fn with(self, cpu: usize) -> CpuSet {
        if cpu < MAX_CPUS {
            CpuSet(self.0 | 1 << cpu)
        } else {
            self
        }
    }

    /// The set minus `cpu`.
    pub const fn without(self, cpu: usize) -> CpuSet {
        if cpu < MAX_CPUS {
            CpuSet(self.0 & !(1 << cpu))
        } else {
            self
        }
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many CPUs the set holds.
    pub fn len(self) -> usize {
        self.iter().count()
    }

    /// The ids in the set, lowest first.
    pub fn iter(self) -> Cpus {
        Cpus {
            rest: self.0,
            next: 0,
        }
    }

    /// The ids in the set from `start` upward, then those below `start`:
    /// a search that starts at `start` and wraps around.
    pub fn iter_from(self, start: usize) -> impl Iterator<Item = usize> {
        let start = start.min(MAX_CPUS);
        self.iter()
            .filter(move |&c| c >= start)
            .chain(self.iter().filter(move |&c| c < start))
    }

    /// The `n`-th id of the set, lowest first.
    pub fn nth(self, n: usize) -> Option<usize> {
        self.iter().nth(n)
    }
}

/// Iterator over a [`CpuSet`], lowest id first.
pub struct Cpus {
    rest: u64,
    next: usize,
}

impl Iterator for Cpus {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.rest != 0 {
            let bit = self.rest & 1 != 0;
            self.rest >>= 1;
            self.next += 1;
            if bit {
                return Some(self.next - 1);
            }
        }
        None
    }
}

/// The least-loaded CPU of `online` and its load. The search starts at
/// `prefer` and wraps, and the first minimum wins, so ties go to `prefer`,
/// then to the next ids above it. `None` only when `online` is empty.
pub fn least_loaded(
    online: CpuSet,
    prefer: usize,
    load: impl Fn(usize) -> usize,
) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    for c in online.iter_from(prefer) {
        let l = load(c);
        if best.is_none_or(|(_, b)| l < b) {
            best = Some((c, l));
        }
    }
    best
}

/// Where a woken thread goes, and the load seen there: its last CPU if
/// that one is online and has nothing to do; else an idle (load 0) CPU
/// if there is one; else its last CPU (its cache), or the least-loaded
/// one when its last CPU is not online.
pub fn wake_target(
    online: CpuSet,
    last: usize,
    load: impl Fn(usize) -> usize,
) -> Option<(usize, usize)> {
    let last_online = online.contains(last);
    if last_online {
        let l = load(last);
        if l == 0 {
            return Some((last, 0));
        }
        let (c, lc) = least_loaded(online, last, &load)?;
        return Some(if lc == 0 { (c, 0) } else { (last, l) });
    }
    least_loaded(online, last, load)
}

/// Whether a CPU with `waiting` queued threads has one to spare for a
/// halted CPU: two runnable (one running, one waiting), or two waiting.
pub fn has_spare(waiting: usize, running: bool) -> bool {
    waiting >= 2 || (waiting >= 1 && running)
}

/// The first CPU of `candidates` (searching from `from`, wrapping) for
/// which `claim` succeeds: the one to kick when another has work to spare.
pub fn pick_halted(
    candidates: CpuSet,
    from: usize,
    mut claim: impl FnMut(usize) -> bool,
) -> Option<usize> {
    candidates.iter_from(from).find(|&c| claim(c))
}

/// A view of one CPU's placement counters (the kernel keeps them in its
/// per-CPU scheduler state), with the claim and kick protocol on them.
/// All accesses are SeqCst: the idle handoff is a store-then-load on both
/// sides (Dekker), which needs a single total order.
#[derive(Clone, Copy)]
pub struct CpuLoad<'a> {
    /// Threads in the CPU's run queue.
    pub queued: &'a AtomicUsize,
    /// Placements that claimed the CPU and have not pushed yet.
    pub reserved: &'a AtomicUsize,
    /// The CPU is halted in idle, or about to be.
    pub idle: &'a AtomicBool,
    /// A placer has sent the idle CPU an IPI to come and steal.
    pub kicked: &'a AtomicBool,
}

impl CpuLoad<'_> {
    /// Load seen by placement: queued, claimed and running threads.
    pub fn load(&self) -> usize {
        self.queued.load(SeqCst) + self.reserved.load(SeqCst) + self.running()
    }

    fn running(&self) -> usize {
        usize::from(!self.idle.load(SeqCst))
    }

    /// Claims the CPU for one thread, having seen load `seen` there when
    /// deciding. Fails (and gives the claim back) when its load, not
    /// counting this claim, grew since: another placer got there first.
    pub fn try_claim(&self, seen: usize) -> bool {
        let others = self.reserved.fetch_add(1, SeqCst);
        if others + self.queued.load(SeqCst) + self.running() <= seen {
            return true;
        }
        self.reserved.fetch_sub(1, SeqCst);
        false
    }

    /// Claims the CPU whatever its load (a placer's last attempt).
    pub fn claim(&self) {
        self.reserved.fetch_add(1, SeqCst);
    }

    /// Ends a claim once the thread is in the queue (`queued` counts it).
    pub fn release(&self) {
        self.reserved.fetch_sub(1, SeqCst);
    }

    /// Halted (or about to halt) with nothing queued or claimed.
    pub fn halted_empty(&self) -> bool {
        self.idle.load(SeqCst) && self.queued.load(SeqCst) == 0 && self.reserved.load(SeqCst) == 0
    }

    /// Claims the right to kick this halted CPU: true for exactly one
    /// kicker until the CPU clears `kicked` (on its way into idle and out).
    pub fn try_kick(&self) -> bool {
        self.halted_empty()
            && self
                .kicked
                .compare_exchange(false, true, SeqCst, SeqCst)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn set(ids: &[usize]) -> CpuSet {
        ids.iter().fold(CpuSet::EMPTY, |s, &c| s.with(c))
    }

    #[test]
    fn iteration_visits_every_member_across_a_hole() {
        let s = set(&[0, 2, 3]);
        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 2, 3]);
        assert_eq!(s.len(), 3);
        // `0..len` would have visited 0, 1, 2 and missed CPU 3.
        assert!(!(0..s.len()).any(|c| c == 3));
        assert_eq!(s.nth(2), Some(3));
        assert_eq!(s.iter_from(2).collect::<Vec<_>>(), [2, 3, 0]);
        assert_eq!(s.iter_from(1).collect::<Vec<_>>(), [2, 3, 0]);
        assert_eq!(s.iter_from(4).collect::<Vec<_>>(), [0, 2, 3]);
        let top = set(&[0, 63]);
        assert_eq!(top.iter().collect::<Vec<_>>(), [0, 63]);
        assert_eq!(top.iter_from(63).collect::<Vec<_>>(), [63, 0]);
    }

    #[test]
    fn membership_and_bounds() {
        let s = set(&[1, 5]);
        assert!(s.contains(1) && s.contains(5) && !s.contains(0));
        assert!(!s.contains(64) && !s.contains(usize::MAX));
        assert_eq!(s.with(64), s);
        assert_eq!(s.without(5), set(&[1]));
        assert!(CpuSet::EMPTY.is_empty());
        assert_eq!(CpuSet::from_mask(0b1011).mask(), 0b1011);
    }

    #[test]
    fn least_loaded_finds_the_cpu_beyond_a_hole() {
        // CPU 1 never came online; CPU 3 is the only idle one.
        let online = set(&[0, 2, 3]);
        let loads = [1, 0, 1, 0];
        let pick = least_loaded(online, 0, |c| if c == 1 { 99 } else { loads[c] });
        assert_eq!(pick, Some((3, 0)));
        assert_eq!(least_loaded(CpuSet::EMPTY, 0, |_| 0), None);
        // Ties go to `prefer`, then upward.
        assert_eq!(least_loaded(set(&[0, 1, 2]), 1, |_| 0), Some((1, 0)));
        assert_eq!(
            least_loaded(set(&[0, 1, 2]), 2, |c| usize::from(c == 2)),
            Some((0, 0))
        );
    }

    #[test]
    fn wake_target_prefers_last_then_idle_then_last() {
        let online = set(&[0, 1, 2, 3]);
        assert_eq!(wake_target(online, 2, |_| 0), Some((2, 0)));
        let busy2 = |c: usize| usize::from(c == 2 || c == 0);
        assert_eq!(wake_target(online, 2, busy2), Some((3, 0)));
        assert_eq!(wake_target(online, 2, |_| 1), Some((2, 1)));
        // The last CPU is not online (a hole): the least-loaded one.
        let holed = set(&[0, 2, 3]);
        assert_eq!(wake_target(holed, 1, |c| [1, 0, 1, 0][c]), Some((3, 0)));
        assert_eq!(wake_target(holed, 1, |c| [2, 0, 1, 1][c]), Some((2, 1)));
    }

    #[test]
    fn spare_work_needs_two_runnable() {
        assert!(!has_spare(0, true));
        assert!(
            !has_spare(1, false),
            "an idle CPU about to run its one thread"
        );
        assert!(has_spare(1, true));
        assert!(has_spare(2, false));
    }

    #[test]
    fn pick_halted_skips_cpus_already_claimed() {
        let candidates = set(&[0, 1, 3]);
        let mut claimed = [false, true, false, false];
        let mut claim = |c: usize| !core::mem::replace(&mut claimed[c], true);
        assert_eq!(pick_halted(candidates, 1, &mut claim), Some(3));
        assert_eq!(pick_halted(candidates, 1, &mut claim), Some(0));
        assert_eq!(pick_halted(candidates, 1, &mut claim), None);
    }

    /// Four CPUs' counters for the protocol tests.
    struct Cpus4 {
        queued: [AtomicUsize; 4],
        reserved: [AtomicUsize; 4],
        idle: [AtomicBool; 4],
        kicked: [AtomicBool; 4],
    }

    impl Cpus4 {
        fn new(idle: [bool; 4]) -> Cpus4 {
            Cpus4 {
                queued: Default::default(),
                reserved: Default::default(),
                idle: idle.map(AtomicBool::new),
                kicked: Default::default(),
            }
        }
        fn at(&self, c: usize) -> CpuLoad<'_> {
            CpuLoad {
                queued: &self.queued[c],
                reserved: &self.reserved[c],
                idle: &self.idle[c],
                kicked: &self.kicked[c],
            }
        }
        fn push(&self, c: usize) {
            self.queued[c].fetch_add(1, SeqCst);
            self.at(c).release();
        }
    }

    /// Defect 4a: two wakers that looked at the loads at the same time
    /// both chose CPU 3. With claims, the second one notices and moves on.
    #[test]
    fn racing_placers_do_not_share_an_idle_cpu() {
        // CPUs 1 and 2 run the wakers; 0 and 3 are halted.
        let cpus = Cpus4::new([true, false, false, true]);
        let online = set(&[0, 1, 2, 3]);
        let load = |c: usize| cpus.at(c).load();
        let a = least_loaded(online, 2, load).unwrap();
        let b = least_loaded(online, 2, load).unwrap();
        assert_eq!((a, b), ((3, 0), (3, 0)), "both saw CPU 3 idle");
        assert!(cpus.at(a.0).try_claim(a.1));
        assert!(!cpus.at(b.0).try_claim(b.1), "the second claim fails");
        let b = least_loaded(online, 2, load).unwrap();
        assert_eq!(b, (0, 0), "picked again: the other idle CPU");
        assert!(cpus.at(b.0).try_claim(b.1));
        cpus.push(3);
        cpus.push(0);
        assert_eq!(cpus.reserved.each_ref().map(|r| r.load(SeqCst)), [0; 4]);
        assert_eq!(cpus.queued.each_ref().map(|q| q.load(SeqCst)), [1, 0, 0, 1]);
    }

    /// Defect 4b: a CPU with two runnable threads while another is
    /// halted. The pusher kicks a halted CPU; two pushers kick two
    /// different CPUs, and a CPU that is busy or expecting a thread is
    /// never kicked.
    #[test]
    fn spare_work_kicks_each_halted_cpu_once() {
        let cpus = Cpus4::new([false, false, true, true]);
        cpus.queued[0].store(1, SeqCst);
        cpus.queued[1].store(1, SeqCst);
        let online = set(&[0, 1, 2, 3]);
        let kick = |busy: usize| {
            assert!(has_spare(
                cpus.queued[busy].load(SeqCst),
                !cpus.idle[busy].load(SeqCst)
            ));
            pick_halted(online.without(busy), busy + 1, |c| cpus.at(c).try_kick())
        };
        assert_eq!(kick(0), Some(2));
        assert_eq!(kick(1), Some(3), "CPU 2 is already kicked");
        assert_eq!(kick(0), None, "nobody left to kick");
        // CPU 3 woke and cleared its flag, but a placement claimed it.
        cpus.kicked[3].store(false, SeqCst);
        cpus.at(3).claim();
        assert!(!cpus.at(3).try_kick());
    }
}

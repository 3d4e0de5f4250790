//! The SQPOLL idle/wakeup protocol, as a checked model.
//!
//! The rules live in [`crate::ring`]'s module doc; this module states them
//! as two small programs, one for the submitter (user space) and one for
//! the poller (kernel), and its tests run every interleaving of them on a
//! model of x86-TSO: each side has a FIFO store buffer that drains to
//! memory at any moment, a load sees the side's own newest buffered store
//! or else memory, and a fence waits until the side's buffer is empty.
//! That is exactly the reordering x86 allows (a store followed by a load
//! of another location), and the one that strands a submission when a
//! fence is missing.
//!
//! Submitter, per submission: store `sq_tail`; fence; load `flags`; if
//! NEED_WAKEUP, `cap_enter(ENTER_SQ_WAKEUP)`, which (under the ring's
//! kernel lock, atomically) clears the flag and makes the poller poll
//! again.
//!
//! Poller, while awake: load `sq_tail`; consume one entry if there is one;
//! otherwise (its idle time may have passed at any such moment) set
//! NEED_WAKEUP; fence; load `sq_tail` again; if it moved, clear the flag
//! and keep polling, else sleep.
//!
//! The property: once the submitter is done and the poller sleeps, the
//! poller has consumed every submission. [`explore`] returns the number of
//! states reached, or the first state that breaks the property.

/// Which fences a model run includes (tests also check that dropping one
/// breaks the protocol, so the check can fail).
#[derive(Clone, Copy, Debug)]
pub struct Fences {
    /// The submitter's fence between storing `sq_tail` and loading `flags`.
    pub submitter: bool,
    /// The poller's fence between setting NEED_WAKEUP and re-reading `sq_tail`.
    pub poller: bool,
}

/// Where the submitter is in its program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubPc {
    /// About to store the next `sq_tail`.
    Store,
    /// Stored; about to fence.
    Fence,
    /// About to load `flags`.
    LoadFlags,
    /// Saw NEED_WAKEUP: about to call `cap_enter` with the wakeup flag.
    Wake,
    /// Every submission made.
    Done,
}

/// Where the poller is in its program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PollPc {
    /// Polling: load `sq_tail`, consume or decide to go idle.
    Poll,
    /// NEED_WAKEUP set; about to fence.
    Fence,
    /// About to re-read `sq_tail`.
    Recheck,
    /// Not polling this ring until a wakeup.
    Asleep,
}

/// A shared location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Loc {
    Tail,
    Flag,
}

/// One state of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State {
    sub: SubPc,
    /// Submissions published so far (the submitter's own tail).
    submitted: u32,
    sub_buf: alloc::vec::Vec<(Loc, u32)>,
    poll: PollPc,
    /// Entries the poller consumed (the kernel's head).
    head: u32,
    poll_buf: alloc::vec::Vec<(Loc, u32)>,
    mem_tail: u32,
    mem_flag: u32,
}

fn load(buf: &[(Loc, u32)], loc: Loc, mem: u32) -> u32 {
    buf.iter()
        .rev()
        .find(|(l, _)| *l == loc)
        .map_or(mem, |(_, v)| *v)
}

impl State {
    fn initial() -> State {
        State {
            sub: SubPc::Store,
            submitted: 0,
            sub_buf: alloc::vec::Vec::new(),
            poll: PollPc::Poll,
            head: 0,
            poll_buf: alloc::vec::Vec::new(),
            mem_tail: 0,
            mem_flag: 0,
        }
    }

    fn write(&mut self, loc: Loc, v: u32) {
        match loc {
            Loc::Tail => self.mem_tail = v,
            Loc::Flag => self.mem_flag = v,
        }
    }

    fn drain_sub(&mut self) {
        let (loc, v) = self.sub_buf.remove(0);
        self.write(loc, v);
    }

    fn drain_poll(&mut self) {
        let (loc, v) = self.poll_buf.remove(0);
        self.write(loc, v);
    }

    /// Every state one step away.
    fn successors(&self, n: u32, f: Fences) -> alloc::vec::Vec<State> {
        let mut out = alloc::vec::Vec::new();
        if !self.sub_buf.is_empty() {
            let mut s = self.clone();
            s.drain_sub();
            out.push(s);
        }
        if !self.poll_buf.is_empty() {
            let mut s = self.clone();
            s.drain_poll();
            out.push(s);
        }
        self.submitter_step(n, f, &mut out);
        self.poller_step(f, &mut out);
        out
    }

    fn submitter_step(&self, n: u32, f: Fences, out: &mut alloc::vec::Vec<State>) {
        let mut s = self.clone();
        match self.sub {
            SubPc::Store => {
                s.submitted += 1;
                s.sub_buf.push((Loc::Tail, s.submitted));
                s.sub = if f.submitter {
                    SubPc::Fence
                } else {
                    SubPc::LoadFlags
                };
            }
            SubPc::Fence => {
                if !s.sub_buf.is_empty() {
                    return;
                }
                s.sub = SubPc::LoadFlags;
            }
            SubPc::LoadFlags => {
                let flag = load(&s.sub_buf, Loc::Flag, s.mem_flag);
                s.sub = if flag != 0 {
                    SubPc::Wake
                } else if s.submitted == n {
                    SubPc::Done
                } else {
                    SubPc::Store
                };
            }
            SubPc::Wake => {
                // cap_enter: a system call (serializing: the submitter's
                // buffer drains on entry); the kernel clears the flag and
                // restarts polling, atomically under the ring's lock (the
                // poller's idle steps below take the same lock, so they
                // never interleave with this step; the poller's own
                // buffered flag store has drained by the lock's release).
                if !s.sub_buf.is_empty() || s.poll != PollPc::Poll && s.poll != PollPc::Asleep {
                    return;
                }
                if !s.poll_buf.is_empty() {
                    return;
                }
                s.mem_flag = 0;
                s.poll = PollPc::Poll;
                s.sub = if s.submitted == n {
                    SubPc::Done
                } else {
                    SubPc::Store
                };
            }
            SubPc::Done => return,
        }
        out.push(s);
    }

    fn poller_step(&self, f: Fences, out: &mut alloc::vec::Vec<State>) {
        let mut s = self.clone();
        match self.poll {
            PollPc::Poll => {
                let tail = load(&s.poll_buf, Loc::Tail, s.mem_tail);
                if tail != s.head {
                    s.head += 1;
                    out.push(s);
                    return;
                }
                // Nothing new; the idle time may or may not have passed.
                // Setting the flag is under the ring's kernel lock and
                // re-reading the tail is too: model the lock as a fence
                // only where `f.poller` says (the lock release is a
                // locked instruction, but the re-read comes before it).
                s.poll_buf.push((Loc::Flag, 1));
                s.poll = if f.poller {
                    PollPc::Fence
                } else {
                    PollPc::Recheck
                };
            }
            PollPc::Fence => {
                if !s.poll_buf.is_empty() {
                    return;
                }
                s.poll = PollPc::Recheck;
            }
            PollPc::Recheck => {
                let tail = load(&s.poll_buf, Loc::Tail, s.mem_tail);
                if tail != s.head {
                    s.poll_buf.push((Loc::Flag, 0));
                    s.poll = PollPc::Poll;
                } else {
                    s.poll = PollPc::Asleep;
                }
            }
            PollPc::Asleep => return,
        }
        out.push(s);
    }

    /// A final state: nobody can move but the buffers, which are empty.
    fn is_final(&self) -> bool {
        self.sub == SubPc::Done
            && self.poll == PollPc::Asleep
            && self.sub_buf.is_empty()
            && self.poll_buf.is_empty()
    }
}

/// Explores every interleaving of `n` submissions against the poller.
/// `Ok(states)` if every final state has all `n` consumed; `Err(state)`
/// with a final state that stranded a submission.
pub fn explore(n: u32, f: Fences) -> Result<usize, State> {
    let mut seen = alloc::collections::BTreeSet::new();
    let mut stack = alloc::vec![State::initial()];
    while let Some(s) = stack.pop() {
        if !seen.insert(s.clone()) {
            continue;
        }
        if s.is_final() && s.head != n {
            return Err(s);
        }
        // The poller keeps polling while awake: a state where it loops
        // forever without a submission is cut by the visited set.
        stack.extend(s.successors(n, f));
    }
    Ok(seen.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Fences = Fences {
        submitter: true,
        poller: true,
    };

    #[test]
    fn no_submission_is_stranded_with_both_fences() {
        for n in 1..=4 {
            let states = explore(n, BOTH).expect("a stranded submission");
            assert!(states > 10, "the model explored only {states} states");
        }
    }

    #[test]
    fn without_the_submitter_fence_a_submission_is_stranded() {
        let f = Fences {
            submitter: false,
            poller: true,
        };
        let bad = explore(1, f).expect_err("the model should find the stranding");
        assert_eq!(bad.head, 0);
        assert_eq!(bad.submitted, 1);
    }

    #[test]
    fn without_the_poller_fence_a_submission_is_stranded() {
        let f = Fences {
            submitter: true,
            poller: false,
        };
        assert!(explore(2, f).is_err());
    }

    #[test]
    fn final_states_exist() {
        // The property is not vacuous: a run ends with the poller asleep
        // and everything consumed.
        let mut s = State::initial();
        s.sub = SubPc::Done;
        s.poll = PollPc::Asleep;
        assert!(s.is_final());
    }
}

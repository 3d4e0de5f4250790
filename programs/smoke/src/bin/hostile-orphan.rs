//! `hostile-orphan`: a process's children die with it (defect 7).
//!
//! Without arguments (console, spawner) it checks, after a warm-up, that
//! every frame and charge comes back when:
//! - a parent exits right after spawning three children (`mid-exit`);
//! - a parent that has three children is killed by its own parent
//!   (`mid-park`; the killer sees ExitKind::Killed);
//! - a parent exits while its child (a `mid-park`) has children of its own
//!   (`mid-nest`): the whole tree goes.
//!
//! Each `leaf` touches 1 MiB and parks forever on two threads, so a leaf
//! that outlives its parent holds its frames for good (today: an orphan
//! nobody can wait for or kill).
#![no_std]
#![no_main]

use abi::caps::CapKind;
use abi::op::ExitKind;
use abi::TIMEOUT_NEVER;
use core::sync::atomic::AtomicU32;
use rt::process::{self, Child};
use rt::{sys, thread, Args};
use smoke::hostile::{self, nap, Snapshot};
use smoke::{ensure, fail, need_cap, Ctx, Fail};

rt::entry!(main);

const NAME: &str = "hostile-orphan";
/// Bytes each leaf touches.
const LEAF_BYTES: u64 = 1 << 20;
/// Leaves per middle process.
const LEAVES: u64 = 3;
/// Polls (10 ms apart) for a tree to come up or go away.
const POLLS: u32 = 1000;

fn main(a: &Args) -> i64 {
    match a.get(0) {
        None => smoke::run("hostile-orphans", a, parent),
        Some("leaf") => leaf(),
        Some("mid-exit") => spawn_leaves(a).map_or(2, |_| 0),
        Some("mid-park") => spawn_leaves(a).map_or(2, |_| park_forever()),
        Some("mid-nest") => {
            let Some(sp) = a.find_cap(CapKind::Spawner) else {
                return 2;
            };
            process::spawn(sp, NAME, &["mid-park"], &[sp]).map_or(2, |_| 0)
        }
        Some(_) => 100,
    }
}

static NEVER: AtomicU32 = AtomicU32::new(0);

fn park_forever() -> i64 {
    loop {
        let _ = sys::park(&NEVER, 0, TIMEOUT_NEVER);
    }
}

/// Touches 1 MiB, parks on two threads until killed.
fn leaf() -> i64 {
    let Ok(m) = sys::mem_map(LEAF_BYTES) else {
        return 2;
    };
    hostile::touch(m, LEAF_BYTES, abi::layout::PAGE_SIZE);
    if thread::spawn_with_stack(16 * 1024, park_forever).is_err() {
        return 3;
    }
    park_forever()
}

/// Starts the leaves (their handles die with this process).
fn spawn_leaves(a: &Args) -> Result<(), ()> {
    let sp = a.find_cap(CapKind::Spawner).ok_or(())?;
    for _ in 0..LEAVES {
        process::spawn(sp, NAME, &["leaf"], &[]).map_err(drop)?;
    }
    Ok(())
}

/// Waits until at least `frames` fewer frames are free than in `base`.
fn wait_frames_used(base: &Snapshot, frames: u64) -> Result<(), Fail> {
    for _ in 0..POLLS {
        let (free, _) = sys::mem_stats().ctx("mem-stats")?;
        if free + frames <= base.frames {
            return Ok(());
        }
        nap(10_000_000);
    }
    fail!("the tree never touched {} frames", frames)
}

fn start(sp: u32, mode: &str) -> Result<Child, Fail> {
    process::spawn(sp, NAME, &[mode], &[sp]).ctx("spawn")
}

fn end(c: Child, want: ExitKind, what: &str) -> Result<(), Fail> {
    let (kind, _) = c.wait().ctx("wait")?;
    c.close().ctx("close")?;
    ensure!(kind == want, "{}: ended {:?}, want {:?}", what, kind, want);
    Ok(())
}

fn parent(a: &Args) -> Result<(), Fail> {
    let sp = need_cap(a, CapKind::Spawner)?;
    let tree_frames = LEAVES * LEAF_BYTES / abi::layout::PAGE_SIZE;
    // Warm-up: one leaf, started and killed (first use of every path).
    let base = Snapshot::take()?;
    let c = start(sp, "leaf")?;
    wait_frames_used(&base, LEAF_BYTES / abi::layout::PAGE_SIZE)?;
    c.kill().ctx("kill leaf")?;
    end(c, ExitKind::Killed, "warm-up leaf")?;

    let base = Snapshot::take()?;
    let c = start(sp, "mid-exit")?;
    end(c, ExitKind::Exited, "mid-exit")?;
    base.expect_back_soon("children of an exited parent", POLLS)?;

    let c = start(sp, "mid-park")?;
    wait_frames_used(&base, tree_frames)?;
    c.kill().ctx("kill mid-park")?;
    end(c, ExitKind::Killed, "killed parent")?;
    base.expect_back_soon("children of a killed parent", POLLS)?;

    let c = start(sp, "mid-nest")?;
    end(c, ExitKind::Exited, "mid-nest")?;
    base.expect_back_soon("grandchildren of an exited parent", POLLS)?;
    Ok(())
}

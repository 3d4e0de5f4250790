//! Creating a process from a cached program image.
//!
//! Layout (abi::layout): segments where the ELF says; read-only pages that
//! the file covers entirely are mapped from the image cache (shared, not
//! owned), every other page is a fresh frame with the file bytes copied in
//! and the rest zero. The main stack is demand-zero with an unmapped guard
//! page below it. The start-up block is one read-only page. The main
//! thread gets the first ring.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::caps::CapKind;
use abi::error::Error;
use abi::layout::{
    MAIN_STACK_SIZE, MAIN_STACK_TOP, PAGE_SIZE, RING_BASE, RING_STRIDE, STARTUP_ADDR,
};
use abi::op::UserStr;
use abi::ring::RING_BYTES;
use abi::startup::{Startup, STARTUP_MAGIC};

use super::image::{self, Image};
use super::{ProcInner, Process};
use crate::arch::TrapFrame;
use crate::cap::table::{Cap, CapTable};
use crate::mm::addr_space::{AddrSpace, Perm, SpaceError};
use crate::mm::budget::{self, Account, Kind};
use crate::mm::frame::{self, Frame};
use crate::mm::ring_mem::RingPages;
use crate::sched::thread::{self, Thread};
use crate::sync::{IrqMutex, IrqRwLock};

static NEXT_PID: AtomicU64 = AtomicU64::new(1);

impl From<SpaceError> for Error {
    fn from(e: SpaceError) -> Error {
        match e {
            SpaceError::BadAddress => Error::BadAddress,
            SpaceError::NoMemory => Error::NoMemory,
            SpaceError::Overlap => Error::BadImage,
        }
    }
}

/// Starts program `name` with `args` and capabilities `caps` (slots 1..),
/// charging `account`, as a child of `parent` (which it dies with). The
/// main thread is placed on the least-loaded CPU.
pub fn spawn(
    name: &[u8],
    args: &[&[u8]],
    caps: Vec<Cap>,
    account: Arc<Account>,
    parent: Option<&Arc<Process>>,
) -> Result<Arc<Process>, Error> {
    let img = image::find(name).ok_or(Error::NotFound)?;
    let plan = img.plan.as_ref().map_err(|_| Error::BadImage)?;
    let space = AddrSpace::new(account.clone())?;
    load_segments(&space, img)?;
    space.add_lazy(MAIN_STACK_TOP - MAIN_STACK_SIZE, MAIN_STACK_TOP, Perm::RW);
    let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);

    let slots = caps.len() as u64 + 1;
    let heap_bytes = budget::PROCESS_HEAP_BYTES + slots * budget::CAP_HEAP_BYTES;
    account.charge(Kind::Heap, heap_bytes)?;
    let mut table = CapTable::new();
    let mut kinds = Vec::with_capacity(caps.len() + 1);
    kinds.push(CapKind::SelfProcess as u32);
    let mut full = table.insert(Cap::SelfProcess).is_none();
    for c in caps {
        kinds.push(c.kind() as u32);
        full |= table.insert(c).is_none();
    }
    let ring_addr = RING_BASE;
    let started = if full {
        Err(Error::NoMemory)
    } else {
        write_startup(&space, pid, ring_addr, &kinds, args)
    };
    if let Err(e) = started {
        account.uncharge(Kind::Heap, heap_bytes);
        return Err(e);
    }

    let p = Arc::new(Process {
        pid,
        name: String::from(img.name),
        space,
        caps: IrqRwLock::new(table),
        inner: IrqMutex::new(ProcInner {
            threads: BTreeMap::new(),
            exiting: None,
            ended: None,
            reclaimed: false,
            waiters: BTreeMap::new(),
            children: BTreeMap::new(),
            next_ring: 1,
            dead_rings: Vec::new(),
        }),
        parent: parent.map_or_else(Weak::new, Arc::downgrade),
        cpus_ran: AtomicU64::new(0),
        busy_cycles: AtomicU64::new(0),
    });
    let mut frame = TrapFrame::new_user(plan.entry, MAIN_STACK_TOP);
    frame.rdi = STARTUP_ADDR;
    frame.rsi = ring_addr;
    let t = match new_thread(&p, ring_addr, frame, 0) {
        Ok(t) => t,
        Err(e) => {
            // Never started, so never reclaimed: give back here what
            // finalize would.
            super::exit::release_caps(&p);
            account.uncharge(Kind::Heap, budget::PROCESS_HEAP_BYTES);
            return Err(e);
        }
    };
    if let Some(parent) = parent {
        let mut pi = parent.inner.lock();
        pi.children.insert(p.pid, Arc::downgrade(&p));
        if pi.exiting.is_some() {
            // The parent started ending after the caller looked: its
            // children die with it, this one too.
            t.inner.lock().kill = true;
        }
    }
    start_thread(t);
    Ok(p)
}

/// Creates a thread of `p` with a new ring mapped at `ring_addr`.
pub fn new_thread(
    p: &Arc<Process>,
    ring_addr: u64,
    frame: TrapFrame,
    fs_base: u64,
) -> Result<Arc<Thread>, Error> {
    let account = p.account();
    account.charge(Kind::Frames, RING_BYTES)?;
    if let Err(e) = account.charge(Kind::Heap, budget::THREAD_HEAP_BYTES) {
        account.uncharge(Kind::Frames, RING_BYTES);
        return Err(e);
    }
    // From here the thread's heap charge is given back by Thread's Drop,
    // or below if no thread is made.
    let Some(ring) = RingPages::new() else {
        account.uncharge(Kind::Frames, RING_BYTES);
        account.uncharge(Kind::Heap, budget::THREAD_HEAP_BYTES);
        return Err(Error::NoMemory);
    };
    for (i, f) in ring.frames().iter().enumerate() {
        if let Err(e) = p
            .space
            .map_frame(ring_addr + i as u64 * PAGE_SIZE, *f, Perm::RW, false)
        {
            p.space.unmap_range(ring_addr, ring_addr + RING_BYTES);
            p.free_ring(ring);
            account.uncharge(Kind::Heap, budget::THREAD_HEAP_BYTES);
            return Err(e.into());
        }
    }
    let t = match thread::create(p.clone(), ring_addr, ring, frame, fs_base) {
        Ok(t) => t,
        Err(ring) => {
            p.space.unmap_range(ring_addr, ring_addr + RING_BYTES);
            p.free_ring(ring);
            account.uncharge(Kind::Heap, budget::THREAD_HEAP_BYTES);
            return Err(Error::NoMemory);
        }
    };
    let mut inner = p.inner.lock();
    if inner.exiting.is_some() {
        // The process started ending after the caller looked: the new
        // thread must die with its siblings, never run (exit_process only
        // kills the threads it found in the list).
        t.inner.lock().kill = true;
    }
    inner.threads.insert(t.tid, t.clone());
    drop(inner);
    Ok(t)
}

/// Makes a new thread runnable on the least-loaded CPU.
pub fn start_thread(t: Arc<Thread>) {
    crate::sched::cpu::place_new(t, crate::arch::cpu_id());
}

/// The next free ring address of `p`.
pub fn next_ring_addr(p: &Process) -> Result<u64, Error> {
    let mut inner = p.inner.lock();
    let i = inner.next_ring;
    let addr = RING_BASE + i * RING_STRIDE;
    if addr + RING_STRIDE > abi::layout::ANON_BASE {
        return Err(Error::NoMemory);
    }
    inner.next_ring += 1;
    Ok(addr)
}

fn load_segments(space: &AddrSpace, img: &Image) -> Result<(), Error> {
    let plan = img.plan.as_ref().map_err(|_| Error::BadImage)?;
    for s in &plan.segments {
        let perm = Perm {
            write: s.flags & abi::elf::PF_W != 0,
            exec: s.flags & abi::elf::PF_X != 0,
        };
        let file_start = s.vaddr;
        let file_end = s.vaddr + s.file_len;
        let mut page = s.page_start();
        while page < s.page_end() {
            let covered = page >= file_start && page + PAGE_SIZE <= file_end;
            let off = s.file_offset + (page.max(file_start) - s.vaddr);
            if covered && !perm.write {
                // Shared, read-only: straight from the image cache.
                space.map_frame(page, Frame::from_phys(img.base.phys() + off), perm, false)?;
            } else if covered {
                // Every byte comes from the file: copy, no zeroing first.
                let f = frame::alloc().ok_or(Error::NoMemory)?;
                copy_image_bytes(img, off, f.phys(), PAGE_SIZE);
                if let Err(e) = space.map_frame(page, f, perm, true) {
                    frame::free(f);
                    return Err(e.into());
                }
            } else {
                // Partly file, partly zero (or all zero: bss).
                let f = space.map_zeroed(page, perm)?;
                let lo = page.max(file_start);
                let hi = (page + PAGE_SIZE).min(file_end);
                if lo < hi {
                    copy_image_bytes(img, off, f.phys() + (lo - page), hi - lo);
                }
            }
            page += PAGE_SIZE;
        }
    }
    Ok(())
}

fn copy_image_bytes(img: &Image, off: u64, dst_phys: u64, len: u64) {
    debug_assert!(off + len <= img.len);
    let src = crate::mm::kernel_space::phys_bytes(crate::mm::frame::PhysRange {
        start: img.base.phys() + off,
        end: img.base.phys() + off + len,
    });
    crate::mm::user::copy_to_kernel_frames(dst_phys, src);
}

/// Builds the start-up block and maps it read-only.
fn write_startup(
    space: &AddrSpace,
    pid: u64,
    ring: u64,
    kinds: &[u32],
    args: &[&[u8]],
) -> Result<(), Error> {
    let mut buf: Vec<u8> = Vec::with_capacity(PAGE_SIZE as usize);
    let hdr = core::mem::size_of::<Startup>() as u64;
    let caps_offset = hdr;
    let argv_offset = (caps_offset + 4 * kinds.len() as u64 + 7) & !7;
    let strings_offset = argv_offset + core::mem::size_of::<UserStr>() as u64 * args.len() as u64;
    let total = strings_offset + args.iter().map(|a| a.len() as u64).sum::<u64>();
    if total > abi::startup::STARTUP_BYTES {
        return Err(Error::Invalid);
    }
    let st = Startup {
        magic: STARTUP_MAGIC,
        pid,
        ring,
        cpus: crate::smp::cpu_count() as u64,
        tsc_hz: crate::time::tsc_hz(),
        ncaps: kinds.len() as u64,
        caps_offset,
        argc: args.len() as u64,
        argv_offset,
    };
    for w in [
        st.magic,
        st.pid,
        st.ring,
        st.cpus,
        st.tsc_hz,
        st.ncaps,
        st.caps_offset,
        st.argc,
        st.argv_offset,
    ] {
        buf.extend_from_slice(&w.to_le_bytes());
    }
    for k in kinds {
        buf.extend_from_slice(&k.to_le_bytes());
    }
    buf.resize(argv_offset as usize, 0);
    let mut at = STARTUP_ADDR + strings_offset;
    for a in args {
        buf.extend_from_slice(&at.to_le_bytes());
        buf.extend_from_slice(&(a.len() as u64).to_le_bytes());
        at += a.len() as u64;
    }
    for a in args {
        buf.extend_from_slice(a);
    }
    let f = frame::alloc().ok_or(Error::NoMemory)?;
    crate::arch::zero_page(f.virt());
    crate::mm::user::copy_to_kernel_frames(f.phys(), &buf);
    if let Err(e) = space.map_frame(STARTUP_ADDR, f, Perm::RO, true) {
        frame::free(f);
        return Err(e.into());
    }
    Ok(())
}

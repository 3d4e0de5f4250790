//! A capability kernel for x86-64.
//!
//! Boot order (docs/architecture/boot.md): serial console, boot
//! information, frames, kernel page tables, heap, this CPU's tables and
//! per-CPU block, the initrd (its `[kernel]` table picks the APIC and
//! timer modes), the other CPUs, then the init service and the scheduler.
//! Only `arch` and a few `mm` modules may use `unsafe`.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

#[macro_use]
mod console;
mod arch;
mod cap;
mod init;
mod initrd;
mod irq;
mod mm;
mod panic;
mod percpu;
mod proc;
mod sched;
mod selftest;
mod smp;
mod sync;
mod time;
mod trap;

use arch::bootinfo::BootFacts;
use mm::frame::PhysRange;

/// Low memory kept out of the frame allocator (real-mode IVT, BIOS data,
/// the AP trampoline, EBDA, VGA and ROM areas).
const LOW_MEMORY_END: u64 = 0x10_0000;

/// The boot CPU's Rust entry. `handoff` is what the boot stub got from
/// the loader (Multiboot2 or PVH); after `read_identity` nothing here
/// knows which loader ran.
pub fn kmain(handoff: arch::bootinfo::Handoff) -> ! {
    arch::serial::init();
    kprintln!("kernel: booting");
    let facts = match arch::bootinfo::read_identity(handoff) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    mm_init(&facts);
    arch::init_cpu(0, arch::apic::initial_id());
    // The initrd comes before the other CPUs: its manifest's `[kernel]`
    // table chooses the APIC and timer modes every CPU starts in.
    let initrd = match facts.modules().first() {
        Some(m) => initrd::load(*m),
        None => panic!("no initrd: the boot loader passed no module"),
    };
    smp::init(facts.rsdp, test_skip_ap(&facts), initrd.manifest.kernel);
    kprintln!(
        "kernel: memory {} MiB free in {} frames, heap {} MiB",
        (mm::frame::free_frames() * 4096) >> 20,
        mm::frame::free_frames(),
        mm::heap::HEAP_BYTES >> 20
    );
    init::run(initrd)
}

/// The `test_skip_ap=<index>` test hook from the kernel command line
/// (`smp::init` checks the range). Logs the command line when there is
/// one, and a value that is not an index.
fn test_skip_ap(f: &BootFacts) -> Option<usize> {
    let line = f.cmdline();
    if f.cmdline_cut {
        kprintln!(
            "kernel: command line unreadable or longer than {} bytes: only its start is read",
            arch::bootinfo::CMDLINE_MAX
        );
    }
    if !line.trim_ascii().is_empty() {
        kprintln!("kernel: command line {}", console::Escaped(line));
    }
    let v = klib::cmdline::value(line, "test_skip_ap")?;
    let index = klib::cmdline::parse_index(v);
    if index.is_none() {
        kprintln!(
            "kernel: test_skip_ap={} ignored: not a CPU index",
            console::Escaped(v)
        );
    }
    index
}

fn mm_init(f: &BootFacts) {
    let mut reserved = [PhysRange { start: 0, end: 0 }; 3 + arch::bootinfo::MAX_MODULES];
    reserved[0] = PhysRange {
        start: 0,
        end: LOW_MEMORY_END,
    };
    reserved[1] = mm::kernel_space::image_range();
    reserved[2] = f.keep;
    for (i, m) in f.modules().iter().enumerate() {
        reserved[3 + i] = *m;
    }
    let top = mm::frame::init(f.ram(), &reserved[..3 + f.modules().len()]);
    mm::kernel_space::init(top);
    mm::heap::init();
    mm::frame::enable_free_list();
}

/// Stops every other CPU (panic path). No-op until SMP is up.
pub fn smp_stop_others() {
    smp::stop_others();
}

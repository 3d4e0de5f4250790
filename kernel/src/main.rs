//! A capability kernel for x86-64.
//!
//! Boot order (docs/architecture/boot.md): serial console, boot
//! information, frames, kernel page tables, heap, this CPU's tables and
//! per-CPU block, the initrd, the other CPUs, then the init service and
//! the scheduler. Only `arch` and a few `mm` modules may use `unsafe`.
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

use mm::frame::PhysRange;

/// Low memory kept out of the frame allocator (real-mode IVT, BIOS data,
/// the AP trampoline, EBDA, VGA and ROM areas).
const LOW_MEMORY_END: u64 = 0x10_0000;

/// The boot CPU's Rust entry.
pub fn kmain(boot_info_phys: u64) -> ! {
    arch::serial::init();
    kprintln!("kernel: booting");
    let facts = early_facts(boot_info_phys);
    mm_init(&facts);
    arch::init_cpu(0, arch::apic::initial_id());
    smp::init(facts.0.rsdp, test_skip_ap(&facts));
    kprintln!(
        "kernel: memory {} MiB free in {} frames, heap {} MiB",
        (mm::frame::free_frames() * 4096) >> 20,
        mm::frame::free_frames(),
        mm::heap::HEAP_BYTES >> 20
    );
    let initrd = match facts.modules().first() {
        Some(m) => initrd::load(*m),
        None => panic!("no initrd: GRUB passed no Multiboot2 module"),
    };
    init::run(initrd)
}

fn early_facts(boot_info_phys: u64) -> EarlyFacts {
    // The boot stub identity-maps the first 4 GiB, where GRUB puts the
    // boot information.
    match arch::multiboot::read_identity(boot_info_phys) {
        Ok(f) => EarlyFacts(f),
        Err(e) => panic!("{e}"),
    }
}

/// The `test_skip_ap=<index>` test hook from the kernel command line
/// (`smp::init` checks the range). Logs the command line when there is
/// one, and a value that is not an index.
fn test_skip_ap(f: &EarlyFacts) -> Option<usize> {
    let line = f.0.cmdline();
    if f.0.cmdline_cut {
        kprintln!(
            "kernel: command line unreadable or longer than {} bytes: only its start is read",
            arch::multiboot::CMDLINE_MAX
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

struct EarlyFacts(arch::multiboot::BootFacts);

impl EarlyFacts {
    fn ram(&self) -> &[PhysRange] {
        &self.0.ram[..self.0.nram]
    }
    fn modules(&self) -> &[PhysRange] {
        &self.0.modules[..self.0.nmodules]
    }
}

fn mm_init(f: &EarlyFacts) {
    let mut reserved = [PhysRange { start: 0, end: 0 }; 3 + arch::multiboot::MAX_MODULES];
    reserved[0] = PhysRange {
        start: 0,
        end: LOW_MEMORY_END,
    };
    reserved[1] = mm::kernel_space::image_range();
    reserved[2] = f.0.info;
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

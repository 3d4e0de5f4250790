//! ACPI discovery: the CPUs and the local APIC address from the MADT.
//! CPUs come from both Processor Local APIC entries (type 0, 8-bit ids)
//! and Processor Local x2APIC entries (type 9, 32-bit ids); an id listed
//! twice counts once.
//!
//! Uses the `acpi` crate (rust-osdev: small, `no_std`, maintained, and it
//! validates the RSDP, RSDT/XSDT and table checksums for us) without its
//! allocator features. Tables are read through the direct map, which
//! covers every physical address below 4 GiB and all RAM, so mapping is a
//! pointer offset and unmapping is nothing.

use core::ptr::NonNull;

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};

/// Most CPUs the kernel tracks (the width of a CPU mask).
pub const MAX_CPUS: usize = 64;

/// MADT local APIC flag: enabled (ACPI 6.5, 5.2.12.2). Entries with only
/// "online capable" set are hot-plug slots with no CPU behind them yet.
const LAPIC_ENABLED: u32 = 1 << 0;

/// What the MADT says about the CPUs.
pub struct MadtInfo {
    /// Physical address of the local APICs.
    pub lapic_phys: u64,
    /// APIC ids of the usable processors, in MADT order.
    pub apic_ids: [u32; MAX_CPUS],
    /// Entries used in `apic_ids`.
    pub count: usize,
    /// Usable processors beyond [`MAX_CPUS`] (ignored).
    pub dropped: usize,
}

#[derive(Clone, Copy)]
struct DirectMap;

impl AcpiHandler for DirectMap {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virt = crate::mm::phys_to_virt(physical_address as u64) as *mut T;
        let ptr = NonNull::new(virt).expect("direct map never yields null");
        // SAFETY: the direct map covers the region for the life of the
        // kernel, so the mapping stays valid however long `acpi` keeps it.
        unsafe { PhysicalMapping::new(physical_address, ptr, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// Reads the MADT through the RSDP at `rsdp_phys`.
pub fn read_madt(rsdp_phys: u64) -> Result<MadtInfo, &'static str> {
    // `rsdp_phys` is GRUB's copy inside the Multiboot2 information (which
    // stays reserved) or the firmware's, found through the PVH start info or
    // the BIOS-area scan, in memory the memory map does not offer as RAM.
    // SAFETY: that RSDP is reserved memory the direct map covers, and the
    // crate checks its signature and checksum before trusting it.
    let tables = unsafe { AcpiTables::from_rsdp(DirectMap, rsdp_phys as usize) }
        .map_err(|_| "invalid RSDP")?;
    let madt = tables.find_table::<Madt>().map_err(|_| "no MADT")?;
    let mut info = MadtInfo {
        lapic_phys: u64::from(madt.get().local_apic_address),
        apic_ids: [0; MAX_CPUS],
        count: 0,
        dropped: 0,
    };
    for entry in madt.get().entries() {
        let (apic_id, flags) = match entry {
            MadtEntry::LocalApic(e) => (u32::from(e.apic_id), e.flags),
            MadtEntry::LocalX2Apic(e) => (e.x2apic_id, e.flags),
            MadtEntry::LocalApicAddressOverride(e) => {
                info.lapic_phys = e.local_apic_address;
                continue;
            }
            _ => continue,
        };
        if flags & LAPIC_ENABLED == 0 || info.apic_ids[..info.count].contains(&apic_id) {
            continue;
        }
        if info.count == MAX_CPUS {
            info.dropped += 1;
            continue;
        }
        info.apic_ids[info.count] = apic_id;
        info.count += 1;
    }
    Ok(info)
}

//! Finding, verifying and decoding the initrd (the first Multiboot2 module).
//!
//! The payload is decoded in place: manifest strings and program images
//! borrow from the module's memory, which stays reserved for the kernel's
//! lifetime, so nothing is copied at boot.
//!
//! Nothing in it is trusted: [`abi::initrd::decode`] checks the header and
//! checksum, decodes with every vector bounded, and then applies every
//! manifest rule ([`abi::validate`], the code mkimage runs), all before
//! anything runs. Any failure is `PANIC bad initrd: <reason>`.

use abi::initrd::Payload;

use crate::console::Escaped;
use crate::mm::frame::PhysRange;
use crate::mm::kernel_space::phys_bytes;

/// Verifies, decodes and validates the initrd at `module`; a corrupt or
/// invalid one is a panic with the reason (there is nothing to run
/// without it).
pub fn load(module: PhysRange) -> Payload<'static> {
    if module.end <= module.start {
        panic!("initrd module is empty");
    }
    let bytes = phys_bytes(module);
    match abi::initrd::decode(bytes) {
        Ok(p) => {
            kprintln!(
                "kernel: initrd {} bytes verified, scenario {}, {} program image(s)",
                bytes.len(),
                Escaped(p.manifest.scenario.name),
                p.programs.len()
            );
            p
        }
        Err(e) => panic!("bad initrd: {e}"),
    }
}

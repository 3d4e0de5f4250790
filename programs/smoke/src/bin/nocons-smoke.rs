//! `nocons-smoke`: started without a console capability. Every console
//! write it tries must be refused: `Denied` on the slots it holds (self,
//! and whatever else was granted) and `BadSlot` on an empty one. Reports by
//! exit status only (it has no console): 0 when every refusal was seen,
//! otherwise 10 + the number of the failed check.
#![no_std]
#![no_main]

use abi::caps::CapKind;
use rt::{sys, Args, Error};

rt::entry!(main);

fn main(a: &Args) -> i64 {
    if a.find_cap(CapKind::Console).is_some() {
        return 10; // the manifest must not grant one
    }
    let line = b"SMOKE nocons FAIL reason=console write was allowed\n";
    for slot in 0..a.cap_count() {
        if sys::console_write(slot, line) != Err(Error::Denied) {
            return 11 + i64::from(slot);
        }
    }
    if sys::console_write(a.cap_count() + 1, line) != Err(Error::BadSlot) {
        return 9;
    }
    // rt's own println must fail quietly, too.
    if rt::console::write_line(format_args!("{}", "no console")).is_ok() {
        return 8;
    }
    0
}

//! `ringbench`'s logic that needs no kernel: the completion ledger and the
//! worker exit statuses. The program (`src/main.rs`) drives the rings; this
//! crate decides whether what came back is exactly what was submitted, and
//! builds for the host so `cargo test` checks it.
#![cfg_attr(not(test), no_std)]

pub mod ledger;
pub mod status;
